// Resize (opset 10-22) and Upsample (7-9).
//
// Every mode is separable: each output coordinate along an axis maps to a source coordinate (the
// coordinate_transformation_mode), and from there to one source index (nearest) or to a few
// weighted taps (linear, cubic, and their antialiased forms). Nearest is a pure index gather, so
// it runs on bytes (any dtype) through copy_by_maps. The filters run one 1-D pass per resized
// axis over contiguous rows, which is exactly N-linear / N-cubic interpolation. Coordinates are
// computed in double with the same expressions as the ONNX reference, so ties in nearest rounding
// fall the same way.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "ops/copy_util.h"
#include "ops/kernel.h"
#include "ops/op_util.h"

namespace runnx {
namespace {

enum class Mode { kNearest, kLinear, kCubic };
enum class Coord {
  kHalfPixel,
  kHalfPixelSymmetric,
  kPytorchHalfPixel,
  kAlignCorners,
  kAsymmetric,
  kTfHalfPixelForNN,
  kTfCropAndResize
};
enum class Rounding { kPreferFloor, kPreferCeil, kFloor, kCeil };
enum class Policy { kStretch, kNotLarger, kNotSmaller };

// One axis: input and output sizes, the scale used in the coordinate formulas and the roi.
struct AxisPlan {
  int64_t in = 0, out = 0;
  double scale = 1, roi0 = 0, roi1 = 1;
  bool roi_f32 = false;  // the roi came as float32 (see source_coord)
  bool identity = true;
};

// The taps of a filter pass: n (index, weight) pairs per output position, indices clamped.
struct Taps {
  int64_t n = 0;
  std::vector<int64_t> idx;
  std::vector<double> w;
  std::vector<uint8_t> extrapolated;
};

class ResizeKernel : public Kernel {
 public:
  explicit ResizeKernel(const KernelInfo& info) : opset_(info.opset) {
    const Node& n = info.node;
    upsample_ = n.op_type == "Upsample";
    std::string mode = n.get_string("mode", "nearest");
    if (mode == "nearest")
      mode_ = Mode::kNearest;
    else if (mode == "linear" || mode == "bilinear")
      mode_ = Mode::kLinear;
    else if (mode == "cubic" && !upsample_ && opset_ >= 11)
      mode_ = Mode::kCubic;
    else
      fail(ErrorKind::kInvalidModel, n.label(), ": unknown mode '", mode, "'");
    if (upsample_ && opset_ < 9) {
      RUNNX_CHECK(n.has_attr("scales"), kInvalidModel, n.label(), ": attribute scales is required");
      attr_scales_ = n.get_floats("scales");
    }
    if (upsample_ || opset_ < 11) {  // the old forms: asymmetric coordinates, nearest by floor
      coord_ = Coord::kAsymmetric;
      rounding_ = Rounding::kFloor;
      return;
    }
    std::string c = n.get_string("coordinate_transformation_mode", "half_pixel");
    if (c == "half_pixel")
      coord_ = Coord::kHalfPixel;
    else if (c == "half_pixel_symmetric" && opset_ >= 19)
      coord_ = Coord::kHalfPixelSymmetric;
    else if (c == "pytorch_half_pixel")
      coord_ = Coord::kPytorchHalfPixel;
    else if (c == "align_corners")
      coord_ = Coord::kAlignCorners;
    else if (c == "asymmetric")
      coord_ = Coord::kAsymmetric;
    else if (c == "tf_half_pixel_for_nn" && opset_ < 13)
      coord_ = Coord::kTfHalfPixelForNN;
    else if (c == "tf_crop_and_resize")
      coord_ = Coord::kTfCropAndResize;
    else
      fail(ErrorKind::kInvalidModel, n.label(), ": unknown coordinate_transformation_mode '", c,
           "'");
    std::string r = n.get_string("nearest_mode", "round_prefer_floor");
    if (r == "round_prefer_floor")
      rounding_ = Rounding::kPreferFloor;
    else if (r == "round_prefer_ceil")
      rounding_ = Rounding::kPreferCeil;
    else if (r == "floor")
      rounding_ = Rounding::kFloor;
    else if (r == "ceil")
      rounding_ = Rounding::kCeil;
    else
      fail(ErrorKind::kInvalidModel, n.label(), ": unknown nearest_mode '", r, "'");
    cubic_a_ = n.get_float("cubic_coeff_a", -0.75f);
    exclude_outside_ = n.get_int("exclude_outside", 0) != 0;
    extrapolation_ = n.get_float("extrapolation_value", 0.0f);
    if (opset_ >= 18) {
      antialias_ = n.get_int("antialias", 0) != 0 && mode_ != Mode::kNearest;
      has_axes_ = n.has_attr("axes");
      axes_ = n.get_ints("axes");
      std::string p = n.get_string("keep_aspect_ratio_policy", "stretch");
      if (p == "stretch")
        policy_ = Policy::kStretch;
      else if (p == "not_larger")
        policy_ = Policy::kNotLarger;
      else if (p == "not_smaller")
        policy_ = Policy::kNotSmaller;
      else
        fail(ErrorKind::kInvalidModel, n.label(), ": unknown keep_aspect_ratio_policy '", p, "'");
    }
  }

