// Softmax, LogSoftmax and LayerNormalization on the device (softmax.h, layernorm.h).
#include "cuda/cuda_kernel.h"
#include "cuda/kernels/layernorm.h"
#include "cuda/kernels/softmax.h"
#include "ops/op_util.h"

namespace runnx::cuda {
namespace {

const std::vector<DType> kFloat = {DType::kF32, DType::kF16};

std::string float_io(const CudaNodeInfo& info) { return check_dtypes(info, kFloat, {0, 1, 2, 3}); }

class SoftmaxKernel : public CudaKernel {
 public:
  SoftmaxKernel(const CudaNodeInfo& info, bool log)
      : log_(log), coerce_2d_(info.opset < 13), axis_(info.node.get_int("axis", info.opset < 13 ? 1 : -1)) {}
  void run(CudaContext& ctx) const override {
    const Tensor& x = ctx.required_input(0);
    Tensor& y = ctx.allocate_output(0, x.dtype, x.shape);
    if (y.numel() == 0) return;
    const int64_t r = std::max<int64_t>(x.rank(), 1);
    const int64_t axis = normalize_axis(axis_, r, ctx.node());
    int64_t outer = 1, len = 1, inner = 1;
    for (int64_t d = 0; d < x.rank(); ++d) {
      if (d < axis) outer *= x.shape[d];
      else if (d == axis || coerce_2d_) len *= x.shape[d];
      else inner *= x.shape[d];
    }
    launch_softmax(x.dtype, x.data, y.data, outer, len, inner, log_, ctx.stream());
  }

 private:
  bool log_, coerce_2d_;
  int64_t axis_;
};

class LayerNormKernel : public CudaKernel {
 public:
  explicit LayerNormKernel(const CudaNodeInfo& info)
      : axis_(info.node.get_int("axis", -1)), epsilon_(info.node.get_float("epsilon", 1e-5f)) {}
  void run(CudaContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    const Tensor& scale = ctx.required_input(1);
    const Tensor* bias = ctx.input(2);
    const int64_t axis = normalize_axis(axis_, x.rank(), node);
    int64_t rows = 1, cols = 1;
    for (int64_t d = 0; d < x.rank(); ++d) (d < axis ? rows : cols) *= x.shape[d];
    RUNNX_CHECK(scale.numel() == cols && (!bias || bias->numel() == cols), kInvalidArgument, node.label(),
                ": scale and bias must have the ", cols, " elements of the normalised dims (broadcasting them has no CUDA kernel)");
    Tensor& y = ctx.allocate_output(0, x.dtype, x.shape);
    Shape stat_shape(x.shape.begin(), x.shape.begin() + axis);
    stat_shape.resize(x.shape.size(), 1);
    LayerNormArgs a;
    a.x = x.data;
    a.scale = scale.data;
    a.bias = bias ? bias->data : nullptr;
    a.y = y.data;
    a.rows = rows;
    a.cols = cols;
    a.epsilon = epsilon_;
    if (ctx.wants_output(1)) a.mean = ctx.allocate_output(1, DType::kF32, stat_shape).ptr<float>();
    if (ctx.wants_output(2)) a.inv_std = ctx.allocate_output(2, DType::kF32, stat_shape).ptr<float>();
    if (y.numel() == 0) return;
    launch_layernorm(x.dtype, a, ctx.stream());
  }

 private:
  int64_t axis_;
  float epsilon_;
};

}  // namespace

void register_cuda_norm_ops(CudaOpRegistry& r) {
  for (bool log : {false, true})
    r.add(make_schema(log ? "LogSoftmax" : "Softmax", 1, float_io,
                      [log](const CudaNodeInfo& i) { return std::make_unique<SoftmaxKernel>(i, log); }));
  r.add(make_schema(
      "LayerNormalization", 17,
      [](const CudaNodeInfo& info) {
        std::string why = check_dtypes(info, kFloat, {0, 1, 2}, false);
        if (!why.empty()) return why;
        for (int k : {1, 2})
          if (info.has_input(k) && info.input_dtype(k) != info.input_dtype(0)) return std::string("mixed dtypes");
        for (int k : {1, 2})
          if (info.output_dtype(k) != DType::kUndefined && info.output_dtype(k) != DType::kF32)
            return std::string("statistics outputs other than float32");
        return std::string();
      },
      [](const CudaNodeInfo& i) { return std::make_unique<LayerNormKernel>(i); }));
}

}  // namespace runnx::cuda
