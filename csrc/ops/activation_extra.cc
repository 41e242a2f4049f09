// Newer-opset odds and ends: Swish (opset 24) and CumProd (opset 26). float32/double (Swish),
// numeric types (CumProd).
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/kernel.h"
#include "ops/op_util.h"
#include "ops/vec_math.h"

namespace runnx {
namespace {

// Swish: x * sigmoid(alpha * x) = x / (1 + exp(-alpha * x)).
class SwishKernel : public Kernel {
 public:
  explicit SwishKernel(const KernelInfo& info) : alpha_(info.node.get_float("alpha", 1.0f)) {}
  int inplace_input() const override { return 0; }
  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    Tensor& y = ctx.allocate_output(0, x.dtype, x.shape);
    const int64_t n = x.numel();
    auto go = [&](auto tag) {
      using T = decltype(tag);
      const T* X = x.ptr<T>();
      T* Y = y.ptr<T>();
      const T a = static_cast<T>(alpha_);
      ctx.pool().parallel_for(n, 1 << 14, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) Y[i] = X[i] / (T(1) + exp_t(-a * X[i]));
      });
    };
    if (x.dtype == DType::kF32)
      go(float{});
    else if (x.dtype == DType::kF64)
      go(double{});
    else
      fail(ErrorKind::kUnsupportedOp, node.label(), ": element type ", dtype_name(x.dtype),
           " is not supported (float32 and double only)");
  }

 private:
  float alpha_;
};

// CumProd(x, axis): running product along axis; `exclusive` shifts by one (starting from 1),
// `reverse` runs from the end.
class CumProdKernel : public Kernel {
 public:
  explicit CumProdKernel(const KernelInfo& info)
      : exclusive_(info.node.get_int("exclusive", 0) != 0),
        reverse_(info.node.get_int("reverse", 0) != 0) {}
  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    const Tensor& at = ctx.required_input(1);
    RUNNX_CHECK(at.numel() == 1 && at.rank() <= 1, kInvalidArgument, node.label(),
                ": axis must be a scalar, got shape ", shape_str(at.shape));
    RUNNX_CHECK(x.rank() >= 1, kInvalidArgument, node.label(), ": input must have rank >= 1");
    const int64_t axis = normalize_axis(read_ints(&at)[0], x.rank(), node);
    const auto [outer, inner] = outer_inner((x).shape, axis);
    const int64_t n = x.shape[axis];
    dispatch_numeric(x.dtype, node, [&](auto tag) {
      using T = decltype(tag);
      Tensor& y = ctx.allocate_output(0, x.dtype, x.shape);
      if (y.numel() == 0) return;
      const T* X = x.ptr<T>();
      T* Y = y.ptr<T>();
      const int64_t grain = std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(n * inner, 1));
      ctx.pool().parallel_for(outer, grain, [&](int64_t b, int64_t e) {
        std::vector<T> acc(inner);
        for (int64_t o = b; o < e; ++o) {
          std::fill(acc.begin(), acc.end(), T(1));
          for (int64_t s = 0; s < n; ++s) {
            const int64_t k = reverse_ ? n - 1 - s : s;
            const T* xr = X + (o * n + k) * inner;
            T* yr = Y + (o * n + k) * inner;
            if (exclusive_) {
              for (int64_t i = 0; i < inner; ++i) {
                yr[i] = acc[i];
                acc[i] = static_cast<T>(acc[i] * xr[i]);
              }
            } else {
              for (int64_t i = 0; i < inner; ++i) yr[i] = acc[i] = static_cast<T>(acc[i] * xr[i]);
            }
          }
        }
      });
    });
  }

 private:
  bool exclusive_, reverse_;
};

}  // namespace

void register_activation_extra_ops(OpRegistry& r) {
  r.add("Swish", "", 24, factory<SwishKernel>());
  r.add("CumProd", "", 26, factory<CumProdKernel>());
}

}  // namespace runnx
