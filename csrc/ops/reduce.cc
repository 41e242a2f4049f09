// ReduceSum/Mean/Max/Min/Prod/L1/L2/SumSquare/LogSum/LogSumExp and ArgMax/ArgMin.
//
// Axes come from the `axes` attribute before opset 18 (ReduceSum: before 13) and from an optional
// input after. Empty axes reduce everything unless noop_with_empty_axes=1, in which case nothing
// is reduced and the op applies element-wise (what the ONNX reference does: ReduceSumSquare
// squares, ReduceL1 takes abs).
//
// The engine drops size-1 dims and merges adjacent dims of the same kind (kept / reduced), then
// has two loops, both with a contiguous innermost loop:
//  - last merged dim reduced: each output reduces rows of D contiguous elements (8 or 32 partial
//    accumulators so it vectorises); when there are fewer outputs than threads the rows are split
//    into segments whose partial results are combined;
//  - last merged dim kept: each output row of I elements accumulates input rows element-wise.
// Float sums accumulate in double, integer sums in 64 bits (modular, so the result cast back
// equals numpy's same-type wrap-around).
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "common/cpu_features.h"
#include "ops/kernel.h"
#include "ops/op_util.h"
#include "ops/vec_math.h"

namespace runnx {
namespace {

enum class RedOp {
  kSum,
  kMean,
  kSumSquare,
  kL1,
  kL2,
  kLogSum,
  kLogSumExp,
  kProd,
  kMax,
  kMin,
  kMaxFinite
};

// Casts a double result to T; for integers truncates like numpy's astype, NaN -> 0, saturating.
template <typename T>
T to_out(double v) {
  if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(v);
  } else {
    if (!(v == v)) return T(0);
    if (v <= static_cast<double>(std::numeric_limits<T>::lowest()))
      return std::numeric_limits<T>::lowest();
    if (v >= static_cast<double>(std::numeric_limits<T>::max()))
      return std::numeric_limits<T>::max();
    return static_cast<T>(v);
  }
}

// One reduction: its accumulator type, identity, step, lane combine and final transform.
// kMaxFinite (max over finite values, as double) is LogSumExp's first pass; `shift` is its result
// and is ignored by every other op.
template <RedOp OP, typename T>
struct Red {
  static constexpr bool kFloat = std::is_floating_point_v<T>;
  static constexpr bool kMinMax = OP == RedOp::kMax || OP == RedOp::kMin;
  static constexpr bool kShift = OP == RedOp::kLogSumExp;
  using Acc = std::conditional_t<
      kMinMax, T,
      std::conditional_t<kFloat || OP == RedOp::kLogSumExp || OP == RedOp::kMaxFinite, double,
                         std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>>>;
  using Out = std::conditional_t<OP == RedOp::kMaxFinite, double, T>;

  static Acc init() {
    using L = std::numeric_limits<Acc>;
    if constexpr (OP == RedOp::kProd)
      return Acc(1);
    else if constexpr (OP == RedOp::kMax || OP == RedOp::kMaxFinite)
      return L::has_infinity ? -L::infinity() : L::lowest();
    else if constexpr (OP == RedOp::kMin)
      return L::has_infinity ? L::infinity() : L::max();
    else
      return Acc(0);
  }

  static Acc step(Acc a, T x, double shift) {
    const Acc v = static_cast<Acc>(x);
    if constexpr (OP == RedOp::kSumSquare || OP == RedOp::kL2)
      return a + v * v;
    else if constexpr (OP == RedOp::kL1) {
      if constexpr (std::is_unsigned_v<T>)
        return a + v;
      else
        return a + (v < 0 ? -v : v);
    } else if constexpr (OP == RedOp::kLogSumExp)
      return a + std::exp(v - shift);
    else if constexpr (OP == RedOp::kProd)
      return a * v;
    // NaN propagates (numpy's maximum/minimum): a NaN accumulator stays, a NaN x fails the
    // compare and wins. Nested selects, not && / ||, which become branches and stop vectorising.
    else if constexpr (OP == RedOp::kMax)
      return a != a ? a : (x <= a ? a : x);
    else if constexpr (OP == RedOp::kMin)
      return a != a ? a : (x >= a ? a : x);
    // Finite iff v - v == 0 (inf - inf and NaN - NaN are NaN).
    else if constexpr (OP == RedOp::kMaxFinite)
      return v > a ? (v - v == 0 ? v : a) : a;
    else
      return a + v;
  }

