// Static dtype and shape inference: the contract between the session's inference pass and one
// op's inference function.
//
// At session creation every value gets an InferredType: its dtype and its dims as SymDims
// (integers, input symbols such as "batch", or expressions over them). Small integer tensors
// also carry their contents (what torch's Shape -> Gather -> Concat -> Reshape chains compute),
// so a Reshape fed by such a chain still gets a symbolic shape. A contradiction that holds for
// every possible input (MatMul of [2,3] by [4,5], Add of float and int64) is an InvalidModel at
// load; anything that depends on run-time values is left symbolic or unknown.
//
// Op families register one function per op type in register_<family>_infer (families.inc).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "infer/sym_dim.h"
#include "ir/graph.h"

namespace runnx {

// Integer tensors of rank <= 1 and at most this many elements have their contents tracked.
constexpr size_t kMaxTrackedValues = 64;

struct InferredType {
  DType dtype = DType::kUndefined;  // undefined: not known at load
  bool has_shape = false;           // false: even the rank is unknown
  std::vector<SymDim> dims;
  bool has_values = false;          // contents known element by element (see kMaxTrackedValues)
  std::vector<SymDim> values;

  int64_t rank() const { return static_cast<int64_t>(dims.size()); }
  // Element count as a dim (unknown when the rank is).
  SymDim numel() const;
  std::string str() const;  // "float32[batch,3]", "int64[2] = {batch,3}"
};

class InferContext {
 public:
  // `constants[i]` is input i's value when it is a constant the feeds cannot replace.
  InferContext(const Node& node, int64_t opset, std::vector<const InferredType*> inputs,
               std::vector<const Tensor*> constants, std::vector<InferredType>& outputs)
      : node_(node), opset_(opset), inputs_(std::move(inputs)), constants_(std::move(constants)),
        outputs_(outputs) {}

  const Node& node() const { return node_; }
  int64_t opset() const { return opset_; }

  int num_inputs() const { return static_cast<int>(inputs_.size()); }
  bool has_input(int i) const { return i < num_inputs() && inputs_[i] != nullptr; }
  // Fails (InvalidModel naming the node) when input i is omitted.
  const InferredType& input(int i) const;
  // Input i's dims when its rank is known, else nullptr.
  const std::vector<SymDim>* dims(int i) const;
  // Input i's contents when tracked, else nullptr.
  const std::vector<SymDim>* values(int i) const;
  // Input i's contents when every element is a known integer.
  std::optional<std::vector<int64_t>> ints(int i) const;
  // Input i's value when it is a load-time constant (any dtype), else nullptr.
  const Tensor* constant(int i) const { return i < (int)constants_.size() ? constants_[i] : nullptr; }

  int num_outputs() const { return static_cast<int>(outputs_.size()); }
  bool has_output(int i) const { return i < num_outputs() && !node_.outputs[i].empty(); }
  InferredType& output(int i);
  void set_output(int i, DType dtype, std::vector<SymDim> dims);
  void set_output_unknown_shape(int i, DType dtype);

  template <typename... Args>
  [[noreturn]] void fail(const Args&... args) const {
    ::runnx::fail(ErrorKind::kInvalidModel, node_.label(), ": ", args...);
  }
  template <typename... Args>
  void check(bool cond, const Args&... args) const {
    if (!cond) fail(args...);
  }

 private:
  const Node& node_;
  int64_t opset_;
  std::vector<const InferredType*> inputs_;
  std::vector<const Tensor*> constants_;
  std::vector<InferredType>& outputs_;
};

using InferFn = void (*)(InferContext&);

class InferRegistry {
 public:
  static const InferRegistry& global();
  void add(const std::string& op_type, const std::string& domain, InferFn fn);
  // nullptr when the op has no inference function.
  InferFn find(const std::string& domain, const std::string& op_type) const;
  const std::vector<std::pair<std::string, std::string>>& ops() const { return ops_; }

 private:
  std::vector<std::pair<std::string, std::string>> ops_;  // (domain, op_type)
  std::vector<InferFn> fns_;
};

// Shared helpers for inference functions.

// Maps a possibly negative axis into [0, rank); fails naming the node otherwise.
int64_t infer_axis(const InferContext& ctx, int64_t axis, int64_t rank);
// Numpy broadcast of the dims of the given inputs; fails on two different constants.
std::vector<SymDim> broadcast_inputs(const InferContext& ctx, const std::vector<int>& inputs);
// Fails unless the given inputs share a dtype (ignoring unknown ones); returns it.
DType same_dtype(const InferContext& ctx, const std::vector<int>& inputs);
// Output `out` is input `in`: dtype, dims and contents.
void pass_through(InferContext& ctx, int in = 0, int out = 0);
// Output `out` has input `in`'s dims and the given dtype.
void like_input(InferContext& ctx, int in, int out, DType dtype);
// Fails when `a` and `b` are different constants; returns the better-known of the two.
SymDim merge_dims(const InferContext& ctx, const SymDim& a, const SymDim& b, const char* what);
// The DType numbered `v` in ONNX's TensorProto.DataType, failing on numbers we do not know.
DType infer_dtype_attr(const InferContext& ctx, int64_t v);

}  // namespace runnx
