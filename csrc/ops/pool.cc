// MaxPool (with the optional Indices output), AveragePool, GlobalAveragePool, GlobalMaxPool.
// Windows are walked tap by tap over whole output rows: for each kernel tap the output positions
// whose input lies inside the image form one range, so the inner loop is a branch-free strided
// max/add over a row (vectorised when the stride is 1).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/conv_simd.h"
#include "ops/conv_util.h"
#include "ops/kernel.h"
#include "ops/op_util.h"

namespace runnx {
namespace {

constexpr int64_t kGrainElems = 16384;

template <typename F>
void dispatch_pool_type(DType dt, const Node& node, bool ints, F&& f) {
  switch (dt) {
    case DType::kF32:
      return f(float{});
    case DType::kF64:
      return f(double{});
    case DType::kI8:
      if (ints) return f(int8_t{});
      break;
    case DType::kU8:
      if (ints) return f(uint8_t{});
      break;
    default:
      break;
  }
  fail(ErrorKind::kUnsupportedOp, node.label(), ": element type ", dtype_name(dt),
       " is not supported");
}

// Calls tap(yrow, xrow_with_offset, lo, hi, input_base) for every kernel tap of output row
// (od, oh) that lands inside the image; positions ow in [lo, hi) read x[off + ow * s].
template <typename F>
void for_each_tap(const Geom3& g, int64_t od, int64_t oh, F&& tap) {
  for (int64_t kd = 0; kd < g.k[0]; ++kd) {
    const int64_t id = od * g.s[0] - g.pb[0] + kd * g.d[0];
    if (id < 0 || id >= g.in[0]) continue;
    for (int64_t kh = 0; kh < g.k[1]; ++kh) {
      const int64_t ih = oh * g.s[1] - g.pb[1] + kh * g.d[1];
      if (ih < 0 || ih >= g.in[1]) continue;
      for (int64_t kw = 0; kw < g.k[2]; ++kw) {
        const int64_t off = kw * g.d[2] - g.pb[2];
        int64_t lo, hi;
        valid_range(g.in[2], g.out[2], g.s[2], off, lo, hi);
        tap(id, ih, off, lo, hi);
      }
    }
  }
}

class PoolKernel : public Kernel {
 public:
  PoolKernel(const KernelInfo& info, bool is_max) : attrs_(info.node), max_(is_max) {
    const Node& node = info.node;
    RUNNX_CHECK(!attrs_.kernel.empty(), kInvalidModel, node.label(), ": kernel_shape is required");
    ceil_mode_ = node.get_int("ceil_mode", 0) != 0;
    count_include_pad_ = node.get_int("count_include_pad", 0) != 0;
    storage_order_ = node.get_int("storage_order", 0);
    RUNNX_CHECK(storage_order_ == 0 || storage_order_ == 1, kInvalidModel, node.label(),
                ": storage_order must be 0 or 1, got ", storage_order_);
  }

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    const int64_t n = static_cast<int64_t>(attrs_.kernel.size());
    RUNNX_CHECK(x.rank() == n + 2, kInvalidArgument, node.label(), ": X of shape ",
                shape_str(x.shape), " does not match a ", n, "-D kernel_shape");
    const std::vector<int64_t> in(x.shape.begin() + 2, x.shape.end());
    const Geom3 g = window_geometry(node, attrs_, in, attrs_.kernel, ceil_mode_);
    Shape out = {x.shape[0], x.shape[1]};
    for (int64_t i = 0; i < n; ++i) out.push_back(g.out[3 - n + i]);
    Tensor& y = ctx.allocate_output(0, x.dtype, out);
    Tensor* idx = max_ && ctx.wants_output(1) ? &ctx.allocate_output(1, DType::kI64, out) : nullptr;
    if (y.numel() == 0) return;
    const int64_t planes = x.shape[0] * x.shape[1];
    const int64_t grain =
        std::max<int64_t>(1, kGrainElems / std::max<int64_t>(1, g.out_size() * g.k_size()));
    // Float 1-D / 2-D MaxPool without indices: the vectorised separable plane (conv_simd).
    const bool simd_max = max_ && !idx && x.dtype == DType::kF32 && g.k[0] == 1 && g.in[0] == 1 &&
                          g.pb[0] == 0 && g.pe[0] == 0;  // a padded depth would add output slices
    const MaxPoolGeom mg{g.in[1], g.in[2], g.out[1], g.out[2], g.k[1], g.k[2],
                         g.s[1],  g.s[2],  g.d[1],   g.d[2],   g.pb[1], g.pb[2]};
    if (simd_max) return max_pool_bands(x, mg, planes, g.in_size(), g.out_size(), y, ctx.pool());
    dispatch_pool_type(x.dtype, node, max_, [&](auto tag) {
      using T = decltype(tag);
      ctx.pool().parallel_for(planes, grain, [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p) {
          const T* xp = x.ptr<T>() + p * g.in_size();
          T* yp = y.ptr<T>() + p * g.out_size();
          if (!max_) {
            if constexpr (std::is_floating_point_v<T>) avg_plane(xp, g, yp);
          } else if (idx) {
            max_plane_indices(xp, g, yp, idx->ptr<int64_t>() + p * g.out_size(), p * g.in_size());
          } else {
            max_plane(xp, g, yp);
          }
        }
      });
    });
  }