  static Acc combine(Acc a, Acc b) {
    if constexpr (OP == RedOp::kProd)
      return a * b;
    else if constexpr (kMinMax)
      return step(a, b, 0);
    else if constexpr (OP == RedOp::kMaxFinite)
      return b > a ? b : a;
    else
      return a + b;
  }

  static Out finish(Acc a, int64_t n, double shift) {
    if constexpr (OP == RedOp::kMean) {
      if constexpr (kFloat)
        return static_cast<Out>(a / static_cast<Acc>(n));
      else
        return to_out<T>(static_cast<double>(a) / static_cast<double>(n));
    } else if constexpr (OP == RedOp::kL2) {
      return to_out<T>(std::sqrt(static_cast<double>(a)));
    } else if constexpr (OP == RedOp::kLogSum) {
      return to_out<T>(std::log(static_cast<double>(a)));
    } else if constexpr (OP == RedOp::kLogSumExp) {
      return to_out<T>(std::log(a) + shift);
    } else {
      return static_cast<Out>(a);
    }
  }
};

// Walks the index space of a subset of dims, tracking the input offset.
struct Odometer {
  std::vector<int64_t> size, stride, idx;
  int64_t off = 0;

  void add(int64_t s, int64_t st) { size.push_back(s), stride.push_back(st), idx.push_back(0); }
  int64_t count() const {
    int64_t n = 1;
    for (int64_t s : size) n *= s;
    return n;
  }
  void seek(int64_t linear) {
    off = 0;
    for (int64_t d = static_cast<int64_t>(size.size()) - 1; d >= 0; --d) {
      idx[d] = linear % size[d];
      linear /= size[d];
      off += idx[d] * stride[d];
    }
  }
  void next() {
    for (int64_t d = static_cast<int64_t>(size.size()) - 1; d >= 0; --d) {
      off += stride[d];
      if (++idx[d] < size[d]) return;
      off -= size[d] * stride[d];
      idx[d] = 0;
    }
  }
};

// Input dims with size-1 dims dropped and adjacent dims of the same kind merged (the input is
// contiguous, so merged dims keep a single stride).
struct Geometry {
  std::vector<int64_t> dims, strides;
  std::vector<bool> red;
  int64_t out_count = 1, red_count = 1;

  Geometry(const Shape& shape, const std::vector<bool>& reduced) {
    int64_t stride = 1;
    for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
      const int64_t s = shape[d];
      (reduced[d] ? red_count : out_count) *= s;
      if (s != 1) {
        if (!dims.empty() && red.back() == reduced[d]) {
          dims.back() *= s;  // the merged dim keeps its inner part's stride
        } else {
          dims.push_back(s), strides.push_back(stride), red.push_back(reduced[d]);
        }
      }
      stride *= s;
    }
    std::reverse(dims.begin(), dims.end());
    std::reverse(strides.begin(), strides.end());
    std::reverse(red.begin(), red.end());
  }
};

constexpr int64_t kGrainElems = 1 << 14;
constexpr int64_t kColChunk = 256;

// --- Hot loops. RUNNX_INLINE so that the *_avx2 wrappers compile them for AVX2+FMA and the
// *_base wrappers for the baseline ISA (see vec_math.h); reduce_run picks one set.

