// Conv: im2col + the shared GEMM (per image, group and tile of output rows), and a direct loop
// for depthwise convolutions (one input channel per group), where im2col would only copy.
#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/gemm.h"
#include "ops/conv_util.h"
#include "ops/kernel.h"
#include "ops/op_util.h"

namespace runnx {
namespace {

// An im2col tile holds at most this many elements (4 MiB of floats): it stays in L2/L3 while
// the GEMM streams it, and big images do not need a col buffer the size of the whole image.
constexpr int64_t kColBudget = int64_t{1} << 20;
constexpr int64_t kParallelMacs = int64_t{1} << 17;

// Rows [r0, r1) of the output grid (a row = one (od, oh) pair, OW positions) of the col matrix
// for one group: col[q, (r - r0) * OW + ow], q = ((c * KD + kd) * KH + kh) * KW + kw.
template <typename T>
void im2col(const T* x, int64_t channels, const Geom3& g, int64_t r0, int64_t r1, T* col) {
  const int64_t OW = g.out[2], ld = (r1 - r0) * OW;
  int64_t q = 0;
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t kd = 0; kd < g.k[0]; ++kd)
      for (int64_t kh = 0; kh < g.k[1]; ++kh)
        for (int64_t kw = 0; kw < g.k[2]; ++kw, ++q) {
          T* dst = col + q * ld;
          const int64_t woff = kw * g.d[2] - g.pb[2];
          int64_t lo, hi;
          valid_range(g.in[2], OW, g.s[2], woff, lo, hi);
          for (int64_t r = r0; r < r1; ++r, dst += OW) {
            const int64_t id = (r / g.out[1]) * g.s[0] - g.pb[0] + kd * g.d[0];
            const int64_t ih = (r % g.out[1]) * g.s[1] - g.pb[1] + kh * g.d[1];
            if (id < 0 || id >= g.in[0] || ih < 0 || ih >= g.in[1]) {
              std::fill(dst, dst + OW, T(0));
              continue;
            }
            const T* src = x + ((c * g.in[0] + id) * g.in[1] + ih) * g.in[2] + woff;
            std::fill(dst, dst + lo, T(0));
            if (g.s[2] == 1) {
              std::copy(src + lo, src + hi, dst + lo);
            } else {
              for (int64_t ow = lo; ow < hi; ++ow) dst[ow] = src[ow * g.s[2]];
            }
            std::fill(dst + hi, dst + OW, T(0));
          }
        }
}

// Depthwise: output plane m reads only input plane m / mult. y += w * x over each kernel tap,
// with the valid output range per tap computed once so the inner loop has no bounds checks.
template <typename T>
void depthwise_plane(const T* x, const T* w, T bias, const Geom3& g, T* y) {
  const int64_t OW = g.out[2];
  std::fill(y, y + g.out_size(), bias);
  for (int64_t od = 0; od < g.out[0]; ++od)
    for (int64_t oh = 0; oh < g.out[1]; ++oh) {
      T* yr = y + (od * g.out[1] + oh) * OW;
      for (int64_t kd = 0; kd < g.k[0]; ++kd) {
        const int64_t id = od * g.s[0] - g.pb[0] + kd * g.d[0];
        if (id < 0 || id >= g.in[0]) continue;
        for (int64_t kh = 0; kh < g.k[1]; ++kh) {
          const int64_t ih = oh * g.s[1] - g.pb[1] + kh * g.d[1];
          if (ih < 0 || ih >= g.in[1]) continue;
          const T* xr = x + (id * g.in[1] + ih) * g.in[2];
          for (int64_t kw = 0; kw < g.k[2]; ++kw) {
            const T wv = w[(kd * g.k[1] + kh) * g.k[2] + kw];
            const int64_t off = kw * g.d[2] - g.pb[2];
            int64_t lo, hi;
            valid_range(g.in[2], OW, g.s[2], off, lo, hi);
            const T* xs = xr + off;
            if (g.s[2] == 1) {
              for (int64_t ow = lo; ow < hi; ++ow) yr[ow] += wv * xs[ow];
            } else {
              for (int64_t ow = lo; ow < hi; ++ow) yr[ow] += wv * xs[ow * g.s[2]];
            }
          }
        }
      }
    }
}

class ConvKernel : public Kernel {
 public:
  explicit ConvKernel(const KernelInfo& info) : attrs_(info.node) {
    group_ = info.node.get_int("group", 1);
    RUNNX_CHECK(group_ >= 1, kInvalidModel, info.node.label(), ": group must be >= 1, got ",
                group_);
  }

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    const Tensor& w = ctx.required_input(1);
    const Tensor* b = ctx.input(2);
    RUNNX_CHECK(
        x.rank() >= 3 && w.rank() == x.rank(), kInvalidArgument, node.label(),
        ": X must be [N, C, spatial...] and W [M, C/group, kernel...] of the same rank, got ",
        shape_str(x.shape), " and ", shape_str(w.shape));
    RUNNX_CHECK(x.dtype == w.dtype && (!b || b->dtype == x.dtype), kInvalidArgument, node.label(),
                ": X, W and B must have one element type");
    const int64_t N = x.shape[0], C = x.shape[1], M = w.shape[0];
    RUNNX_CHECK(C == w.shape[1] * group_ && M % group_ == 0, kInvalidArgument, node.label(), ": X ",
                shape_str(x.shape), " and W ", shape_str(w.shape), " do not fit group=", group_);
    RUNNX_CHECK(!b || (b->rank() == 1 && b->shape[0] == M), kInvalidArgument, node.label(),
                ": B must have shape [", M, "], got ", shape_str(b ? b->shape : Shape{}));
    const std::vector<int64_t> in(x.shape.begin() + 2, x.shape.end());
    const std::vector<int64_t> k(w.shape.begin() + 2, w.shape.end());
    if (!attrs_.kernel.empty())
      RUNNX_CHECK(attrs_.kernel == k, kInvalidArgument, node.label(),
                  ": kernel_shape attribute does not match W ", shape_str(w.shape));
    const Geom3 g = window_geometry(node, attrs_, in, k);
    Shape out = {N, M};
    for (size_t i = 0; i < in.size(); ++i) out.push_back(g.out[3 - in.size() + i]);
    Tensor& y = ctx.allocate_output(0, x.dtype, out);
    if (y.numel() == 0) return;
    switch (x.dtype) {
      case DType::kF32:
        return run_typed<float>(x, w, b, g, y, ctx.pool());
      case DType::kF64:
        return run_typed<double>(x, w, b, g, y, ctx.pool());
      default:
        fail(ErrorKind::kUnsupportedOp, node.label(), ": element type ", dtype_name(x.dtype),
             " is not supported");
    }
  }