 private:
  // The vectorised float MaxPool (conv_simd's plane) over `planes` planes, split into one band of
  // output rows per thread, band-major: thread t pools the t-th band of every plane, the rows the
  // previous kernel split the same way left in its core's cache (split by planes, half of every
  // plane came from the other core: a 7x7/s2 stem then this 3x3/s2 pool, 2 threads: 100 -> 76 us).
  static void max_pool_bands(const Tensor& x, const MaxPoolGeom& mg, int64_t planes, int64_t in_size,
                             int64_t out_size, Tensor& y, ThreadPool& pool) {
    const int64_t bands = std::clamp<int64_t>(pool.num_threads(), 1, mg.OH);
    const int64_t task_elems = std::max<int64_t>(1, out_size / bands * mg.kh * mg.kw);
    const int64_t grain = std::max<int64_t>(1, kGrainElems / task_elems);
    pool.parallel_for(planes * bands, grain, [&](int64_t t0, int64_t t1) {
      std::vector<float> scratch(static_cast<size_t>(mg.scratch_floats()));
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t band = t / planes, p = t % planes;
        conv_simd().max_pool_plane(x.ptr<float>() + p * in_size, mg, band * mg.OH / bands,
                                   (band + 1) * mg.OH / bands, y.ptr<float>() + p * out_size, scratch.data());
      }
    });
  }

  template <typename T>
  static void max_plane(const T* x, const Geom3& g, T* y) {
    const int64_t OW = g.out[2];
    for (int64_t od = 0; od < g.out[0]; ++od)
      for (int64_t oh = 0; oh < g.out[1]; ++oh) {
        T* yr = y + (od * g.out[1] + oh) * OW;
        std::fill(yr, yr + OW, std::numeric_limits<T>::lowest());
        for_each_tap(g, od, oh, [&](int64_t id, int64_t ih, int64_t off, int64_t lo, int64_t hi) {
          const T* xs = x + (id * g.in[1] + ih) * g.in[2] + off;
          if (g.s[2] == 1) {
            for (int64_t ow = lo; ow < hi; ++ow) yr[ow] = xs[ow] > yr[ow] ? xs[ow] : yr[ow];
          } else {
            for (int64_t ow = lo; ow < hi; ++ow) {
              const T v = xs[ow * g.s[2]];
              yr[ow] = v > yr[ow] ? v : yr[ow];
            }
          }
        });
      }
  }

  // Same walk, also recording where each max came from: the first one in window order wins.
  // Indices are flat positions in X (base = this plane's offset), row-major, or column-major
  // over the spatial dims when storage_order = 1.
  template <typename T>
  void max_plane_indices(const T* x, const Geom3& g, T* y, int64_t* ind, int64_t base) const {
    const int64_t OW = g.out[2];
    for (int64_t od = 0; od < g.out[0]; ++od)
      for (int64_t oh = 0; oh < g.out[1]; ++oh) {
        T* yr = y + (od * g.out[1] + oh) * OW;
        int64_t* ir = ind + (od * g.out[1] + oh) * OW;
        std::fill(yr, yr + OW, std::numeric_limits<T>::lowest());
        std::fill(ir, ir + OW, int64_t{-1});
        for_each_tap(g, od, oh, [&](int64_t id, int64_t ih, int64_t off, int64_t lo, int64_t hi) {
          const T* xs = x + (id * g.in[1] + ih) * g.in[2] + off;
          for (int64_t ow = lo; ow < hi; ++ow) {
            const T v = xs[ow * g.s[2]];
            if (v > yr[ow] || ir[ow] < 0) {
              yr[ow] = v;
              const int64_t iw = off + ow * g.s[2];
              ir[ow] = base + (storage_order_ == 0 ? (id * g.in[1] + ih) * g.in[2] + iw
                                                   : id + ih * g.in[0] + iw * g.in[0] * g.in[1]);
            }
          }
        });
      }
  }

  // Divisors are separable: per dim, count the taps inside the image (or inside the padded
  // image with count_include_pad) for each output position; the window's count is the product.
  template <typename T>
  void avg_plane(const T* x, const Geom3& g, T* y) const {
    std::array<std::vector<int64_t>, 3> cnt;
    for (int a = 0; a < 3; ++a) {
      cnt[a].resize(g.out[a]);
      const int64_t lo_lim = count_include_pad_ ? -g.pb[a] : 0;
      const int64_t hi_lim = count_include_pad_ ? g.in[a] + g.pe[a] : g.in[a];
      for (int64_t o = 0; o < g.out[a]; ++o) {
        int64_t c = 0;
        for (int64_t k = 0; k < g.k[a]; ++k) {
          const int64_t pos = o * g.s[a] - g.pb[a] + k * g.d[a];
          c += pos >= lo_lim && pos < hi_lim;
        }
        cnt[a][o] = c;
      }
    }
    const int64_t OW = g.out[2];
    for (int64_t od = 0; od < g.out[0]; ++od)
      for (int64_t oh = 0; oh < g.out[1]; ++oh) {
        T* yr = y + (od * g.out[1] + oh) * OW;
        std::fill(yr, yr + OW, T(0));
        for_each_tap(g, od, oh, [&](int64_t id, int64_t ih, int64_t off, int64_t lo, int64_t hi) {
          const T* xs = x + (id * g.in[1] + ih) * g.in[2] + off;
          if (g.s[2] == 1) {
            for (int64_t ow = lo; ow < hi; ++ow) yr[ow] += xs[ow];
          } else {
            for (int64_t ow = lo; ow < hi; ++ow) yr[ow] += xs[ow * g.s[2]];
          }
        });
        const int64_t c01 = cnt[0][od] * cnt[1][oh];
        for (int64_t ow = 0; ow < OW; ++ow) {
          const int64_t c = c01 * cnt[2][ow];
          yr[ow] = c > 0 ? yr[ow] / static_cast<T>(c) : std::numeric_limits<T>::quiet_NaN();
        }
      }
  }

  WindowAttrs attrs_;
  bool max_;
  bool ceil_mode_ = false, count_include_pad_ = false;
  int64_t storage_order_ = 0;
};