// Reduces columns [lo, hi) of the rows of one output: a row starts at base + r.off for each
// position of `r` (the reduced dims before the last one).
// L partial results: 32 (four AVX2 vectors of float) hide the add/compare latency on long rows
// (with 8, max/min are latency-bound); short rows use 8, whose setup and fold cost less.
template <class R, int L, typename T>
RUNNX_INLINE typename R::Acc reduce_rows(const T* __restrict x, Odometer& r, int64_t rows,
                                         int64_t base, int64_t lo, int64_t hi, double s) {
  using Acc = typename R::Acc;
  Acc lanes[L];
  Acc acc = R::init();
  for (int j = 0; j < L; ++j) lanes[j] = R::init();
  r.seek(0);
  for (int64_t p = 0; p < rows; ++p, r.next()) {
    const T* row = x + base + r.off;
    int64_t i = lo;
    for (; i + L <= hi; i += L)
      for (int j = 0; j < L; ++j) lanes[j] = R::step(lanes[j], row[i + j], s);
    for (; i < hi; ++i) acc = R::step(acc, row[i], s);
  }
  // Fold pairwise (vector-wide steps) down to 8 lanes, then serially.
  for (int w = L / 2; w >= 8; w /= 2)
    for (int j = 0; j < w; ++j) lanes[j] = R::combine(lanes[j], lanes[j + w]);
  for (int j = 0; j < 8; ++j) acc = R::combine(acc, lanes[j]);
  return acc;
}

template <class R, typename T>
RUNNX_INLINE typename R::Acc reduce_rows(const T* __restrict x, Odometer& r, int64_t rows,
                                         int64_t base, int64_t lo, int64_t hi, double s) {
  if (hi - lo >= 256) return reduce_rows<R, 32>(x, r, rows, base, lo, hi, s);
  return reduce_rows<R, 8>(x, r, rows, base, lo, hi, s);
}

// Last merged dim reduced (length D): outputs [b, e); `k` walks the kept dims.
template <class R, typename T>
RUNNX_INLINE void reduce_last(const T* x, typename R::Out* y, Odometer& k, Odometer& r,
                              int64_t rows, int64_t D, int64_t n_red, const double* shift,
                              int64_t b, int64_t e) {
  k.seek(b);
  for (int64_t o = b; o < e; ++o, k.next()) {
    const double s = R::kShift ? shift[o] : 0.0;
    y[o] = R::finish(reduce_rows<R>(x, r, rows, k.off, 0, D, s), n_red, s);
  }
}

// Last merged dim kept (length I): tasks [b, e), each one output row's chunk of up to kColChunk
// columns; `k` walks the other kept dims, `r` all reduced dims.
template <class R, typename T>
RUNNX_INLINE void reduce_inner(const T* __restrict x, typename R::Out* __restrict y, Odometer& k,
                               Odometer& r, int64_t I, int64_t n_red, const double* shift,
                               int64_t b, int64_t e) {
  using Acc = typename R::Acc;
  const int64_t chunks = (I + kColChunk - 1) / kColChunk;
  Acc acc[kColChunk];
  double shv[kColChunk] = {};
  for (int64_t t = b; t < e; ++t) {
    const int64_t q = t / chunks, c0 = (t % chunks) * kColChunk, w = std::min(kColChunk, I - c0);
    k.seek(q);
    const int64_t out0 = q * I + c0;
    for (int64_t j = 0; j < w; ++j) acc[j] = R::init();
    if (R::kShift)
      for (int64_t j = 0; j < w; ++j) shv[j] = shift[out0 + j];
    r.seek(0);
    const T* base = x + k.off + c0;
    int64_t p = 0;
    // Four input rows per pass over acc: a quarter of the accumulator loads and stores.
    for (; p + 4 <= n_red; p += 4) {
      const T* r0 = base + r.off;
      r.next();
      const T* r1 = base + r.off;
      r.next();
      const T* r2 = base + r.off;
      r.next();
      const T* r3 = base + r.off;
      r.next();
      for (int64_t j = 0; j < w; ++j) {
        Acc a = R::step(acc[j], r0[j], shv[j]);
        a = R::step(a, r1[j], shv[j]);
        a = R::step(a, r2[j], shv[j]);
        acc[j] = R::step(a, r3[j], shv[j]);
      }
    }
    for (; p < n_red; ++p, r.next()) {
      const T* row = base + r.off;
      for (int64_t j = 0; j < w; ++j) acc[j] = R::step(acc[j], row[j], shv[j]);
    }
    for (int64_t j = 0; j < w; ++j) y[out0 + j] = R::finish(acc[j], n_red, shv[j]);
  }
}

