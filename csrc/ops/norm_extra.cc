// Less common normalizations: GroupNormalization (18, 21), LRN, MeanVarianceNormalization,
// LpNormalization, RMSNormalization (23). float32 and double; statistics accumulate in double
// (two passes for variances, so large means do not cancel).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "ops/kernel.h"
#include "ops/op_util.h"
#include "ops/vec_math.h"

namespace runnx {
namespace {

template <typename F>
auto dispatch_float(DType dt, const Node& node, F&& f) {
  switch (dt) {
    case DType::kF32: return f(float{});
    case DType::kF64: return f(double{});
    default:
      fail(ErrorKind::kUnsupportedOp, node.label(), ": element type ", dtype_name(dt),
           " is not supported (float32 and double only)");
  }
}

template <typename T>
constexpr DType float_dtype() {
  return sizeof(T) == 4 ? DType::kF32 : DType::kF64;
}

int64_t grain_rows(int64_t row_len) {
  return std::max<int64_t>(1, (int64_t{1} << 14) / std::max<int64_t>(row_len, 1));
}

// A parameter tensor (scale, bias) broadcast to `shape`, as a contiguous vector of T.
template <typename T>
std::vector<T> expand_param(const Tensor& p, const Shape& shape, const Node& node,
                            const char* what) {
  RUNNX_CHECK(p.dtype == float_dtype<T>(), kInvalidArgument, node.label(), ": ", what, " type ",
              dtype_name(p.dtype), " differs from the input's");
  const Shape b = broadcast_shapes({&shape, &p.shape}, node);
  RUNNX_CHECK(b == shape, kInvalidArgument, node.label(), ": ", what, " ", shape_str(p.shape),
              " does not broadcast to ", shape_str(shape));
  const int64_t n = shape_numel(shape);
  std::vector<T> out(n);
  const std::vector<int64_t> st = broadcast_strides(p.shape, shape);
  const T* src = p.ptr<T>();
  std::vector<int64_t> pos(shape.size(), 0);
  int64_t off = 0;
  for (int64_t i = 0; i < n; ++i) {
    out[i] = src[off];
    for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
      off += st[d];
      if (++pos[d] < shape[d]) break;
      off -= pos[d] * st[d];
      pos[d] = 0;
    }
  }
  return out;
}

// GroupNormalization: x [N, C, ...] split into num_groups groups of C/G channels, each normalised
// over its channels and spatial dims, then scaled per channel. The scale/bias shape changed from
// [num_groups] (opset 18) to [C] (opset 21); both sizes are accepted at any opset since they only
// coincide when G == C, where they mean the same thing.
class GroupNormKernel : public Kernel {
 public:
  explicit GroupNormKernel(const KernelInfo& info)
      : groups_(info.node.get_int("num_groups", 0)),
        eps_(info.node.get_float("epsilon", 1e-5f)) {
    RUNNX_CHECK(info.node.has_attr("num_groups") && groups_ > 0, kInvalidModel,
                info.node.label(), ": num_groups must be a positive integer");
  }
  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    const Tensor& scale = ctx.required_input(1);
    const Tensor& bias = ctx.required_input(2);
    RUNNX_CHECK(x.rank() >= 2, kInvalidArgument, node.label(), ": input must have rank >= 2, got ",
                shape_str(x.shape));
    const int64_t N = x.shape[0], C = x.shape[1], G = groups_;
    RUNNX_CHECK(C % G == 0, kInvalidArgument, node.label(), ": channels ", C,
                " are not a multiple of num_groups ", G);
    const int64_t S = N * C == 0 ? 0 : x.numel() / (N * C);
    for (const Tensor* p : {&scale, &bias})
      RUNNX_CHECK(p->rank() == 1 && (p->shape[0] == C || p->shape[0] == G), kInvalidArgument,
                  node.label(), ": scale and bias must be 1-D of size C = ", C,
                  " (or num_groups = ", G, " before opset 21), got ", shape_str(p->shape));
    const bool per_group = scale.shape[0] != C, bias_per_group = bias.shape[0] != C;
    dispatch_float(x.dtype, node, [&](auto tag) {
      using T = decltype(tag);
      Tensor& y = ctx.allocate_output(0, x.dtype, x.shape);
      if (y.numel() == 0) return;
      RUNNX_CHECK(scale.dtype == x.dtype && bias.dtype == x.dtype, kInvalidArgument, node.label(),
                  ": scale and bias must have the input's type");
      const int64_t cpg = C / G, len = cpg * S;
      const T* X = x.ptr<T>();
      T* Y = y.ptr<T>();
      const T* sc = scale.ptr<T>();
      const T* bi = bias.ptr<T>();
      ctx.pool().parallel_for(N * G, grain_rows(len), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          const T* xr = X + r * len;
          T* yr = Y + r * len;
          const double mean = row_sum(xr, len) / static_cast<double>(len);
          const double var = row_sum_sq_dev(xr, len, mean) / static_cast<double>(len);
          const double inv = 1.0 / std::sqrt(var + static_cast<double>(eps_));
          const int64_t g = r % G;
          for (int64_t c = 0; c < cpg; ++c) {
            const int64_t ch = g * cpg + c;
            const T a = static_cast<T>(inv * static_cast<double>(sc[per_group ? g : ch]));
            const T o = static_cast<T>(static_cast<double>(bi[bias_per_group ? g : ch]) -
                                       mean * static_cast<double>(a));
            const T* xs = xr + c * S;
            T* ys = yr + c * S;
            for (int64_t i = 0; i < S; ++i) ys[i] = xs[i] * a + o;
          }
        }
      });
    });
  }

 private:
  int64_t groups_;
  float eps_;
};