class MaxPoolKernel : public PoolKernel {
 public:
  explicit MaxPoolKernel(const KernelInfo& info) : PoolKernel(info, true) {}
};
class AveragePoolKernel : public PoolKernel {
 public:
  explicit AveragePoolKernel(const KernelInfo& info) : PoolKernel(info, false) {}
};

// GlobalAveragePool / GlobalMaxPool: one value per (n, c) plane; spatial dims become 1.
class GlobalPoolKernel : public Kernel {
 public:
  GlobalPoolKernel(const KernelInfo&, bool is_max) : max_(is_max) {}

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    RUNNX_CHECK(x.rank() >= 2, kInvalidArgument, node.label(),
                ": X must be [N, C, spatial...], got ", shape_str(x.shape));
    Shape out = x.shape;
    int64_t plane = 1;
    for (size_t i = 2; i < out.size(); ++i) {
      plane *= out[i];
      out[i] = 1;
    }
    Tensor& y = ctx.allocate_output(0, x.dtype, out);
    const int64_t planes = x.shape[0] * x.shape[1];
    if (planes == 0) return;
    RUNNX_CHECK(plane > 0, kInvalidArgument, node.label(), ": cannot pool over empty spatial dims ",
                shape_str(x.shape));
    dispatch_pool_type(x.dtype, node, false, [&](auto tag) {
      using T = decltype(tag);
      const T* xp = x.ptr<T>();
      T* yp = y.ptr<T>();
      ctx.pool().parallel_for(planes, std::max<int64_t>(1, kGrainElems / plane),
                              [&](int64_t p0, int64_t p1) {
                                for (int64_t p = p0; p < p1; ++p) {
                                  const T* s = xp + p * plane;
                                  if (max_) {
                                    T m = s[0];
                                    for (int64_t i = 1; i < plane; ++i) m = s[i] > m ? s[i] : m;
                                    yp[p] = m;
                                  } else {
                                    // Eight partial sums: vectorisable, and more accurate than one
                                    // running sum.
                                    T acc[8] = {};
                                    int64_t i = 0;
                                    for (; i + 8 <= plane; i += 8)
                                      for (int u = 0; u < 8; ++u) acc[u] += s[i + u];
                                    T t = T(0);
                                    for (; i < plane; ++i) t += s[i];
                                    for (int u = 0; u < 8; ++u) t += acc[u];
                                    yp[p] = t / static_cast<T>(plane);
                                  }
                                }
                              });
    });
  }

 private:
  bool max_;
};

class GlobalAveragePoolKernel : public GlobalPoolKernel {
 public:
  explicit GlobalAveragePoolKernel(const KernelInfo& info) : GlobalPoolKernel(info, false) {}
};
class GlobalMaxPoolKernel : public GlobalPoolKernel {
 public:
  explicit GlobalMaxPoolKernel(const KernelInfo& info) : GlobalPoolKernel(info, true) {}
};

}  // namespace

void register_pool_ops(OpRegistry& r) {
  r.add("MaxPool", "", 7, factory<MaxPoolKernel>());
  r.add("AveragePool", "", 7, factory<AveragePoolKernel>());
  r.add("GlobalAveragePool", "", 7, factory<GlobalAveragePoolKernel>());
  r.add("GlobalMaxPool", "", 7, factory<GlobalMaxPoolKernel>());
}

}  // namespace runnx