  void run(KernelContext& ctx) const override {
    const Tensor& x = ctx.required_input(0);
    std::vector<AxisPlan> plan = plan_axes(ctx, x);
    Shape out(x.rank());
    bool identity = true;
    for (size_t d = 0; d < plan.size(); ++d) out[d] = plan[d].out, identity &= plan[d].identity;
    const size_t es = element_size(x.dtype, ctx.node().label());
    RUNNX_CHECK(shape_numel(out) <= kMaxTensorBytes / static_cast<int64_t>(es), kResourceExhausted,
                ctx.node().label(), ": output shape ", shape_str(out), " is too large");
    if (identity) return ctx.set_output_view(0, x, x.shape);
    if (shape_numel(out) == 0) {  // nothing to compute (and other axes' maps may be huge)
      ctx.allocate_output(0, x.dtype, out);
      return;
    }
    if (mode_ == Mode::kNearest) return run_nearest(ctx, x, plan, out, es);
    Tensor& y = ctx.allocate_output(0, x.dtype, out);
    dispatch_numeric(x.dtype, ctx.node(), [&](auto t) {
      using T = decltype(t);
      // float accumulation for float; double otherwise, so integer outputs round as the
      // reference's float64 ones do (x.5 ties).
      using C = std::conditional_t<std::is_same_v<T, float>, float, double>;
      run_filter<T, C>(ctx, x, y, plan);
    });
  }

