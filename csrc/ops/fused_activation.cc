// com.runnx Gelu: y = 0.5 x (1 + erf(x / sqrt 2)), or with approximate = "tanh"
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). Made by the gelu_fusion pass from the erf /
// tanh subgraphs exporters write (ai.onnx Gelu exists only from opset 20). float32 runs the
// vectorised GEMM-epilogue activation; float64 a plain loop.
#include <algorithm>
#include <cmath>

#include "kernels/cpu/gemm.h"
#include "ops/kernel.h"

namespace runnx {
namespace {

class GeluKernel : public Kernel {
 public:
  explicit GeluKernel(const KernelInfo& info) {
    const std::string approx = info.node.get_string("approximate", "none");
    RUNNX_CHECK(approx == "none" || approx == "tanh", kInvalidModel, info.node.label(),
                ": approximate must be 'none' or 'tanh', got '", approx, "'");
    tanh_ = approx == "tanh";
  }

  void run(KernelContext& ctx) const override {
    const Tensor& x = ctx.required_input(0);
    RUNNX_CHECK(x.dtype == DType::kF32 || x.dtype == DType::kF64, kInvalidArgument, ctx.node().label(),
                ": input must be float or double, got ", dtype_name(x.dtype));
    Tensor& y = ctx.allocate_output(0, x.dtype, x.shape);
    const int64_t n = x.numel();
    if (n == 0) return;
    if (x.dtype == DType::kF64) {
      const double* px = x.ptr<double>();
      double* py = y.ptr<double>();
      for (int64_t i = 0; i < n; ++i) {
        const double v = px[i];
        py[i] = tanh_ ? 0.5 * v * (1 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)))
                      : 0.5 * v * (1 + std::erf(v * 0.7071067811865476));
      }
      return;
    }
    GemmEpilogue epi;
    epi.act = tanh_ ? GemmEpilogue::Act::kGeluTanh : GemmEpilogue::Act::kGeluErf;
    const float* px = x.ptr<float>();
    float* py = y.ptr<float>();
    ctx.pool().parallel_for(n, 16384, [&](int64_t b, int64_t e) {
      if (py != px) std::copy(px + b, px + e, py + b);
      gemm_epilogue_f32(epi, 0, 1, b, e, py, 0);
    });
  }

  int inplace_input() const override { return 0; }
  std::string describe() const override { return tanh_ ? "vectorised tanh form" : "vectorised erf form"; }

 private:
  bool tanh_ = false;
};

}  // namespace

void register_fused_activation_ops(OpRegistry& r) { r.add("Gelu", "com.runnx", 1, factory<GeluKernel>()); }

}  // namespace runnx