template <class R, typename T>
typename R::Acc reduce_rows_base(const T* x, Odometer& r, int64_t rows, int64_t base, int64_t lo,
                                 int64_t hi, double s) {
  return reduce_rows<R>(x, r, rows, base, lo, hi, s);
}
template <class R, typename T>
RUNNX_TARGET_AVX2 typename R::Acc reduce_rows_avx2(const T* x, Odometer& r, int64_t rows,
                                                   int64_t base, int64_t lo, int64_t hi, double s) {
  return reduce_rows<R>(x, r, rows, base, lo, hi, s);
}
template <class R, typename T>
void reduce_last_base(const T* x, typename R::Out* y, Odometer& k, Odometer& r, int64_t rows,
                      int64_t D, int64_t n_red, const double* shift, int64_t b, int64_t e) {
  reduce_last<R>(x, y, k, r, rows, D, n_red, shift, b, e);
}
template <class R, typename T>
RUNNX_TARGET_AVX2 void reduce_last_avx2(const T* x, typename R::Out* y, Odometer& k, Odometer& r,
                                        int64_t rows, int64_t D, int64_t n_red, const double* shift,
                                        int64_t b, int64_t e) {
  reduce_last<R>(x, y, k, r, rows, D, n_red, shift, b, e);
}
template <class R, typename T>
void reduce_inner_base(const T* x, typename R::Out* y, Odometer& k, Odometer& r, int64_t I,
                       int64_t n_red, const double* shift, int64_t b, int64_t e) {
  reduce_inner<R>(x, y, k, r, I, n_red, shift, b, e);
}
template <class R, typename T>
RUNNX_TARGET_AVX2 void reduce_inner_avx2(const T* x, typename R::Out* y, Odometer& k, Odometer& r,
                                         int64_t I, int64_t n_red, const double* shift, int64_t b,
                                         int64_t e) {
  reduce_inner<R>(x, y, k, r, I, n_red, shift, b, e);
}

