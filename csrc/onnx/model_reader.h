// Loads an ONNX ModelProto with our own bounded protobuf reader (no libprotobuf).
// Every length, count and nesting depth is checked against the buffer; malformed input raises
// InvalidModel naming the field and the byte offset.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "ir/graph.h"

namespace runnx {

// Memory-maps `path`; initializers point into the mapping (copied only when misaligned for their
// dtype, except main-graph float32 tensors of rank >= 2: see realign_weight). External data files are
// resolved relative to the model's folder.
Model load_model_from_file(const std::string& path);
// Drops the resident pages of a weight that lies in the model's file mapping (a kernel packed its
// own copy). Clean file pages: a later read faults them back, so this is always safe.
void release_mapped_weight(const Model& m, const Tensor& t);
// The same for a mapping given by its bytes (what a deferred constant captures of the model).
void release_mapped_weight(const uint8_t* mapped_data, size_t mapped_size, const Tensor& t);
// Drops the resident pages that lie wholly inside a weight no reader will touch again (each kept
// its own packed copy), wherever the bytes live: heap copies of misaligned weights, a model
// parsed from bytes, the file mapping. Heap pages would read back as zeros: call it only then.
void release_unread_weight(const Tensor& t);
// A weight left misaligned in place by the reader (its bytes start off a multiple of its element
// size) is copied to an aligned heap buffer and its file pages dropped; counted in
// `m.realigned_bytes`. Returns false (nothing done) when `t` is aligned already.
bool realign_weight(Model& m, Tensor& t);
inline bool is_misaligned(const Tensor& t) {
  const size_t align = dtype_size(t.dtype);
  return t.data && align > 1 && reinterpret_cast<uintptr_t>(t.data) % align != 0;
}

// Parses a buffer. `keepalive` owns the bytes (initializers may point into them); pass nullptr to
// make the reader copy what it keeps. `base_dir` resolves external data ("" refuses it).
Model load_model_from_bytes(const void* data, size_t size, std::shared_ptr<void> keepalive,
                            const std::string& base_dir = "");

}  // namespace runnx
