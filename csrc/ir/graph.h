// The in-memory model: what the ONNX reader produces and what passes and the planner consume.
// Names follow ONNX's messages; only what runnx uses is kept.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "ir/tensor.h"

namespace runnx {

// One dimension: a known size, a named symbol ("batch"), or unknown (neither).
struct Dim {
  int64_t value = -1;
  std::string param;
  bool known() const { return value >= 0; }
};

struct ValueInfo {
  std::string name;
  DType dtype = DType::kUndefined;
  bool has_shape = false;  // false: rank unknown
  std::vector<Dim> dims;
  std::string doc;
};

struct Graph;

struct Attribute {
  // ONNX AttributeProto.AttributeType numbers.
  enum class Type : int32_t {
    kUndefined = 0, kFloat = 1, kInt = 2, kString = 3, kTensor = 4, kGraph = 5, kFloats = 6,
    kInts = 7, kStrings = 8, kTensors = 9, kGraphs = 10, kSparseTensor = 11, kSparseTensors = 12,
    kTypeProto = 13, kTypeProtos = 14
  };
  std::string name;
  Type type = Type::kUndefined;
  float f = 0;
  int64_t i = 0;
  std::string s;
  Tensor t;
  std::shared_ptr<Graph> g;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
  std::vector<Tensor> tensors;
  std::vector<std::shared_ptr<Graph>> graphs;
  std::string ref_attr_name;
  std::string doc;
};

struct Node {
  std::string name;
  std::string op_type;
  std::string domain;
  std::string doc;
  std::vector<std::string> inputs;   // "" marks an omitted optional input
  std::vector<std::string> outputs;  // "" marks an omitted optional output
  std::vector<Attribute> attrs;

  const Attribute* attr(const std::string& n) const;
  // Typed getters; a present attribute of the wrong type raises InvalidModel naming the node.
  int64_t get_int(const std::string& n, int64_t dflt) const;
  float get_float(const std::string& n, float dflt) const;
  std::string get_string(const std::string& n, const std::string& dflt) const;
  std::vector<int64_t> get_ints(const std::string& n, std::vector<int64_t> dflt = {}) const;
  std::vector<float> get_floats(const std::string& n, std::vector<float> dflt = {}) const;
  bool has_attr(const std::string& n) const { return attr(n) != nullptr; }
  // "Conv 'conv1'" : how errors refer to a node.
  std::string label() const;
};

struct Graph {
  std::string name;
  std::string doc;
  std::vector<Node> nodes;
  std::vector<ValueInfo> inputs;
  std::vector<ValueInfo> outputs;
  std::vector<ValueInfo> value_info;
  std::vector<std::pair<std::string, Tensor>> initializers;  // file order
  std::vector<std::string> sparse_initializer_names;           // parsed, not supported
};

// A constant whose bytes are computed when first needed (Model::deferred). Until then its
// initializer has dtype and shape but no data.
struct DeferredConstant {
  std::function<std::shared_ptr<void>()> compute;  // the block the bytes start at; run once
  std::once_flag once;
  bool done = false;  // set inside `once`
};

struct OpsetImport {
  std::string domain;
  int64_t version = 0;
};

class FilePageDrops;

struct Model {
  int64_t ir_version = 0;
  std::vector<OpsetImport> opsets;
  std::string producer_name, producer_version, domain, doc;
  int64_t model_version = 0;
  std::vector<std::pair<std::string, std::string>> metadata;
  Graph graph;
  // The read-only file mapping the weights point into (models loaded from a path), kept alive
  // here so its pages can be released once kernels hold their own packed copies.
  std::shared_ptr<const void> mapping;
  const uint8_t* mapped_data = nullptr;
  size_t mapped_size = 0;
  // A file of 2-32 MiB (kSpreadFromBytes, onnx/mapped_file.h kMapWholeBelow) is read whole: the
  // session maps all its pages in one call, on a thread of its own while the graph passes run
  // when it has several (a smaller file was mapped in at open).
  bool map_whole = false;
  // For a file of at most kMapWholeBelow, the page drops (onnx/file_page_drops.h) made while
  // reading it and building the session, made together after the kernels are built: a drop
  // before the mapping-in would be undone by it. Declared after `mapping`, so it ends (and drops
  // what it holds) first.
  std::shared_ptr<FilePageDrops> page_drops;
  // Weight bytes copied to the heap because they sat misaligned for their dtype in the file.
  // Float32 matrices that only GEMM kernels read (which pack them with unaligned loads) stay
  // where they are (see runtime/graph_prep).
  int64_t realigned_bytes = 0;
  // Threads session creation may use for heavy load-time arithmetic (BN folding); the session
  // sets it from intra_op_num_threads.
  int load_threads = 1;
  // Initializers computed when first needed, by name: conv_bn_folding leaves a folded weight's
  // arithmetic to the build of the kernel that reads it, so the fold is written to cache-warm
  // memory, packed from there, and freed once every reader holds its own copy (the session frees
  // it; MobileNetV2: no second pass over 9 MB of fresh pages). Whoever reads an initializer's
  // bytes before the session has built its kernels calls materialize_constant first.
  std::map<std::string, std::shared_ptr<DeferredConstant>> deferred;

  // Opset for a domain ("" and "ai.onnx" are the same); 0 if not imported.
  int64_t opset(const std::string& domain) const;
};

// Computes `t`'s bytes if `name` is deferred (once: a concurrent caller waits for the first). The
// pointer is stored under `assign_mu` when given (the session's lock for scans of every
// constant's bytes). Returns true when `name` is (or was) deferred.
bool materialize_constant(Model& m, const std::string& name, Tensor& t, std::mutex* assign_mu = nullptr);

}  // namespace runnx