template <class R, typename T>
void reduce_run(const T* x, typename R::Out* y, const Geometry& g, const double* shift, bool avx2,
                ThreadPool& pool) {
  using Acc = typename R::Acc;
  auto sh = [&](int64_t o) { return R::kShift ? shift[o] : 0.0; };
  const int64_t n_out = g.out_count, n_red = g.red_count;
  if (n_out == 0) return;
  if (n_red == 0) {
    for (int64_t o = 0; o < n_out; ++o) y[o] = R::finish(R::init(), 0, sh(o));
    return;
  }
  if (g.dims.empty() || std::find(g.red.begin(), g.red.end(), true) == g.red.end()) {
    // Nothing left to reduce: the op is element-wise and outputs follow input order.
    pool.parallel_for(n_out, kGrainElems, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) y[i] = R::finish(R::step(R::init(), x[i], sh(i)), 1, sh(i));
    });
    return;
  }

  const size_t last = g.dims.size() - 1;
  if (g.red[last]) {
    const int64_t D = g.dims[last];
    Odometer kept, redp;
    for (size_t d = 0; d < last; ++d) (g.red[d] ? redp : kept).add(g.dims[d], g.strides[d]);
    const int64_t rows = redp.count();
    // Few outputs over long rows (e.g. a full reduction): split each row so all threads work.
    const int64_t threads = pool.num_threads();
    int64_t nseg = 1;
    if (n_out < threads && D >= 2 * kGrainElems)
      nseg = std::min<int64_t>(D / kGrainElems, (2 * threads + n_out - 1) / n_out);
    if (nseg <= 1) {
      auto fn = avx2 ? reduce_last_avx2<R, T> : reduce_last_base<R, T>;
      pool.parallel_for(n_out, std::max<int64_t>(1, kGrainElems / n_red),
                        [&](int64_t b, int64_t e) {
                          Odometer k = kept, r = redp;
                          fn(x, y, k, r, rows, D, n_red, shift, b, e);
                        });
      return;
    }
    auto fn = avx2 ? reduce_rows_avx2<R, T> : reduce_rows_base<R, T>;
    std::vector<Acc> part(n_out * nseg);
    const int64_t seg = (D + nseg - 1) / nseg;
    pool.parallel_for(n_out * nseg, 1, [&](int64_t b, int64_t e) {
      Odometer k = kept, r = redp;
      for (int64_t t = b; t < e; ++t) {
        const int64_t o = t / nseg, s = t % nseg;
        k.seek(o);
        part[t] = fn(x, r, rows, k.off, s * seg, std::min(D, (s + 1) * seg), sh(o));
      }
    });
    for (int64_t o = 0; o < n_out; ++o) {
      Acc acc = part[o * nseg];
      for (int64_t s = 1; s < nseg; ++s) acc = R::combine(acc, part[o * nseg + s]);
      y[o] = R::finish(acc, n_red, sh(o));
    }
    return;
  }

  const int64_t I = g.dims[last];
  Odometer keptp, red;
  for (size_t d = 0; d < last; ++d) (g.red[d] ? red : keptp).add(g.dims[d], g.strides[d]);
  const int64_t chunks = (I + kColChunk - 1) / kColChunk;
  const int64_t grain = std::max<int64_t>(1, kGrainElems / (n_red * std::min(I, kColChunk)));
  auto fn = avx2 ? reduce_inner_avx2<R, T> : reduce_inner_base<R, T>;
  pool.parallel_for(n_out / I * chunks, grain, [&](int64_t b, int64_t e) {
    Odometer k = keptp, r = red;
    fn(x, y, k, r, I, n_red, shift, b, e);
  });
}

// Normalised, de-duplicated reduction mask; empty axes mean all (or none with noop).
std::vector<bool> reduction_mask(const std::vector<int64_t>& axes, int64_t rank, bool noop,
                                 const Node& node) {
  std::vector<bool> red(rank, axes.empty() && !noop);
  RUNNX_CHECK(rank > 0 || axes.empty(), kInvalidArgument, node.label(),
              ": axes given for a 0-d input");
  for (int64_t a : axes) {
    int64_t d = normalize_axis(a, rank, node);
    RUNNX_CHECK(!red[d], kInvalidArgument, node.label(), ": axis ", a, " is repeated in axes");
    red[d] = true;
  }
  return red;
}

template <RedOp OP>
class ReduceKernel : public Kernel {
 public:
  ReduceKernel(const KernelInfo& info, int axes_input_since)
      : axes_from_input_(info.opset >= axes_input_since),
        keepdims_(info.node.get_int("keepdims", 1) != 0),
        noop_(info.node.get_int("noop_with_empty_axes", 0) != 0),
        avx2_(RUNNX_HAVE_TARGET_AVX2 && cpu_features().has_avx2_fma()) {
    if (!axes_from_input_) axes_ = info.node.get_ints("axes");
  }

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    const std::vector<int64_t> axes = axes_from_input_ ? read_ints(ctx.input(1)) : axes_;
    const std::vector<bool> red = reduction_mask(axes, x.rank(), noop_, node);
    Shape out_shape;
    for (int64_t d = 0; d < x.rank(); ++d)
      if (!red[d])
        out_shape.push_back(x.shape[d]);
      else if (keepdims_)
        out_shape.push_back(1);
    const Geometry g(x.shape, red);

