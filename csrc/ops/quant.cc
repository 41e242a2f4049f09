// Linear quantization: QuantizeLinear, DequantizeLinear (opset 10 per-tensor, 13 per-axis,
// 21 blocked), DynamicQuantizeLinear. The float side is float32; the quantized side is
// int8/uint8/int16/uint16 (and int32 input to DequantizeLinear). Quantize computes x / scale in
// float (as the spec's reference does), rounds half to even and saturates; NaN saturates to the
// type's minimum (what the reference's integer conversion then clip produce).
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "ops/kernel.h"
#include "ops/op_util.h"
#include "ops/vec_math.h"

namespace runnx {
namespace {

constexpr int64_t kGrainElems = 1 << 14;

// How scale/zero-point map onto x viewed as [outer, D, inner] around `axis`.
struct QuantLayout {
  int64_t outer = 1, D = 1, inner = 1;
  int64_t block = 0;    // > 0: blocked along axis
  bool per_tensor = true;
  int64_t nblocks = 1;  // scale's size along axis when blocked
};

QuantLayout make_layout(const Tensor& x, const Tensor& scale, const Tensor* zp, int64_t axis_attr,
                        int64_t block, const Node& node) {
  QuantLayout L;
  // A one-element zero point may differ in rank from a one-element scale ([] vs [1]: what
  // onnxruntime's quantizer writes for biases, and onnxruntime accepts).
  RUNNX_CHECK(!zp || zp->shape == scale.shape || (zp->numel() == 1 && scale.numel() == 1), kInvalidArgument, node.label(), ": zero point ",
              shape_str(zp ? zp->shape : Shape{}), " must have the shape of scale ",
              shape_str(scale.shape));
  if (scale.numel() == 1 && scale.rank() <= 1 && block <= 0) return L;  // per-tensor
  L.per_tensor = false;
  RUNNX_CHECK(x.rank() >= 1, kInvalidArgument, node.label(),
              ": a per-axis scale needs an input of rank >= 1");
  const int64_t axis = normalize_axis(axis_attr, x.rank(), node);
  for (int64_t d = 0; d < x.rank(); ++d)
    if (d < axis)
      L.outer *= x.shape[d];
    else if (d > axis)
      L.inner *= x.shape[d];
  L.D = x.shape[axis];
  if (block <= 0) {
    RUNNX_CHECK(scale.rank() == 1 && scale.shape[0] == L.D, kInvalidArgument, node.label(),
                ": scale ", shape_str(scale.shape), " must be a scalar or 1-D of size ", L.D,
                " (axis ", axis, " of input ", shape_str(x.shape), ")");
    return L;
  }
  L.block = block;
  L.nblocks = (L.D + block - 1) / block;
  Shape want = x.shape;
  want[axis] = L.nblocks;
  RUNNX_CHECK(scale.shape == want, kInvalidArgument, node.label(), ": blocked scale ",
              shape_str(scale.shape), " must have shape ", shape_str(want), " for input ",
              shape_str(x.shape), " and block_size ", block);
  return L;
}

// Calls body(row, x_offset, param_offset, param_stride, n) for every run of `n` elements sharing
// one scale row: per-tensor has one run, per-axis one run per (outer, d) with a constant scale,
// blocked one run per (outer, d) with scale advancing along inner.
template <typename F>
void for_each_run(const QuantLayout& L, int64_t total, ThreadPool& pool, F&& body) {
  if (L.per_tensor) {
    pool.parallel_for(total, kGrainElems, [&](int64_t b, int64_t e) { body(b, 0, 0, e - b); });
    return;
  }
  const int64_t rows = L.outer * L.D;
  pool.parallel_for(rows, std::max<int64_t>(1, kGrainElems / std::max<int64_t>(L.inner, 1)),
                    [&](int64_t b, int64_t e) {
                      for (int64_t r = b; r < e; ++r) {
                        const int64_t o = r / L.D, d = r % L.D;
                        if (L.block > 0)
                          body(r * L.inner, (o * L.nblocks + d / L.block) * L.inner, 1, L.inner);
                        else
                          body(r * L.inner, d, 0, L.inner);
                      }
                    });
}

template <typename Q>
void quantize(const float* x, const float* scale, const Q* zp, Q* y, const QuantLayout& L,
              int64_t total, ThreadPool& pool) {
  const float lo = static_cast<float>(std::numeric_limits<Q>::min());
  const float hi = static_cast<float>(std::numeric_limits<Q>::max());
  // Saturate before rounding (the bounds are integers, so the result is the same), then round
  // half to even by adding and subtracting 1.5 * 2^23 (|v| < 2^22 here): no libm call and no
  // branch (min/max, where NaN ends at lo), so the loop vectorises (a run with one scale is its
  // own loop for that).
  auto one = [lo, hi](float v, float z) {
    v = std::max(lo - z, std::min(v, hi - z));
    return static_cast<Q>((v + 12582912.0f) - 12582912.0f + z);
  };
  for_each_run(L, total, pool, [&](int64_t xo, int64_t po, int64_t ps, int64_t n) {
    const float* s = scale + po;
    if (ps == 0) {
      const float s0 = s[0], z = zp ? static_cast<float>(zp[po]) : 0.0f;
      for (int64_t i = 0; i < n; ++i) y[xo + i] = one(x[xo + i] / s0, z);
      return;
    }
    for (int64_t i = 0; i < n; ++i)
      y[xo + i] = one(x[xo + i] / s[i * ps], zp ? static_cast<float>(zp[po + i * ps]) : 0.0f);
  });
}

template <typename Q>
void dequantize(const Q* x, const float* scale, const Q* zp, float* y, const QuantLayout& L,
                int64_t total, ThreadPool& pool) {
  for_each_run(L, total, pool, [&](int64_t xo, int64_t po, int64_t ps, int64_t n) {
    const float* s = scale + po;
    for (int64_t i = 0; i < n; ++i) {
      const float z = zp ? static_cast<float>(zp[po + i * ps]) : 0.0f;
      y[xo + i] = (static_cast<float>(x[xo + i]) - z) * s[i * ps];
    }
  });
}

// Calls f(Q{}) for the quantized types we support.
template <typename F>
void dispatch_quant(DType dt, const Node& node, bool allow_i32, F&& f) {
  switch (dt) {
    case DType::kU8: return f(uint8_t{});
    case DType::kI8: return f(int8_t{});
    case DType::kU16: return f(uint16_t{});
    case DType::kI16: return f(int16_t{});
    case DType::kI32:
      if (allow_i32) return f(int32_t{});
      [[fallthrough]];
    default:
      fail(ErrorKind::kUnsupportedOp, node.label(), ": quantized type ", dtype_name(dt),
           " is not supported");
  }
}

void check_float_side(const Tensor& t, const char* what, const Node& node) {
  RUNNX_CHECK(t.dtype == DType::kF32, kUnsupportedOp, node.label(), ": ", what, " of type ",
              dtype_name(t.dtype), " is not supported (float32 only)");
}

class QuantizeLinearKernel : public Kernel {
 public:
  explicit QuantizeLinearKernel(const KernelInfo& info)
      : axis_(info.node.get_int("axis", 1)),
        block_(info.opset >= 21 ? info.node.get_int("block_size", 0) : 0),
        out_dtype_(info.opset >= 21 ? info.node.get_int("output_dtype", 0) : 0) {
    RUNNX_CHECK(block_ >= 0, kInvalidModel, info.node.label(), ": block_size must be >= 0");
  }
  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    const Tensor& scale = ctx.required_input(1);
    const Tensor* zp = ctx.input(2);
    check_float_side(x, "input", node);
    check_float_side(scale, "scale", node);
    DType qt = out_dtype_ ? static_cast<DType>(out_dtype_) : DType::kU8;
    if (zp) {
      RUNNX_CHECK(!out_dtype_ || zp->dtype == qt, kInvalidArgument, node.label(),
                  ": zero point type ", dtype_name(zp->dtype), " differs from output_dtype ",
                  dtype_name(qt));
      qt = zp->dtype;
    }
    const QuantLayout L = make_layout(x, scale, zp, axis_, block_, node);
    dispatch_quant(qt, node, false, [&](auto tag) {
      using Q = decltype(tag);
      Tensor& y = ctx.allocate_output(0, qt, x.shape);
      if (y.numel() == 0) return;
      quantize<Q>(x.ptr<float>(), scale.ptr<float>(), zp ? zp->ptr<Q>() : nullptr, y.ptr<Q>(), L,
                  y.numel(), ctx.pool());
    });
  }