// LRN across channels: y = x / (bias + alpha / size * sum of x^2 over a channel window)^beta,
// the window [c - floor((size-1)/2), c + ceil((size-1)/2)].
class LRNKernel : public Kernel {
 public:
  explicit LRNKernel(const KernelInfo& info)
      : size_(info.node.get_int("size", 0)),
        alpha_(info.node.get_float("alpha", 1e-4f)),
        beta_(info.node.get_float("beta", 0.75f)),
        bias_(info.node.get_float("bias", 1.0f)) {
    RUNNX_CHECK(size_ > 0, kInvalidModel, info.node.label(), ": size must be a positive integer");
  }
  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    RUNNX_CHECK(x.rank() >= 3, kInvalidArgument, node.label(), ": input must have rank >= 3, got ",
                shape_str(x.shape));
    const int64_t N = x.shape[0], C = x.shape[1];
    const int64_t S = N * C == 0 ? 0 : x.numel() / (N * C);
    const int64_t lo = (size_ - 1) / 2, hi = size_ / 2;  // floor and ceil of (size-1)/2
    dispatch_float(x.dtype, node, [&](auto tag) {
      using T = decltype(tag);
      Tensor& y = ctx.allocate_output(0, x.dtype, x.shape);
      if (y.numel() == 0) return;
      const T* X = x.ptr<T>();
      T* Y = y.ptr<T>();
      const T k = static_cast<T>(alpha_ / static_cast<double>(size_)), bias = static_cast<T>(bias_);
      const T beta = static_cast<T>(beta_);
      ctx.pool().parallel_for(N * C, grain_rows(S * size_), [&](int64_t b, int64_t e) {
        std::vector<T> sq(S);
        for (int64_t r = b; r < e; ++r) {
          const int64_t n = r / C, c = r % C;
          std::fill(sq.begin(), sq.end(), T(0));
          for (int64_t j = std::max<int64_t>(0, c - lo); j <= std::min(C - 1, c + hi); ++j) {
            const T* xj = X + (n * C + j) * S;
            for (int64_t i = 0; i < S; ++i) sq[i] += xj[i] * xj[i];
          }
          const T* xr = X + r * S;
          T* yr = Y + r * S;
          for (int64_t i = 0; i < S; ++i) yr[i] = xr[i] / std::pow(bias + k * sq[i], beta);
        }
      });
    });
  }

 private:
  int64_t size_;
  float alpha_, beta_, bias_;
};

// MeanVarianceNormalization: (x - mean) / (sqrt(E[x^2] - mean^2) + 1e-9) over `axes`, the
// formula of the op's function body (including its placement of epsilon).
class MVNKernel : public Kernel {
 public:
  explicit MVNKernel(const KernelInfo& info) : axes_(info.node.get_ints("axes", {0, 2, 3})) {}
  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    const int64_t r = x.rank();
    std::vector<bool> red(r, false);
    for (int64_t a : axes_) red[normalize_axis(a, r, node)] = true;
    // Strides into the per-group statistics (0 on reduced dims).
    Shape gshape(r);
    for (int64_t d = 0; d < r; ++d) gshape[d] = red[d] ? 1 : x.shape[d];
    const std::vector<int64_t> gst = broadcast_strides(gshape, x.shape);
    const int64_t ng = shape_numel(gshape), n = x.numel();
    dispatch_float(x.dtype, node, [&](auto tag) {
      using T = decltype(tag);
      Tensor& y = ctx.allocate_output(0, x.dtype, x.shape);
      if (n == 0) return;
      const T* X = x.ptr<T>();
      T* Y = y.ptr<T>();
      const double cnt = static_cast<double>(n / ng);
      std::vector<double> sum(ng, 0.0), sq(ng, 0.0);
      // Walks every element with its group offset (odometer over dims).
      auto walk = [&](auto&& fn) {
        std::vector<int64_t> pos(r, 0);
        int64_t g = 0;
        for (int64_t i = 0; i < n; ++i) {
          fn(i, g);
          for (int64_t d = r - 1; d >= 0; --d) {
            g += gst[d];
            if (++pos[d] < x.shape[d]) break;
            g -= pos[d] * gst[d];
            pos[d] = 0;
          }
        }
      };
      walk([&](int64_t i, int64_t g) { sum[g] += static_cast<double>(X[i]); });
      for (double& s : sum) s /= cnt;
      walk([&](int64_t i, int64_t g) {
        const double d = static_cast<double>(X[i]) - sum[g];
        sq[g] += d * d;
      });
      for (double& s : sq) s = 1.0 / (std::sqrt(s / cnt) + 1e-9);
      walk([&](int64_t i, int64_t g) {
        Y[i] = static_cast<T>((static_cast<double>(X[i]) - sum[g]) * sq[g]);
      });
    });
  }

 private:
  std::vector<int64_t> axes_;
};

