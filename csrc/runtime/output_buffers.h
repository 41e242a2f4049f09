// Heap buffers for a session's large graph outputs, kept after the caller drops them so that a
// later run's output of about the same size reuses them. A fresh multi-megabyte block costs one
// page fault per 4 KiB page (the kernel zeroes each page) on every run: glibc does not hand a
// freed 64-byte-aligned 12 MB block back for the next aligned_alloc of the same size, and
// 1024x3072x768 MatMul through a session took ~3000 faults a run (~10% of its time).
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "ir/tensor.h"

namespace runnx {

class OutputBuffers : public std::enable_shared_from_this<OutputBuffers> {
 public:
  // Outputs smaller than this come from Tensor::empty (malloc's bins reuse those well).
  static constexpr int64_t kMinBytes = int64_t{64} << 10;
  // At most this many idle buffers and bytes are kept; a bigger buffer is freed when dropped.
  static constexpr size_t kMaxIdle = 16;
  static constexpr int64_t kMaxIdleBytes = int64_t{256} << 20;
  // An idle buffer no take() has matched within this many takes is freed (output sizes that
  // came once and do not come back: a server's varying batch sizes).
  static constexpr int64_t kMaxIdleTakes = 32;

  // A tensor of this dtype and shape: the smallest idle buffer of its size to twice that, else a
  // fresh one. Its bytes come back here when its last owner drops it (or are freed, once the
  // cache is gone). Contents uninitialised.
  Tensor take(DType dtype, Shape shape);
  int64_t reused() const;
  int64_t idle_bytes() const;
  ~OutputBuffers();

 private:
  struct Idle {
    int64_t bytes;
    void* data;
    int64_t since;  // takes_ when it came back
  };
  void give_back(void* data, int64_t bytes);

  mutable std::mutex mu_;
  std::vector<Idle> idle_;  // oldest first
  int64_t idle_bytes_ = 0;
  int64_t reused_ = 0;
  int64_t takes_ = 0;
};

}  // namespace runnx