 private:
  std::vector<AxisPlan> plan_axes(KernelContext& ctx, const Tensor& x) const {
    const Node& node = ctx.node();
    const int64_t r = x.rank();
    std::vector<double> scales, roi;
    std::vector<int64_t> sizes;
    bool roi_f32 = false;
    if (upsample_ && opset_ < 9) {
      scales.assign(attr_scales_.begin(), attr_scales_.end());
    } else if (upsample_ || opset_ < 11) {
      scales = tensor_to_f64(ctx.required_input(1));
    } else {
      if (const Tensor* t = ctx.input(1))
        roi = tensor_to_f64(*t), roi_f32 = t->dtype == DType::kF32;
      if (const Tensor* t = ctx.input(2)) scales = tensor_to_f64(*t);
      if (const Tensor* t = ctx.input(3)) sizes = tensor_to_i64(*t);
    }
    RUNNX_CHECK(scales.empty() != sizes.empty(), kInvalidArgument, node.label(),
                ": exactly one of scales and sizes must be given (non-empty)");
    std::vector<int64_t> axes;
    if (has_axes_) {
      std::vector<bool> seen(r, false);
      for (int64_t a : axes_) {
        int64_t k = normalize_axis(a, r, node);
        RUNNX_CHECK(!seen[k], kInvalidArgument, node.label(), ": axis ", a, " is repeated");
        seen[k] = true;
        axes.push_back(k);
      }
    } else {
      for (int64_t k = 0; k < r; ++k) axes.push_back(k);
    }
    const size_t na = axes.size();
    RUNNX_CHECK((scales.empty() ? sizes.size() : scales.size()) == na, kInvalidArgument,
                node.label(), ": ", scales.empty() ? "sizes" : "scales", " must have ", na,
                " entries (input shape ", shape_str(x.shape), ")");
    std::vector<AxisPlan> plan(r);
    for (int64_t k = 0; k < r; ++k) plan[k].in = plan[k].out = x.shape[k];
    if (coord_ == Coord::kTfCropAndResize && !roi.empty()) {
      RUNNX_CHECK(roi.size() == 2 * na, kInvalidArgument, node.label(), ": roi must have ", 2 * na,
                  " entries");
      for (size_t i = 0; i < na; ++i) {
        AxisPlan& p = plan[axes[i]];
        p.roi0 = roi[i], p.roi1 = roi[na + i], p.roi_f32 = roi_f32;
      }
    }
    if (!scales.empty()) {
      for (size_t i = 0; i < na; ++i) {
        AxisPlan& p = plan[axes[i]];
        RUNNX_CHECK(scales[i] > 0 && std::isfinite(scales[i]), kInvalidArgument, node.label(),
                    ": scale ", scales[i], " must be positive");
        p.scale = scales[i];
        double o = std::floor(p.scale * static_cast<double>(p.in));
        RUNNX_CHECK(o < 9.0e18, kResourceExhausted, node.label(), ": scale ", scales[i],
                    " is too large");
        p.out = static_cast<int64_t>(o);
      }
    } else {
      for (size_t i = 0; i < na; ++i) {
        AxisPlan& p = plan[axes[i]];
        RUNNX_CHECK(sizes[i] >= 0, kInvalidArgument, node.label(), ": negative size ", sizes[i]);
        RUNNX_CHECK(p.in > 0 || sizes[i] == 0, kInvalidArgument, node.label(),
                    ": cannot resize the empty axis ", axes[i], " to ", sizes[i]);
        p.out = sizes[i];
        p.scale = p.in > 0 ? static_cast<double>(p.out) / static_cast<double>(p.in) : 1.0;
      }
      if (policy_ != Policy::kStretch) {
        double s = plan[axes[0]].scale;
        for (int64_t a : axes)
          s = policy_ == Policy::kNotLarger ? std::min(s, plan[a].scale)
                                            : std::max(s, plan[a].scale);
        for (int64_t a : axes) {
          plan[a].scale = s;
          plan[a].out = static_cast<int64_t>(s * static_cast<double>(plan[a].in) + 0.5);
        }
      }
    }
    for (AxisPlan& p : plan) {
      // As the reference: an axis whose scale is 1 and whose roi is the whole axis is untouched.
      p.identity = std::abs(p.scale - 1.0) <= 1e-9 && p.out == p.in &&
                   (coord_ != Coord::kTfCropAndResize ||
                    (std::abs(p.roi0) <= 1e-9 && std::abs(p.roi1 - 1.0) <= 1e-9));
      RUNNX_CHECK(p.in > 0 || p.out == 0, kInvalidArgument, node.label(),
                  ": cannot resize an empty axis");
    }
    return plan;
  }

