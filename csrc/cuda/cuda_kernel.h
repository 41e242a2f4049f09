// The contract between the CUDA executor and a CUDA op wrapper (csrc/cuda/ops/*.cc). A wrapper
// parses the node's attributes, decides whether it can take the node (check), and builds a
// CudaKernel (make) that picks a launcher from csrc/cuda/kernels/ by dtype and shape at run time.
#pragma once
#include <cuda_runtime.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "infer/infer.h"
#include "ir/graph.h"

namespace runnx::cuda {

// What a wrapper sees at load. Types come from static inference (dtype kUndefined: unknown).
struct CudaNodeInfo {
  const Node& node;
  int64_t opset;
  std::vector<const InferredType*> inputs, outputs;  // nullptr: omitted
  std::function<bool(int)> is_constant;              // input k is an initializer no feed replaces
  // At make(): the host value of a constant input (nullptr otherwise).
  std::function<const Tensor*(int)> constant_input = [](int) -> const Tensor* { return nullptr; };

  int num_inputs() const { return static_cast<int>(inputs.size()); }
  bool has_input(int k) const { return k < num_inputs() && inputs[k]; }
  DType input_dtype(int k) const { return has_input(k) ? inputs[k]->dtype : DType::kUndefined; }
  DType output_dtype(int k) const {
    return k < (int)outputs.size() && outputs[k] ? outputs[k]->dtype : DType::kUndefined;
  }
};

// What a CUDA kernel sees at run time. Inputs and outputs are device tensors, except the inputs
// and outputs the schema keeps on the host. All work goes on stream(); nothing synchronises.
class CudaContext {
 public:
  using Allocator = std::function<Tensor(int output_index, DType, Shape)>;
  using Scratch = std::function<void*(size_t bytes)>;

  using ErrorFlag = std::function<int*()>;

  CudaContext(const Node& node, std::vector<const Tensor*> inputs, std::vector<Tensor>& outputs,
              cudaStream_t stream, Allocator alloc, Scratch scratch, ErrorFlag flag = nullptr)
      : node_(node), inputs_(std::move(inputs)), outputs_(outputs), stream_(stream), alloc_(std::move(alloc)),
        scratch_(std::move(scratch)), flag_(std::move(flag)) {}

  const Node& node() const { return node_; }
  int num_inputs() const { return static_cast<int>(inputs_.size()); }
  // nullptr when omitted, and for inputs the kernel packed at load (CudaOpSchema::packed_inputs).
  const Tensor* input(int i) const { return i < num_inputs() ? inputs_[i] : nullptr; }
  const Tensor& required_input(int i) const {
    const Tensor* t = input(i);
    RUNNX_CHECK(t, kInvalidModel, node_.label(), ": input ", i, " is required");
    return *t;
  }
  int num_outputs() const { return static_cast<int>(outputs_.size()); }
  bool wants_output(int i) const { return i < num_outputs() && !node_.outputs[i].empty(); }
  Tensor& allocate_output(int i, DType dtype, Shape shape) {
    outputs_[i] = alloc_(i, dtype, std::move(shape));
    return outputs_[i];
  }
  // Output i shares src's bytes (Reshape, Squeeze, ...).
  void set_output_view(int i, const Tensor& src, Shape shape) { outputs_[i] = src.view(std::move(shape)); }
  cudaStream_t stream() const { return stream_; }
  // Device scratch valid until this kernel's work on stream() is done (the next kernel may reuse it).
  void* workspace(size_t bytes) { return bytes ? scratch_(bytes) : nullptr; }
  // A device int, zero before this kernel, that a launcher sets when it finds bad data (an index
  // out of range); the executor reads it after the run and raises InvalidArgument naming the
  // node. nullptr when checks are off (inside a CUDA graph capture).
  int* error_flag() { return flag_ ? flag_() : nullptr; }

 private:
  const Node& node_;
  std::vector<const Tensor*> inputs_;
  std::vector<Tensor>& outputs_;
  cudaStream_t stream_;
  Allocator alloc_;
  Scratch scratch_;
  ErrorFlag flag_;
};

class CudaKernel {
 public:
  virtual ~CudaKernel() = default;
  // Enqueues the node's work; the executor checks cudaGetLastError() after it.
  virtual void run(CudaContext& ctx) const = 0;
  virtual std::string describe() const { return ""; }
};

struct CudaOpSchema {
  std::string op_type;
  std::string domain;  // "" for ai.onnx
  int since = 1;
  // "" when the wrapper takes the node, else why not ("float64 has no CUDA kernel"). No device needed.
  std::function<std::string(const CudaNodeInfo&)> check;
  std::function<std::unique_ptr<CudaKernel>(const CudaNodeInfo&)> make;
  std::vector<int> host_inputs;        // read on the host (shape, axes): copied there if needed
  std::vector<int> shape_only_inputs;  // only their shape is read: never copied
  std::vector<int> packed_inputs;      // constants the kernel copies at make(): not uploaded again
  bool host_outputs = false;           // outputs are written to host memory (Shape, Size)
};

class CudaOpRegistry {
 public:
  static const CudaOpRegistry& global();
  void add(CudaOpSchema schema) { ops_.push_back(std::move(schema)); }
  // The wrapper with the largest `since` not above `opset`, or nullptr.
  const CudaOpSchema* find(const std::string& domain, const std::string& op_type, int64_t opset) const;
  const std::vector<CudaOpSchema>& all() const { return ops_; }

 private:
  std::vector<CudaOpSchema> ops_;
};

inline CudaOpSchema make_schema(std::string op, int since, std::function<std::string(const CudaNodeInfo&)> check,
                               std::function<std::unique_ptr<CudaKernel>(const CudaNodeInfo&)> make,
                               std::string domain = "") {
  CudaOpSchema s;
  s.op_type = std::move(op);
  s.domain = std::move(domain);
  s.since = since;
  s.check = std::move(check);
  s.make = std::move(make);
  return s;
}

// Shared checks for wrappers: "" when every listed input/output dtype is one of `allowed`.
std::string check_dtypes(const CudaNodeInfo& info, const std::vector<DType>& allowed, const std::vector<int>& inputs,
                         bool outputs_too = true);

}  // namespace runnx::cuda
