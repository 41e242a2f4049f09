// Ops that never read their data input's bytes run "on the device" by reusing the CPU kernel's
// shape logic on the device pointer: Reshape, Flatten, Squeeze, Unsqueeze, Identity and Dropout
// give views of the input; Shape and Size read only its shape and write a small host tensor.
// Shape-like inputs (Reshape's shape, the axes) are read on the host.
#include "cuda/cuda_kernel.h"
#include "ops/kernel.h"

namespace runnx::cuda {
namespace {

ThreadPool& no_threads() {
  static ThreadPool pool(1);  // the adapted kernels never fork
  return pool;
}

class CpuShapeKernel : public CudaKernel {
 public:
  explicit CpuShapeKernel(const CudaNodeInfo& info) {
    KernelInfo k{info.node, info.opset, info.constant_input, 1};
    k.release_constant = [](int) {};
    cpu_ = OpRegistry::global().find(info.node.domain, info.node.op_type, info.opset)->make(k);
  }
  void run(CudaContext& ctx) const override {
    std::vector<const Tensor*> ins;
    for (int i = 0; i < ctx.num_inputs(); ++i) ins.push_back(ctx.input(i));
    std::vector<Tensor> outs(ctx.num_outputs());
    KernelContext cpu_ctx(ctx.node(), ins, outs, no_threads(), [&](int i, DType dt, Shape s) {
      return ctx.allocate_output(i, dt, std::move(s));
    });
    cpu_->run(cpu_ctx);
    for (int i = 0; i < ctx.num_outputs(); ++i)  // views (and allocated outputs, unchanged)
      if (outs[i].dtype != DType::kUndefined) ctx.set_output_view(i, outs[i], outs[i].shape);
  }
  std::string describe() const override { return "shape logic only (no device work)"; }

 private:
  std::unique_ptr<Kernel> cpu_;
};

std::string always(const CudaNodeInfo&) { return ""; }

std::string dropout_check(const CudaNodeInfo& info) {
  if (info.node.outputs.size() > 1 && !info.node.outputs[1].empty()) return "the mask output has no CUDA kernel";
  if (info.opset >= 12 && info.has_input(2) && !info.is_constant(2)) return "training_mode is not a constant";
  return "";
}

CudaOpSchema schema(const char* op, int since, std::vector<int> host_inputs,
                    std::function<std::string(const CudaNodeInfo&)> check = always) {
  CudaOpSchema s = make_schema(op, since, std::move(check), [](const CudaNodeInfo& info) -> std::unique_ptr<CudaKernel> {
    return std::make_unique<CpuShapeKernel>(info);
  });
  s.host_inputs = std::move(host_inputs);
  return s;
}

}  // namespace

void register_cuda_views_ops(CudaOpRegistry& r) {
  r.add(schema("Reshape", 5, {1}));
  r.add(schema("Flatten", 1, {}));
  r.add(schema("Squeeze", 1, {1}));
  r.add(schema("Unsqueeze", 1, {1}));
  r.add(schema("Identity", 1, {}));
  r.add(schema("Dropout", 1, {1, 2}, dropout_check));
  for (const char* op : {"Shape", "Size"}) {
    CudaOpSchema s = schema(op, 1, {});
    s.shape_only_inputs = {0};
    s.host_outputs = true;
    r.add(std::move(s));
  }
}

}  // namespace runnx::cuda
