// BatchNormalization (inference), InstanceNormalization and LayerNormalization.
// Statistics are accumulated in double with a two-pass variance: rows are short enough that the
// extra pass costs little, and it avoids the cancellation of E[x^2] - E[x]^2.
#include <algorithm>
#include <cmath>

#include "common/cpu_features.h"
#include "ops/kernel.h"
#include "ops/op_util.h"
#include "ops/vec_math.h"

namespace runnx {
namespace {

// Rows of `len` elements handed to one task: small tensors stay on one thread.
inline int64_t row_grain(int64_t len) {
  return std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(len, 1));
}

[[noreturn]] void unsupported_dtype(const Node& node, DType dt) {
  fail(ErrorKind::kUnsupportedOp, node.label(), ": element type ", dtype_name(dt),
       " is not supported");
}

// A per-channel (or per-element) parameter, read as doubles whatever its float type.
std::vector<double> read_param(const Tensor& t, int64_t want, const char* what, const Node& node,
                               const Shape& x_shape) {
  RUNNX_CHECK(t.numel() == want, kInvalidArgument, node.label(), ": ", what, " has shape ",
              shape_str(t.shape), ", expected ", want, " elements for input of shape ",
              shape_str(x_shape));
  return tensor_to_f64(t);
}

// y = x * a + b per channel, with a = scale / sqrt(var + eps), b = bias - mean * a.
class BatchNormKernel : public Kernel {
 public:
  explicit BatchNormKernel(const KernelInfo& info) : eps_(info.node.get_float("epsilon", 1e-5f)) {
    const Node& node = info.node;
    if (info.opset >= 14 && node.get_int("training_mode", 0) != 0)
      fail(ErrorKind::kUnsupportedOp, node.label(),
           ": training_mode=1 is not supported (inference only)");
    for (size_t i = 1; i < node.outputs.size(); ++i)
      if (!node.outputs[i].empty())
        fail(ErrorKind::kUnsupportedOp, node.label(),
             ": running/saved statistics outputs are training-mode outputs, which are not "
             "supported");
    // `spatial` exists before opset 9 only; spatial=0 has per-element parameters of shape x[1:].
    spatial_ = info.opset >= 9 || node.get_int("spatial", 1) != 0;
  }

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    RUNNX_CHECK(x.rank() >= 2, kInvalidArgument, node.label(),
                ": input must be N x C x ..., got shape ", shape_str(x.shape));
    const int64_t batch = x.shape[0], channels = x.shape[1];
    int64_t spatial = 1;
    for (int64_t d = 2; d < x.rank(); ++d) spatial *= x.shape[d];
    const int64_t per = spatial_ ? channels : channels * spatial;
    std::vector<double> scale = read_param(ctx.required_input(1), per, "scale", node, x.shape);
    std::vector<double> bias = read_param(ctx.required_input(2), per, "B", node, x.shape);
    std::vector<double> mean = read_param(ctx.required_input(3), per, "input_mean", node, x.shape);
    std::vector<double> var = read_param(ctx.required_input(4), per, "input_var", node, x.shape);
    for (int64_t c = 0; c < per; ++c) {
      scale[c] /= std::sqrt(var[c] + eps_);
      bias[c] -= mean[c] * scale[c];
    }
    Tensor& y = ctx.allocate_output(0, x.dtype, x.shape);
    if (x.numel() == 0) return;
    switch (x.dtype) {
      case DType::kF32:
        return compute<float>(ctx, x, y, batch, channels, spatial, scale, bias);
      case DType::kF64:
        return compute<double>(ctx, x, y, batch, channels, spatial, scale, bias);
      default:
        unsupported_dtype(node, x.dtype);
    }
  }

 private:
  template <typename T>
  void compute(KernelContext& ctx, const Tensor& x, Tensor& y, int64_t batch, int64_t channels,
               int64_t spatial, const std::vector<double>& a, const std::vector<double>& b) const {
    const T* xp = x.ptr<T>();
    T* yp = y.ptr<T>();
    std::vector<T> at(a.begin(), a.end()), bt(b.begin(), b.end());
    ctx.pool().parallel_for(batch * channels, row_grain(spatial), [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        const int64_t c = row % channels, off = row * spatial;
        const T* xr = xp + off;
        T* yr = yp + off;
        if (spatial_) {
          const T ac = at[c], bc = bt[c];
          for (int64_t i = 0; i < spatial; ++i) yr[i] = xr[i] * ac + bc;
        } else {
          const T* ac = at.data() + c * spatial;
          const T* bc = bt.data() + c * spatial;
          for (int64_t i = 0; i < spatial; ++i) yr[i] = xr[i] * ac[i] + bc[i];
        }
      }
    });
  }

  float eps_;
  bool spatial_;
};