  // Source coordinate of output position j (the ONNX formulas, in the reference's operation order).
  double source_coord(const AxisPlan& a, int64_t j, bool& extrapolated) const {
    const double y = static_cast<double>(j), in = static_cast<double>(a.in), s = a.scale;
    const double out_w = s * in;
    extrapolated = false;
    switch (coord_) {
      case Coord::kHalfPixel:
        return (y + 0.5) / s - 0.5;
      case Coord::kHalfPixelSymmetric: {
        const double adjustment = static_cast<double>(a.out) / out_w;
        const double offset = in / 2 * (1 - adjustment);
        return offset + (y + 0.5) / s - 0.5;
      }
      case Coord::kPytorchHalfPixel:
        return out_w == 1 ? -0.5 : (y + 0.5) / s - 0.5;
      case Coord::kAlignCorners:
        return out_w == 1 ? 0.0 : y * (in - 1) / (out_w - 1);
      case Coord::kAsymmetric:
        return y / s;
      case Coord::kTfHalfPixelForNN:
        return (y + 0.5) / s;
      case Coord::kTfCropAndResize: {
        double x;
        if (a.roi_f32) {
          // A float32 roi: the roi terms in float32, as onnxruntime and the reference compute them
          // (it decides on which side of .5 a nearest coordinate falls).
          const float span = static_cast<float>(a.roi1) - static_cast<float>(a.roi0);
          const float fin = static_cast<float>(a.in - 1);
          x = out_w == 1 ? static_cast<double>(span * fin / 2) : y * span * (in - 1) / (out_w - 1);
          x += static_cast<double>(static_cast<float>(a.roi0) * fin);
        } else {
          x = out_w == 1 ? (a.roi1 - a.roi0) * (in - 1) / 2
                         : y * (a.roi1 - a.roi0) * (in - 1) / (out_w - 1);
          x += a.roi0 * (in - 1);
        }
        extrapolated = x < 0 || x > in - 1;
        return x;
      }
    }
    return 0;
  }

  int64_t nearest_index(double x, int64_t in) const {
    const double f = std::floor(x);
    double i = f;
    if (x != f) {
      const double ratio = x - f;
      switch (rounding_) {
        case Rounding::kPreferFloor:
          i = ratio <= 0.5 ? f : f + 1;
          break;
        case Rounding::kPreferCeil:
          i = ratio < 0.5 ? f : f + 1;
          break;
        case Rounding::kFloor:
          i = f;
          break;
        case Rounding::kCeil:
          i = f + 1;
          break;
      }
    }
    return static_cast<int64_t>(std::clamp(i, 0.0, static_cast<double>(in - 1)));
  }

  void run_nearest(KernelContext& ctx, const Tensor& x, const std::vector<AxisPlan>& plan,
                   const Shape& out, size_t es) const {
    std::vector<std::vector<int64_t>> maps(plan.size());
    for (size_t d = 0; d < plan.size(); ++d) {
      const AxisPlan& a = plan[d];
      maps[d].resize(a.out);
      for (int64_t j = 0; j < a.out; ++j) {
        bool ex = false;
        double c = a.identity ? static_cast<double>(j) : source_coord(a, j, ex);
        maps[d][j] = ex ? -1 : nearest_index(c, a.in);
      }
    }
    alignas(8) uint8_t fill[8] = {};
    if (coord_ == Coord::kTfCropAndResize)
      cast_scalar(extrapolation_, x.dtype, fill, ctx.node().label());
    Tensor& y = ctx.allocate_output(0, x.dtype, out);
    copy_by_maps(y.data, x.data, es, out, maps, contiguous_strides(x.shape), fill, ctx.pool());
  }

  // Filter weight at distance d (in source pixels, already multiplied by the antialias scale).
  double weight(double d) const {
    d = std::abs(d);
    if (mode_ == Mode::kLinear) return std::max(0.0, 1 - d);
    const double A = cubic_a_;
    if (d <= 1) return ((A + 2) * d - (A + 3)) * d * d + 1;
    if (d < 2) return ((A * d - 5 * A) * d + 8 * A) * d - 4 * A;
    return 0;
  }

