// The contract between the executor and an operator implementation.
//
// A Kernel is created once per node at session creation (that is where it parses attributes and
// pre-packs constant weights) and is then run many times, possibly from several threads at once:
// run() must not mutate the kernel. At run time a kernel reads its inputs, computes its output
// shapes from the actual input shapes (and from the values of shape-like inputs), and asks the
// context for each output buffer. The executor decides where that buffer lives (a planned arena
// slot, the input's own buffer for in-place ops, or the heap).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/thread_pool.h"
#include "ir/graph.h"

namespace runnx {

class KernelContext {
 public:
  // How the executor provides output memory: value slot index and byte count in, buffer out.
  using OutputAllocator = std::function<Tensor(int output_index, DType, Shape)>;

  KernelContext(const Node& node, std::vector<const Tensor*> inputs, std::vector<Tensor>& outputs,
                ThreadPool& pool, OutputAllocator alloc)
      : node_(node), own_inputs_(std::move(inputs)), own_alloc_(std::move(alloc)), inputs_(&own_inputs_),
        outputs_(outputs), pool_(pool), alloc_(&own_alloc_) {}
  // The executor's per-step form: borrows the input list and the allocator, which outlive the
  // context (no copy of either per node on the hot path).
  KernelContext(const Node& node, const std::vector<const Tensor*>* inputs, std::vector<Tensor>& outputs,
                ThreadPool& pool, const OutputAllocator* alloc)
      : node_(node), inputs_(inputs), outputs_(outputs), pool_(pool), alloc_(alloc) {}
  KernelContext(const KernelContext&) = delete;
  KernelContext& operator=(const KernelContext&) = delete;

  const Node& node() const { return node_; }
  int num_inputs() const { return static_cast<int>(inputs_->size()); }
  int num_outputs() const { return static_cast<int>(outputs_.size()); }
  // nullptr when the optional input is omitted (or beyond the node's input list).
  const Tensor* input(int i) const { return i < num_inputs() ? (*inputs_)[i] : nullptr; }
  // Raises InvalidModel naming the node when the input is missing.
  const Tensor& required_input(int i) const;
  // True when the node asks for output i (optional outputs may be omitted).
  bool wants_output(int i) const { return i < num_outputs() && !node_.outputs[i].empty(); }

  // Allocates output i and returns it; the tensor stays valid until the run ends.
  Tensor& allocate_output(int i, DType dtype, Shape shape);
  // Makes output i share `src`'s bytes (Reshape, Identity, Squeeze...).
  void set_output_view(int i, const Tensor& src, Shape shape);

  ThreadPool& pool() { return pool_; }

 private:
  const Node& node_;
  std::vector<const Tensor*> own_inputs_;  // the copying form's own storage
  OutputAllocator own_alloc_;
  const std::vector<const Tensor*>* inputs_;
  std::vector<Tensor>& outputs_;
  ThreadPool& pool_;
  const OutputAllocator* alloc_;
};

class Kernel {
 public:
  virtual ~Kernel() = default;
  virtual void run(KernelContext& ctx) const = 0;
  // Index of an input whose buffer output 0 may overwrite (element-wise ops whose loop reads
  // element i before writing element i), or -1. The planner uses it only when that input dies
  // here and its size equals the output's.
  virtual int inplace_input() const { return -1; }
  // Index of the input whose bytes output 0 always shares (set_output_view on every run:
  // Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout), or -1. The static first-run plan
  // gives such an output no slot of its own, as the observed plan does.
  virtual int view_input() const { return -1; }
  // The path this kernel chose at creation, for `runnx inspect` ("" when there is one path).
  virtual std::string describe() const { return ""; }
};

// What a kernel factory sees at session creation.
struct KernelInfo {
  const Node& node;
  int64_t opset;  // the model's opset for the node's domain
  // Value of input i when it is a constant (initializer or folded), else nullptr.
  std::function<const Tensor*(int)> constant_input;
  int num_threads = 1;
  // Call after keeping an own (packed) copy of constant input i: its mapped pages may go.
  std::function<void(int)> release_constant;
  // Dims of input i as inferred at load: -1 where not a fixed number, empty when even the rank
  // is unknown (or the session did not say).
  std::function<std::vector<int64_t>(int)> input_dims;
};

using KernelFactory = std::function<std::unique_ptr<Kernel>(const KernelInfo&)>;

// One registered operator. `since` is the first opset the implementation covers; a model whose
// opset is older than `since` gets UnsupportedOp, as does a newer one past kMaxOpset.
struct OpSchema {
  std::string op_type;
  std::string domain;  // "" for ai.onnx
  int since = 1;
  KernelFactory make;
};

constexpr int kMaxOpset = 28;  // the newest ai.onnx opset (onnx 1.23); conformance cases guard each op

class OpRegistry {
 public:
  static const OpRegistry& global();
  void add(std::string op_type, std::string domain, int since, KernelFactory make);
  // The implementation for (domain, op_type) at `opset`, or nullptr.
  const OpSchema* find(const std::string& domain, const std::string& op_type, int64_t opset) const;
  const std::vector<OpSchema>& all() const { return ops_; }

 private:
  std::vector<OpSchema> ops_;
};

// Registers a kernel class whose constructor takes (const KernelInfo&).
template <typename K>
KernelFactory factory() {
  return [](const KernelInfo& info) -> std::unique_ptr<Kernel> { return std::make_unique<K>(info); };
}

}  // namespace runnx