// Row loops of InstanceNormalization and LayerNormalization, each compiled for the baseline ISA
// and for AVX2+FMA (see vec_math.h); the kernels pick one at session creation.

// Rows [begin, end) of `spatial` elements; row r is channel r % channels.
template <typename T>
RUNNX_INLINE void instance_norm_rows(const T* __restrict x, T* __restrict y, const double* scale,
                                     const double* bias, int64_t channels, int64_t spatial,
                                     double eps, int64_t begin, int64_t end) {
  for (int64_t row = begin; row < end; ++row) {
    const int64_t c = row % channels;
    const T* xr = x + row * spatial;
    T* yr = y + row * spatial;
    const double mean = row_sum(xr, spatial) / spatial;
    const double var = row_sum_sq_dev(xr, spatial, mean) / spatial;
    // (x - mean) * a + B: folding mean into the bias would cancel badly when |mean| >> std.
    const T m = static_cast<T>(mean), a = static_cast<T>(scale[c] / std::sqrt(var + eps));
    const T b = static_cast<T>(bias[c]);
    for (int64_t i = 0; i < spatial; ++i) yr[i] = (xr[i] - m) * a + b;
  }
}
template <typename T>
void instance_norm_rows_base(const T* x, T* y, const double* scale, const double* bias,
                             int64_t channels, int64_t spatial, double eps, int64_t b, int64_t e) {
  instance_norm_rows(x, y, scale, bias, channels, spatial, eps, b, e);
}
template <typename T>
RUNNX_TARGET_AVX2 void instance_norm_rows_avx2(const T* x, T* y, const double* scale,
                                               const double* bias, int64_t channels,
                                               int64_t spatial, double eps, int64_t b, int64_t e) {
  instance_norm_rows(x, y, scale, bias, channels, spatial, eps, b, e);
}

// Rows [begin, end) of `len` elements; `bias`, `mean` and `inv_std` may be null.
template <typename T>
RUNNX_INLINE void layer_norm_rows(const T* __restrict x, T* __restrict y, T* mean_out, T* inv_out,
                                  const T* scale, const T* bias, int64_t len, double eps,
                                  int64_t begin, int64_t end) {
  for (int64_t row = begin; row < end; ++row) {
    const T* xr = x + row * len;
    T* yr = y + row * len;
    // An empty row has mean 0/0 = NaN, as the ONNX reference computes it.
    const double mean = row_sum<16>(xr, len) / len;
    const double inv = 1.0 / std::sqrt(row_sum_sq_dev<16>(xr, len, mean) / len + eps);
    const T m = static_cast<T>(mean), s = static_cast<T>(inv);
    if (bias) {
      for (int64_t i = 0; i < len; ++i) yr[i] = (xr[i] - m) * s * scale[i] + bias[i];
    } else {
      for (int64_t i = 0; i < len; ++i) yr[i] = (xr[i] - m) * s * scale[i];
    }
    if (mean_out) mean_out[row] = static_cast<T>(mean);
    if (inv_out) inv_out[row] = static_cast<T>(inv);
  }
}
template <typename T>
void layer_norm_rows_base(const T* x, T* y, T* mean, T* inv, const T* scale, const T* bias,
                          int64_t len, double eps, int64_t b, int64_t e) {
  layer_norm_rows(x, y, mean, inv, scale, bias, len, eps, b, e);
}
template <typename T>
RUNNX_TARGET_AVX2 void layer_norm_rows_avx2(const T* x, T* y, T* mean, T* inv, const T* scale,
                                            const T* bias, int64_t len, double eps, int64_t b,
                                            int64_t e) {
  layer_norm_rows(x, y, mean, inv, scale, bias, len, eps, b, e);
}

