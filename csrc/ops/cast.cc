// Cast and CastLike between every numeric type, bool, float16 and bfloat16. Values go through
// double only where needed: float<->int conversions truncate toward zero, as C++ and ONNX do.
#include <cmath>
#include <limits>
#include <type_traits>

#include "common/half.h"
#include "ops/kernel.h"
#include "ops/op_util.h"

namespace runnx {

namespace {

// Reads element i of a tensor of type `t` as double (float16/bfloat16 included).
template <typename S>
void cast_from(const S* in, DType to, void* out, int64_t n, const Node& node) {
  auto store = [&](auto tag) {
    using D = decltype(tag);
    D* o = static_cast<D*>(out);
    for (int64_t i = 0; i < n; ++i) {
      if constexpr (std::is_same_v<D, bool>) {
        o[i] = in[i] != S(0);
      } else if constexpr (std::is_integral_v<D> && std::is_floating_point_v<S>) {
        // Out-of-range or NaN float -> int is undefined in C++; clamp NaN to 0 like ORT's x86 path.
        S v = in[i];
        o[i] = std::isnan(v) ? D(0) : static_cast<D>(v);
      } else {
        o[i] = static_cast<D>(in[i]);
      }
    }
  };
  switch (to) {
    case DType::kF16: {
      uint16_t* o = static_cast<uint16_t*>(out);
      for (int64_t i = 0; i < n; ++i) o[i] = float_to_half(static_cast<float>(in[i]));
      return;
    }
    case DType::kBF16: {
      uint16_t* o = static_cast<uint16_t*>(out);
      for (int64_t i = 0; i < n; ++i) o[i] = float_to_bf16(static_cast<float>(in[i]));
      return;
    }
    case DType::kBool: return store(bool{});
    default: dispatch_numeric(to, node, store);
  }
}

void cast(const Tensor& x, DType to, void* out, const Node& node) {
  int64_t n = x.numel();
  if (x.dtype == DType::kF16 || x.dtype == DType::kBF16) {
    std::vector<float> tmp(n);
    const uint16_t* h = x.ptr<uint16_t>();
    for (int64_t i = 0; i < n; ++i) tmp[i] = x.dtype == DType::kF16 ? half_to_float(h[i]) : bf16_to_float(h[i]);
    return cast_from(tmp.data(), to, out, n, node);
  }
  if (x.dtype == DType::kBool) return cast_from(x.ptr<bool>(), to, out, n, node);
  dispatch_numeric(x.dtype, node, [&](auto tag) {
    using S = decltype(tag);
    cast_from(x.ptr<S>(), to, out, n, node);
  });
}

class CastKernel : public Kernel {
 public:
  explicit CastKernel(const KernelInfo& info) : like_(info.node.op_type == "CastLike") {
    if (!like_) {
      int64_t to = info.node.get_int("to", 0);
      RUNNX_CHECK(dtype_valid(static_cast<int32_t>(to)), kUnsupportedOp, info.node.label(),
                  ": cannot cast to element type ", to);
      to_ = static_cast<DType>(to);
    }
  }

  void run(KernelContext& ctx) const override {
    const Tensor& x = ctx.required_input(0);
    DType to = like_ ? ctx.required_input(1).dtype : to_;
    if (to == x.dtype) return ctx.set_output_view(0, x, x.shape);
    Tensor& y = ctx.allocate_output(0, to, x.shape);
    if (y.numel()) cast(x, to, y.data, ctx.node());
  }

 private:
  bool like_;
  DType to_ = DType::kUndefined;
};

}  // namespace

void register_cast_ops(OpRegistry& r) {
  r.add("Cast", "", 6, factory<CastKernel>());
  r.add("CastLike", "", 15, factory<CastKernel>());
}

}  // namespace runnx