 private:
  int64_t axis_, block_, out_dtype_;
};

class DequantizeLinearKernel : public Kernel {
 public:
  explicit DequantizeLinearKernel(const KernelInfo& info)
      : axis_(info.node.get_int("axis", 1)),
        block_(info.opset >= 21 ? info.node.get_int("block_size", 0) : 0) {
    const int64_t od = info.opset >= 23 ? info.node.get_int("output_dtype", 0) : 0;
    RUNNX_CHECK(block_ >= 0, kInvalidModel, info.node.label(), ": block_size must be >= 0");
    RUNNX_CHECK(od == 0 || od == static_cast<int64_t>(DType::kF32), kUnsupportedOp,
                info.node.label(), ": output_dtype ", od, " is not supported (float32 only)");
  }
  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    const Tensor& scale = ctx.required_input(1);
    const Tensor* zp = ctx.input(2);
    check_float_side(scale, "scale", node);
    RUNNX_CHECK(!zp || zp->dtype == x.dtype, kInvalidArgument, node.label(), ": zero point type ",
                dtype_name(zp ? zp->dtype : x.dtype), " differs from input type ",
                dtype_name(x.dtype));
    const QuantLayout L = make_layout(x, scale, zp, axis_, block_, node);
    dispatch_quant(x.dtype, node, true, [&](auto tag) {
      using Q = decltype(tag);
      Tensor& y = ctx.allocate_output(0, DType::kF32, x.shape);
      if (y.numel() == 0) return;
      dequantize<Q>(x.ptr<Q>(), scale.ptr<float>(), zp ? zp->ptr<Q>() : nullptr, y.ptr<float>(),
                    L, y.numel(), ctx.pool());
    });
  }