// Per (n, c): normalise over the spatial dims, then scale[c] and B[c].
class InstanceNormKernel : public Kernel {
 public:
  explicit InstanceNormKernel(const KernelInfo& info)
      : eps_(info.node.get_float("epsilon", 1e-5f)),
        avx2_(RUNNX_HAVE_TARGET_AVX2 && cpu_features().has_avx2_fma()) {}

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    RUNNX_CHECK(x.rank() >= 2, kInvalidArgument, node.label(),
                ": input must be N x C x ..., got shape ", shape_str(x.shape));
    const int64_t channels = x.shape[1];
    int64_t spatial = 1;
    for (int64_t d = 2; d < x.rank(); ++d) spatial *= x.shape[d];
    std::vector<double> scale = read_param(ctx.required_input(1), channels, "scale", node, x.shape);
    std::vector<double> bias = read_param(ctx.required_input(2), channels, "B", node, x.shape);
    Tensor& y = ctx.allocate_output(0, x.dtype, x.shape);
    if (x.numel() == 0) return;
    switch (x.dtype) {
      case DType::kF32:
        return compute<float>(ctx, x, y, channels, spatial, scale, bias);
      case DType::kF64:
        return compute<double>(ctx, x, y, channels, spatial, scale, bias);
      default:
        unsupported_dtype(node, x.dtype);
    }
  }

 private:
  template <typename T>
  void compute(KernelContext& ctx, const Tensor& x, Tensor& y, int64_t channels, int64_t spatial,
               const std::vector<double>& scale, const std::vector<double>& bias) const {
    const T* xp = x.ptr<T>();
    T* yp = y.ptr<T>();
    const int64_t rows = x.numel() / spatial;
    auto fn = avx2_ ? instance_norm_rows_avx2<T> : instance_norm_rows_base<T>;
    ctx.pool().parallel_for(rows, row_grain(spatial), [&](int64_t begin, int64_t end) {
      fn(xp, yp, scale.data(), bias.data(), channels, spatial, eps_, begin, end);
    });
  }

  float eps_;
  bool avx2_;
};

// Normalises over dims [axis, rank): Y = (X - mean) * inv_std * Scale + B, with Scale and B
// broadcast against those dims. Optional outputs Mean and InvStdDev have X's shape with the
// normalised dims set to 1; they are float (double for double X, as onnxruntime does).
class LayerNormKernel : public Kernel {
 public:
  explicit LayerNormKernel(const KernelInfo& info)
      : axis_(info.node.get_int("axis", -1)),
        eps_(info.node.get_float("epsilon", 1e-5f)),
        avx2_(RUNNX_HAVE_TARGET_AVX2 && cpu_features().has_avx2_fma()) {
    int64_t stash = info.node.get_int("stash_type", 1);
    RUNNX_CHECK(stash == 1 || stash == 11, kInvalidModel, info.node.label(), ": stash_type ", stash,
                " is not supported (1 = float)");
    const_scale_ = FloatConstant(info, 1);
    const_bias_ = FloatConstant(info, 2);
  }

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    const int64_t axis = normalize_axis(axis_, x.rank(), node);
    int64_t rows = 1, len = 1;
    for (int64_t d = 0; d < x.rank(); ++d) (d < axis ? rows : len) *= x.shape[d];
    const Shape norm_shape(x.shape.begin() + axis, x.shape.end());
    const Tensor& scale_t = ctx.required_input(1);
    const Tensor* bias_t = ctx.input(2);
    check_param(scale_t.shape, norm_shape, "Scale", node);
    if (bias_t) check_param(bias_t->shape, norm_shape, "B", node);
    if (x.dtype == DType::kF32 && const_scale_.is(scale_t, len) && (!bias_t || const_bias_.is(*bias_t, len))) {
      // The usual case (float32 constants of the normalised shape): no per-run conversion.
      Tensor& y = ctx.allocate_output(0, x.dtype, x.shape);
      Tensor* mean = ctx.wants_output(1) ? &ctx.allocate_output(1, DType::kF32, stat_shape(x.shape, axis)) : nullptr;
      Tensor* inv = ctx.wants_output(2) ? &ctx.allocate_output(2, DType::kF32, stat_shape(x.shape, axis)) : nullptr;
      if (rows == 0) return;
      return compute<float>(ctx, x, y, mean, inv, rows, len, const_scale_.values.data(),
                            bias_t ? const_bias_.values.data() : nullptr);
    }
    std::vector<double> scale = expand_param(scale_t, norm_shape, "Scale", node);
    std::vector<double> bias;
    if (bias_t) bias = expand_param(*bias_t, norm_shape, "B", node);