    // Identity-like ops over nothing but size-1 dims only change the shape.
    constexpr bool kIdentity = OP == RedOp::kSum || OP == RedOp::kMean || OP == RedOp::kProd ||
                               OP == RedOp::kMax || OP == RedOp::kMin;
    constexpr bool kMinMax = OP == RedOp::kMax || OP == RedOp::kMin;
    const bool is_bool = x.dtype == DType::kBool;
    RUNNX_CHECK(!is_bool || kMinMax, kUnsupportedOp, node.label(),
                ": element type bool is not supported");
    if (kIdentity && g.red_count == 1 && x.dtype != DType::kF16 && x.dtype != DType::kBF16 &&
        dtype_size(x.dtype) != 0) {
      ctx.set_output_view(0, x, out_shape);
      return;
    }
    Tensor& y = ctx.allocate_output(0, x.dtype, out_shape);
    if (kMinMax && is_bool) {
      // bool as bytes 0/1; the empty-set identity of Min (255) becomes true.
      uint8_t* yp = y.ptr<uint8_t>();
      reduce_run<Red<OP, uint8_t>>(x.ptr<uint8_t>(), yp, g, nullptr, avx2_, ctx.pool());
      for (int64_t i = 0; i < g.out_count; ++i) yp[i] = yp[i] != 0;
      return;
    }
    dispatch_numeric(x.dtype, node, [&](auto tag) {
      using T = decltype(tag);
      if constexpr (OP == RedOp::kLogSumExp) {
        std::vector<double> shift(g.out_count);
        reduce_run<Red<RedOp::kMaxFinite, T>>(x.ptr<T>(), shift.data(), g, nullptr, avx2_,
                                              ctx.pool());
        for (double& s : shift) s = s - s == 0 ? s : 0.0;  // no finite value: shift by 0
        reduce_run<Red<OP, T>>(x.ptr<T>(), y.ptr<T>(), g, shift.data(), avx2_, ctx.pool());
      } else {
        reduce_run<Red<OP, T>>(x.ptr<T>(), y.ptr<T>(), g, nullptr, avx2_, ctx.pool());
      }
    });
  }

 private:
  bool axes_from_input_;
  bool keepdims_;
  bool noop_;
  bool avx2_;
  std::vector<int64_t> axes_;
};