 private:
  int64_t axis_, block_;
};

// DynamicQuantizeLinear: uint8 with scale and zero point chosen so that [min(x, 0), max(x, 0)]
// maps onto [0, 255]; outputs y, y_scale (float32 scalar), y_zero_point (uint8 scalar).
class DynamicQuantizeLinearKernel : public Kernel {
 public:
  explicit DynamicQuantizeLinearKernel(const KernelInfo&) {}
  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    check_float_side(x, "input", node);
    const int64_t n = x.numel();
    const float* X = x.ptr<float>();
    const float mx = std::max(0.0f, n ? row_max(X, n) : 0.0f);
    const float mn = std::min(0.0f, n ? row_extreme<false>(X, n) : 0.0f);
    const float scale = (mx == mn ? 1.0f : mx - mn) / 255.0f;
    float zpf = 0.0f - mn / scale;
    zpf = std::nearbyint(std::clamp(zpf, 0.0f, 255.0f));
    const uint8_t zp = static_cast<uint8_t>(zpf);
    Tensor& y = ctx.allocate_output(0, DType::kU8, x.shape);
    if (ctx.wants_output(1)) *ctx.allocate_output(1, DType::kF32, {}).ptr<float>() = scale;
    if (ctx.wants_output(2)) *ctx.allocate_output(2, DType::kU8, {}).ptr<uint8_t>() = zp;
    if (n == 0) return;
    QuantLayout L;
    quantize<uint8_t>(X, &scale, &zp, y.ptr<uint8_t>(), L, n, ctx.pool());
  }
};

}  // namespace

void register_quant_ops(OpRegistry& r) {
  r.add("QuantizeLinear", "", 10, factory<QuantizeLinearKernel>());
  r.add("DequantizeLinear", "", 10, factory<DequantizeLinearKernel>());
  r.add("DynamicQuantizeLinear", "", 11, factory<DynamicQuantizeLinearKernel>());
}

}  // namespace runnx