    Tensor& y = ctx.allocate_output(0, x.dtype, x.shape);
    const DType stat_type = x.dtype == DType::kF64 ? DType::kF64 : DType::kF32;
    Tensor* mean = ctx.wants_output(1) ? &ctx.allocate_output(1, stat_type, stat_shape(x.shape, axis)) : nullptr;
    Tensor* inv = ctx.wants_output(2) ? &ctx.allocate_output(2, stat_type, stat_shape(x.shape, axis)) : nullptr;
    if (rows == 0) return;
    switch (x.dtype) {
      case DType::kF32: {
        const std::vector<float> st(scale.begin(), scale.end()), bt(bias.begin(), bias.end());
        return compute<float>(ctx, x, y, mean, inv, rows, len, st.data(), bt.empty() ? nullptr : bt.data());
      }
      case DType::kF64:
        return compute<double>(ctx, x, y, mean, inv, rows, len, scale.data(), bias.empty() ? nullptr : bias.data());
      default:
        unsupported_dtype(node, x.dtype);
    }
  }

 private:
  // A float32 Scale or B constant, read once at load.
  struct FloatConstant {
    std::vector<float> values;
    const void* from = nullptr;  // the constant's data
    FloatConstant() = default;
    FloatConstant(const KernelInfo& info, int input) {
      const Tensor* t = info.constant_input ? info.constant_input(input) : nullptr;
      if (!t || t->dtype != DType::kF32) return;
      values.assign(t->ptr<float>(), t->ptr<float>() + t->numel());
      from = t->data;
    }
    // True when the run's tensor is that constant and holds one value per normalised element.
    bool is(const Tensor& t, int64_t len) const {
      return from && t.data == from && static_cast<int64_t>(values.size()) == len;
    }
  };

  // X's shape with the normalised dims set to 1 (Mean and InvStdDev).
  static Shape stat_shape(const Shape& x, int64_t axis) {
    Shape s = x;
    for (size_t d = static_cast<size_t>(axis); d < s.size(); ++d) s[d] = 1;
    return s;
  }

  // Scale/B must be exactly the normalised shape or broadcastable to it.
  static void check_param(const Shape& shape, const Shape& norm_shape, const char* what, const Node& node) {
    Shape s = shape;
    while (s.size() > norm_shape.size() && s.front() == 1) s.erase(s.begin());
    bool ok = s.size() <= norm_shape.size();
    for (size_t i = 0; ok && i < s.size(); ++i) {
      int64_t want = norm_shape[norm_shape.size() - s.size() + i];
      ok = s[i] == want || s[i] == 1;
    }
    RUNNX_CHECK(ok, kInvalidArgument, node.label(), ": ", what, " of shape ", shape_str(shape),
                " does not broadcast to the normalised shape ", shape_str(norm_shape));
  }

  // Scale/B as `len` doubles (checked by check_param).
  static std::vector<double> expand_param(const Tensor& t, const Shape& norm_shape,
                                          const char* what, const Node& node) {
    check_param(t.shape, norm_shape, what, node);
    std::vector<double> v = tensor_to_f64(t);
    Shape s = t.shape;
    while (s.size() > norm_shape.size() && s.front() == 1) s.erase(s.begin());
    const int64_t len = shape_numel(norm_shape);
    if (static_cast<int64_t>(v.size()) == len) return v;
    std::vector<int64_t> st = broadcast_strides(s, norm_shape);
    std::vector<double> out(len);
    std::vector<int64_t> idx(norm_shape.size(), 0);
    for (int64_t i = 0; i < len; ++i) {
      int64_t off = 0;
      for (size_t d = 0; d < idx.size(); ++d) off += idx[d] * st[d];
      out[i] = v[off];
      for (int64_t d = static_cast<int64_t>(idx.size()) - 1; d >= 0 && ++idx[d] == norm_shape[d];
           --d)
        idx[d] = 0;
    }
    return out;
  }

  template <typename T>
  void compute(KernelContext& ctx, const Tensor& x, Tensor& y, Tensor* mean_out, Tensor* inv_out,
               int64_t rows, int64_t len, const T* scale, const T* bias) const {
    const T* xp = x.ptr<T>();
    T* yp = y.ptr<T>();
    T* mean = mean_out ? mean_out->ptr<T>() : nullptr;
    T* inv = inv_out ? inv_out->ptr<T>() : nullptr;
    auto fn = avx2_ ? layer_norm_rows_avx2<T> : layer_norm_rows_base<T>;
    ctx.pool().parallel_for(rows, row_grain(len), [&](int64_t begin, int64_t end) {
      fn(xp, yp, mean, inv, scale, bias, len, eps_, begin, end);
    });
  }

  int64_t axis_;
  float eps_;
  bool avx2_;
  FloatConstant const_scale_, const_bias_;
};

}  // namespace

void register_norm_ops(OpRegistry& r) {
  r.add("BatchNormalization", "", 7, factory<BatchNormKernel>());
  r.add("InstanceNormalization", "", 1, factory<InstanceNormKernel>());
  r.add("LayerNormalization", "", 17, factory<LayerNormKernel>());
}

}  // namespace runnx