// Index of the max (min) along `axis`; NaN counts as the extreme, as in numpy. Ties go to the
// first index, or the last with select_last_index=1.
template <bool kMax>
class ArgKernel : public Kernel {
 public:
  explicit ArgKernel(const KernelInfo& info)
      : axis_(info.node.get_int("axis", 0)),
        keepdims_(info.node.get_int("keepdims", 1) != 0),
        last_(info.node.get_int("select_last_index", 0) != 0) {}

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    RUNNX_CHECK(x.rank() >= 1, kInvalidArgument, node.label(), ": input must have rank >= 1");
    const int64_t axis = normalize_axis(axis_, x.rank(), node);
    int64_t outer = 1, inner = 1;
    const int64_t n = x.shape[axis];
    for (int64_t d = 0; d < x.rank(); ++d)
      if (d < axis)
        outer *= x.shape[d];
      else if (d > axis)
        inner *= x.shape[d];
    Shape out_shape = x.shape;
    if (keepdims_)
      out_shape[axis] = 1;
    else
      out_shape.erase(out_shape.begin() + axis);
    RUNNX_CHECK(n > 0 || outer * inner == 0, kInvalidArgument, node.label(),
                ": cannot take the arg-extreme over an empty axis (input shape ",
                shape_str(x.shape), ")");
    Tensor& y = ctx.allocate_output(0, DType::kI64, out_shape);
    if (outer * inner == 0) return;
    dispatch_numeric(x.dtype, node, [&](auto tag) {
      using T = decltype(tag);
      compute<T>(x.ptr<T>(), y.ptr<int64_t>(), outer, n, inner, ctx.pool());
    });
  }

 private:
  // Whether v replaces best. Written as selects on compares (no && / ||, which become branches)
  // so the column loop vectorises: !(v <= best) is "v > best or v is NaN".
  template <typename T, bool kLast>
  static bool better(T v, T best) {
    if constexpr (kLast) return best != best ? v != v : (kMax ? !(v < best) : !(v > best));
    return best != best ? false : (kMax ? !(v <= best) : !(v >= best));
  }

  template <typename T>
  void compute(const T* x, int64_t* y, int64_t outer, int64_t n, int64_t inner,
               ThreadPool& pool) const {
    if (inner == 1) {
      // Contiguous rows: find the extreme value with a vectorised pass, then its first (last)
      // position with a scan that usually stops early.
      pool.parallel_for(outer, std::max<int64_t>(1, kGrainElems / n), [&](int64_t b, int64_t e) {
        for (int64_t o = b; o < e; ++o) {
          const T* xr = x + o * n;
          const T m = row_extreme<kMax>(xr, n);
          const bool nan = is_nan(m);
          auto hit = [&](int64_t i) { return nan ? is_nan(xr[i]) : xr[i] == m; };
          int64_t i = last_ ? n - 1 : 0;
          if (last_) {
            while (i > 0 && !hit(i)) --i;
          } else {
            while (i < n - 1 && !hit(i)) ++i;
          }
          y[o] = i;
        }
      });
      return;
    }
    const int64_t chunks = (inner + kColChunk - 1) / kColChunk;
    const int64_t grain = std::max<int64_t>(1, kGrainElems / (n * std::min(inner, kColChunk)));
    pool.parallel_for(outer * chunks, grain, [&](int64_t b, int64_t e) {
      T best[kColChunk];
      for (int64_t t = b; t < e; ++t) {
        const int64_t o = t / chunks, c0 = (t % chunks) * kColChunk,
                      w = std::min(kColChunk, inner - c0);
        const T* xs = x + o * n * inner + c0;
        int64_t* ys = y + o * inner + c0;
        for (int64_t j = 0; j < w; ++j) best[j] = xs[j], ys[j] = 0;
        for (int64_t r = 1; r < n; ++r) {
          const T* xr = xs + r * inner;
          if (last_) {
            for (int64_t j = 0; j < w; ++j) {
              const bool b = better<T, true>(xr[j], best[j]);
              best[j] = b ? xr[j] : best[j];
              ys[j] = b ? r : ys[j];
            }
          } else {
            for (int64_t j = 0; j < w; ++j) {
              const bool b = better<T, false>(xr[j], best[j]);
              best[j] = b ? xr[j] : best[j];
              ys[j] = b ? r : ys[j];
            }
          }
        }
      }
    });
  }

  int64_t axis_;
  bool keepdims_;
  bool last_;
};

template <RedOp OP>
KernelFactory reduce_factory(int axes_input_since) {
  return [axes_input_since](const KernelInfo& info) -> std::unique_ptr<Kernel> {
    return std::make_unique<ReduceKernel<OP>>(info, axes_input_since);
  };
}

}  // namespace

void register_reduce_ops(OpRegistry& r) {
  r.add("ReduceSum", "", 1, reduce_factory<RedOp::kSum>(13));
  r.add("ReduceMean", "", 1, reduce_factory<RedOp::kMean>(18));
  r.add("ReduceMax", "", 1, reduce_factory<RedOp::kMax>(18));
  r.add("ReduceMin", "", 1, reduce_factory<RedOp::kMin>(18));
  r.add("ReduceProd", "", 1, reduce_factory<RedOp::kProd>(18));
  r.add("ReduceL1", "", 1, reduce_factory<RedOp::kL1>(18));
  r.add("ReduceL2", "", 1, reduce_factory<RedOp::kL2>(18));
  r.add("ReduceSumSquare", "", 1, reduce_factory<RedOp::kSumSquare>(18));
  r.add("ReduceLogSum", "", 1, reduce_factory<RedOp::kLogSum>(18));
  r.add("ReduceLogSumExp", "", 1, reduce_factory<RedOp::kLogSumExp>(18));
  r.add("ArgMax", "", 1, factory<ArgKernel<true>>());
  r.add("ArgMin", "", 1, factory<ArgKernel<false>>());
}

}  // namespace runnx