 private:
  template <typename T>
  void run_typed(const Tensor& xt, const Tensor& wt, const Tensor* bt, const Geom3& g, Tensor& yt,
                 ThreadPool& pool) const {
    const int64_t N = xt.shape[0], C = xt.shape[1], M = wt.shape[0], G = group_;
    const int64_t Cg = C / G, Mg = M / G, K = Cg * g.k_size(), P = g.out_size(), IP = g.in_size();
    const T* x = xt.ptr<T>();
    const T* w = wt.ptr<T>();
    const T* bias = bt ? bt->ptr<T>() : nullptr;
    T* y = yt.ptr<T>();
    if (Cg == 1 && G > 1) {
      const int64_t mult = Mg;
      const int64_t work = P * g.k_size();
      pool.parallel_for(N * M, std::max<int64_t>(1, kParallelMacs / std::max<int64_t>(1, work)),
                        [&](int64_t p0, int64_t p1) {
                          for (int64_t p = p0; p < p1; ++p) {
                            const int64_t n = p / M, m = p % M;
                            depthwise_plane<T>(x + (n * C + m / mult) * IP, w + m * g.k_size(),
                                               bias ? bias[m] : T(0), g, y + p * P);
                          }
                        });
      return;
    }
    // A 1x1 kernel with unit strides and no padding reads X as the col matrix itself.
    const bool pointwise = g.k_size() == 1 && g.s == std::array<int64_t, 3>{1, 1, 1} &&
                           g.pb == std::array<int64_t, 3>{0, 0, 0} && g.pe == g.pb;
    const int64_t rows = g.out[0] * g.out[1], OW = g.out[2];
    int64_t tile =
        pointwise ? rows : std::clamp<int64_t>(kColBudget / std::max<int64_t>(1, K * OW), 1, rows);
    // Enough tiles for every thread when images x groups alone are too few.
    const int64_t threads = pool.num_threads();
    const bool big = N * M * P * K >= kParallelMacs;
    if (big && N * G < threads)
      tile = std::min(tile, std::max<int64_t>(1, (rows * N * G + threads - 1) / threads));
    const int64_t tiles = (rows + tile - 1) / tile, tasks = N * G * tiles;
    const bool outer = big && tasks >= threads;  // parallel over tasks, serial GEMMs inside
    auto body = [&](int64_t t0, int64_t t1) {
      std::vector<T> col;
      if (!pointwise) col.resize(static_cast<size_t>(K * std::min(tile, rows) * OW));
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t n = t / (G * tiles), gi = (t / tiles) % G, r0 = (t % tiles) * tile;
        const int64_t r1 = std::min(rows, r0 + tile), cols = (r1 - r0) * OW;
        const T* xg = x + (n * C + gi * Cg) * IP;
        T* yg = y + (n * M + gi * Mg) * P + r0 * OW;
        const T* B = xg + r0 * OW;
        int64_t ldb = P;
        if (!pointwise) {
          im2col<T>(xg, Cg, g, r0, r1, col.data());
          B = col.data();
          ldb = cols;
        }
        if (bias)
          for (int64_t m = 0; m < Mg; ++m)
            std::fill(yg + m * P, yg + m * P + cols, bias[gi * Mg + m]);
        gemm<T>(Mg, cols, K, w + gi * Mg * K, K, B, ldb, yg, P, bias ? T(1) : T(0),
                outer ? nullptr : &pool);
      }
    };
    if (outer)
      pool.parallel_for(tasks, 1, body);
    else
      body(0, tasks);
  }

  WindowAttrs attrs_;
  int64_t group_ = 1;
};

}  // namespace

void register_conv_transpose_ops(OpRegistry& r);  // ops/conv_transpose.cc

void register_conv_ops(OpRegistry& r) {
  r.add("Conv", "", 7, factory<ConvKernel>());
  register_conv_transpose_ops(r);
}

}  // namespace runnx