  Taps make_taps(const AxisPlan& a) const {
    Taps t;
    const double s = antialias_ ? std::min(a.scale, 1.0) : 1.0;
    const double support = mode_ == Mode::kLinear ? 1.0 : 2.0;
    // Window: taps at left+start .. left+start+n-1, where left is the pixel at or before x (the
    // one strictly before when x is a whole number), as the reference picks neighbours.
    const int64_t start = static_cast<int64_t>(std::floor(-support / s)) + 1;
    t.n = 2 - 2 * start;
    t.idx.resize(a.out * t.n);
    t.w.resize(a.out * t.n);
    t.extrapolated.assign(a.out, 0);
    for (int64_t j = 0; j < a.out; ++j) {
      bool ex = false;
      const double x = source_coord(a, j, ex);
      t.extrapolated[j] = ex;
      const double f = std::floor(x);
      const int64_t left = static_cast<int64_t>(f) - (x == f ? 1 : 0);
      double sum = 0;
      for (int64_t k = 0; k < t.n; ++k) {
        const int64_t i = left + start + k;
        double w = weight((static_cast<double>(i) - x) * s);
        if (exclude_outside_ && (i < 0 || i >= a.in)) w = 0;
        t.idx[j * t.n + k] = std::clamp<int64_t>(i, 0, a.in - 1);
        t.w[j * t.n + k] = w;
        sum += w;
      }
      if (antialias_ || exclude_outside_)
        for (int64_t k = 0; k < t.n; ++k) t.w[j * t.n + k] /= sum == 0 ? 1 : sum;
    }
    return t;
  }

  template <typename C>
  static void filter_pass(const C* src, C* dst, int64_t outer, int64_t n_in, int64_t n_out,
                          int64_t inner, const Taps& t, C fill, ThreadPool& pool) {
    const int64_t n = t.n;
    std::vector<C> wc(t.w.begin(), t.w.end());
    const int64_t* idx = t.idx.data();
    const C* w = wc.data();
    if (inner == 1) {
      pool.parallel_for(outer, rows_grain(n_out * n), [&](int64_t b, int64_t e) {
        for (int64_t o = b; o < e; ++o) {
          const C* s = src + o * n_in;
          C* d = dst + o * n_out;
          if (n == 2) {  // linear: the common case, unrolled
            for (int64_t j = 0; j < n_out; ++j)
              d[j] = w[2 * j] * s[idx[2 * j]] + w[2 * j + 1] * s[idx[2 * j + 1]];
          } else {
            for (int64_t j = 0; j < n_out; ++j) {
              C acc = 0;
              for (int64_t k = 0; k < n; ++k) acc += w[j * n + k] * s[idx[j * n + k]];
              d[j] = acc;
            }
          }
          for (int64_t j = 0; j < n_out; ++j)
            if (t.extrapolated[j]) d[j] = fill;
        }
      });
      return;
    }
    pool.parallel_for(outer * n_out, rows_grain(inner * n), [&](int64_t b, int64_t e) {
      for (int64_t row = b; row < e; ++row) {
        const int64_t o = row / n_out, j = row % n_out;
        C* d = dst + row * inner;
        if (t.extrapolated[j]) {
          std::fill_n(d, inner, fill);
          continue;
        }
        const C* s0 = src + (o * n_in + idx[j * n]) * inner;
        const C w0 = w[j * n];
        for (int64_t i = 0; i < inner; ++i) d[i] = w0 * s0[i];
        for (int64_t k = 1; k < n; ++k) {
          const C* sk = src + (o * n_in + idx[j * n + k]) * inner;
          const C wk = w[j * n + k];
          if (wk == 0) continue;
          for (int64_t i = 0; i < inner; ++i) d[i] += wk * sk[i];
        }
      }
    });
  }