// LpNormalization: x / ||x||_p along `axis` (p = 1 or 2); a zero norm gives 0.
class LpNormKernel : public Kernel {
 public:
  explicit LpNormKernel(const KernelInfo& info)
      : axis_(info.node.get_int("axis", -1)), p_(info.node.get_int("p", 2)) {
    RUNNX_CHECK(p_ == 1 || p_ == 2, kInvalidModel, info.node.label(), ": p must be 1 or 2, got ",
                p_);
  }
  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    RUNNX_CHECK(x.rank() >= 1, kInvalidArgument, node.label(), ": input must have rank >= 1");
    const int64_t axis = normalize_axis(axis_, x.rank(), node);
    const auto [outer, inner] = outer_inner((x).shape, axis);
    const int64_t n = x.shape[axis];
    dispatch_float(x.dtype, node, [&](auto tag) {
      using T = decltype(tag);
      Tensor& y = ctx.allocate_output(0, x.dtype, x.shape);
      if (y.numel() == 0) return;
      const T* X = x.ptr<T>();
      T* Y = y.ptr<T>();
      const bool l1 = p_ == 1;
      ctx.pool().parallel_for(outer, grain_rows(n * inner), [&](int64_t b, int64_t e) {
        std::vector<double> acc(inner);
        for (int64_t o = b; o < e; ++o) {
          const T* xo = X + o * n * inner;
          T* yo = Y + o * n * inner;
          std::fill(acc.begin(), acc.end(), 0.0);
          for (int64_t k = 0; k < n; ++k)
            for (int64_t i = 0; i < inner; ++i) {
              const double v = static_cast<double>(xo[k * inner + i]);
              acc[i] += l1 ? std::fabs(v) : v * v;
            }
          for (int64_t i = 0; i < inner; ++i) {
            const double nrm = l1 ? acc[i] : std::sqrt(acc[i]);
            acc[i] = nrm == 0 ? 0.0 : 1.0 / nrm;
          }
          for (int64_t k = 0; k < n; ++k)
            for (int64_t i = 0; i < inner; ++i)
              yo[k * inner + i] = static_cast<T>(static_cast<double>(xo[k * inner + i]) * acc[i]);
        }
      });
    });
  }

 private:
  int64_t axis_, p_;
};

// RMSNormalization: x / sqrt(mean(x^2 over dims axis..) + epsilon) * scale, scale broadcast to
// x.shape[axis:].
class RMSNormKernel : public Kernel {
 public:
  explicit RMSNormKernel(const KernelInfo& info)
      : axis_(info.node.get_int("axis", -1)), eps_(info.node.get_float("epsilon", 1e-5f)) {}
  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    const Tensor& scale = ctx.required_input(1);
    RUNNX_CHECK(x.rank() >= 1, kInvalidArgument, node.label(), ": input must have rank >= 1");
    const int64_t axis = normalize_axis(axis_, x.rank(), node);
    const Shape norm_shape(x.shape.begin() + axis, x.shape.end());
    const int64_t len = shape_numel(norm_shape);
    const int64_t rows = len == 0 ? 0 : x.numel() / len;
    dispatch_float(x.dtype, node, [&](auto tag) {
      using T = decltype(tag);
      const std::vector<T> sc = expand_param<T>(scale, norm_shape, node, "scale");
      Tensor& y = ctx.allocate_output(0, x.dtype, x.shape);
      if (y.numel() == 0) return;
      const T* X = x.ptr<T>();
      T* Y = y.ptr<T>();
      ctx.pool().parallel_for(rows, grain_rows(len), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          const T* xr = X + r * len;
          T* yr = Y + r * len;
          const double ms = row_sum_sq_dev(xr, len, 0.0) / static_cast<double>(len);
          const T inv = static_cast<T>(1.0 / std::sqrt(ms + static_cast<double>(eps_)));
          for (int64_t i = 0; i < len; ++i) yr[i] = xr[i] * inv * sc[i];
        }
      });
    });
  }

 private:
  int64_t axis_;
  float eps_;
};

}  // namespace

void register_norm_extra_ops(OpRegistry& r) {
  r.add("GroupNormalization", "", 18, factory<GroupNormKernel>());
  r.add("LRN", "", 1, factory<LRNKernel>());
  r.add("MeanVarianceNormalization", "", 9, factory<MVNKernel>());
  r.add("LpNormalization", "", 1, factory<LpNormKernel>());
  r.add("RMSNormalization", "", 23, factory<RMSNormKernel>());
}

}  // namespace runnx