  // The passes commute (up to rounding), but not in cost: a pass writes its output size times its
  // taps, and a pass along the innermost dim gathers element by element. Pick the cheapest order.
  static void order_passes(std::vector<int>& todo, const std::vector<Taps>& taps, const Shape& in,
                           const std::vector<AxisPlan>& plan) {
    if (todo.size() < 2 || todo.size() > 4) return;
    std::vector<int> perm = todo;
    std::sort(perm.begin(), perm.end());
    double best = -1;
    const int last = static_cast<int>(in.size()) - 1;
    do {
      Shape s = in;
      double cost = 0;
      for (int d : perm) {
        s[d] = plan[d].out;
        bool inner_one = true;
        for (int k = d + 1; k <= last; ++k) inner_one &= s[k] == 1;
        double n = 1;
        for (int64_t v : s) n *= static_cast<double>(v);
        cost += n * static_cast<double>(taps[d].n) * (inner_one ? 4 : 1);
      }
      if (best < 0 || cost < best) best = cost, todo = perm;
    } while (std::next_permutation(perm.begin(), perm.end()));
  }

  template <typename T, typename C>
  void run_filter(KernelContext& ctx, const Tensor& x, Tensor& y,
                  const std::vector<AxisPlan>& plan) const {
    constexpr bool kSame = std::is_same_v<T, C>;
    constexpr DType kC = std::is_same_v<C, float> ? DType::kF32 : DType::kF64;
    ThreadPool& pool = ctx.pool();
    std::vector<int> todo;
    for (size_t d = 0; d < plan.size(); ++d)
      if (!plan[d].identity) todo.push_back(static_cast<int>(d));
    Tensor cur;
    if constexpr (kSame) {
      cur = x;
    } else {
      cur = Tensor::empty(kC, x.shape);
      const T* s = x.ptr<T>();
      C* d = cur.ptr<C>();
      pool.parallel_for(x.numel(), kCopyGrainElems, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) d[i] = static_cast<C>(s[i]);
      });
    }
    std::vector<Taps> taps(plan.size());
    for (int d : todo) taps[d] = make_taps(plan[d]);
    order_passes(todo, taps, x.shape, plan);
    const C fill = static_cast<C>(extrapolation_);
    for (size_t step = 0; step < todo.size(); ++step) {
      const int d = todo[step];
      Shape shape = cur.shape;
      shape[d] = plan[d].out;
      const bool last = step + 1 == todo.size();
      Tensor next = last && kSame ? y : Tensor::empty(kC, shape);
      int64_t outer = 1, inner = 1;
      for (size_t k = 0; k < shape.size(); ++k)
        if (static_cast<int>(k) != d) (static_cast<int>(k) < d ? outer : inner) *= shape[k];
      filter_pass<C>(cur.ptr<C>(), next.ptr<C>(), outer, plan[d].in, plan[d].out, inner, taps[d],
                     fill, pool);
      cur = std::move(next);
    }
    if constexpr (!kSame) {
      // Integer outputs round half to even and saturate, as the reference's saturate_cast.
      const C* s = cur.ptr<C>();
      T* d = y.ptr<T>();
      const C lo = static_cast<C>(std::numeric_limits<T>::lowest());
      const C hi = static_cast<C>(std::numeric_limits<T>::max());
      pool.parallel_for(y.numel(), kCopyGrainElems, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          C v = std::nearbyint(s[i]);
          d[i] = v <= lo   ? std::numeric_limits<T>::lowest()
                 : v >= hi ? std::numeric_limits<T>::max()
                           : static_cast<T>(v);
        }
      });
    }
  }

  int64_t opset_;
  bool upsample_ = false;
  Mode mode_ = Mode::kNearest;
  Coord coord_ = Coord::kHalfPixel;
  Rounding rounding_ = Rounding::kPreferFloor;
  Policy policy_ = Policy::kStretch;
  std::vector<float> attr_scales_;
  float cubic_a_ = -0.75f;
  bool exclude_outside_ = false;
  float extrapolation_ = 0;
  bool antialias_ = false;
  bool has_axes_ = false;
  std::vector<int64_t> axes_;
};

}  // namespace

void register_resize_ops(OpRegistry& r) {
  r.add("Resize", "", 10, factory<ResizeKernel>());
  r.add("Upsample", "", 7, factory<ResizeKernel>());
}

}  // namespace runnx
