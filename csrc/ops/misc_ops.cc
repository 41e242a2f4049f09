// Ops that fit no larger family: TopK, CumSum, Trilu, GatherND, Range, Shape, Size.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "common/half.h"
#include "ops/kernel.h"
#include "ops/op_util.h"
#include "ops/vec_math.h"

namespace runnx {
namespace {

constexpr int64_t kGrainElems = 1 << 14;
constexpr int64_t kColChunk = 256;

// Splits `shape` at `axis` into [outer, n, inner].
void split_at(const Shape& shape, int64_t axis, int64_t& outer, int64_t& n, int64_t& inner) {
  outer = inner = 1;
  n = shape[axis];
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d)
    if (d < axis)
      outer *= shape[d];
    else if (d > axis)
      inner *= shape[d];
}

// A scalar integer input given as a 0-d or 1-element tensor.
int64_t scalar_int(const Tensor& t, const char* what, const Node& node) {
  RUNNX_CHECK(t.numel() == 1, kInvalidArgument, node.label(), ": ", what,
              " must hold exactly one value, got shape ", shape_str(t.shape));
  return tensor_to_i64(t)[0];
}

size_t element_bytes(DType dt, const Node& node) {
  size_t n = dtype_size(dt);
  RUNNX_CHECK(n != 0, kUnsupportedOp, node.label(), ": element type ", dtype_name(dt),
              " is not supported");
  return n;
}

// ---------------------------------------------------------------------------------------------
// TopK: the k largest (smallest) along `axis`, sorted, ties to the lower index. NaN orders above
// every number (numpy's sort puts it last), so largest=1 returns NaNs first.
class TopKKernel : public Kernel {
 public:
  explicit TopKKernel(const KernelInfo& info)
      : k_attr_(info.opset < 10 ? info.node.get_int("k", -1) : -1),
        axis_(info.node.get_int("axis", -1)),
        largest_(info.node.get_int("largest", 1) != 0) {
    // `sorted` = 0 leaves the order unspecified; sorting always is a valid answer.
    RUNNX_CHECK(info.opset >= 10 || k_attr_ >= 0, kInvalidModel, info.node.label(),
                ": attribute k is missing");
  }

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    RUNNX_CHECK(x.rank() >= 1, kInvalidArgument, node.label(), ": input must have rank >= 1");
    const int64_t axis = normalize_axis(axis_, x.rank(), node);
    const int64_t k = k_attr_ >= 0 ? k_attr_ : scalar_int(ctx.required_input(1), "K", node);
    int64_t outer, n, inner;
    split_at(x.shape, axis, outer, n, inner);
    RUNNX_CHECK(k >= 0 && k <= n, kInvalidArgument, node.label(), ": k = ", k,
                " is out of range for axis ", axis, " of input shape ", shape_str(x.shape));
    Shape out_shape = x.shape;
    out_shape[axis] = k;
    Tensor& values = ctx.allocate_output(0, x.dtype, out_shape);
    Tensor* indices =
        ctx.wants_output(1) ? &ctx.allocate_output(1, DType::kI64, out_shape) : nullptr;
    if (outer * inner * k == 0) return;
    dispatch_numeric(x.dtype, node, [&](auto tag) {
      using T = decltype(tag);
      compute<T>(x.ptr<T>(), values.ptr<T>(), indices ? indices->ptr<int64_t>() : nullptr, outer, n,
                 inner, k, ctx.pool());
    });
  }

 private:
  // Orders (value, index) pairs: better value first (NaN above every number), then lower index.
  template <typename T>
  struct Before {
    bool largest;
    bool operator()(const std::pair<T, int64_t>& a, const std::pair<T, int64_t>& b) const {
      const bool an = is_nan(a.first), bn = is_nan(b.first);
      bool a_first, b_first;
      if (largest) {
        a_first = (an && !bn) || a.first > b.first;
        b_first = (bn && !an) || b.first > a.first;
      } else {
        a_first = (!an && bn) || a.first < b.first;
        b_first = (!bn && an) || b.first < a.first;
      }
      return a_first || (!b_first && a.second < b.second);
    }
  };

  // The k best of one slice (elements `stride` apart) into buf, best first.
  template <typename T>
  static void top_k(const T* xs, int64_t stride, int64_t n, int64_t k, bool largest,
                    std::vector<std::pair<T, int64_t>>& buf) {
    const Before<T> before{largest};
    if (k * 8 >= n) {
      // Large k: sort the whole slice.
      buf.resize(n);
      for (int64_t i = 0; i < n; ++i) buf[i] = {xs[i * stride], i};
      std::sort(buf.begin(), buf.end(), before);
      return;
    }
    // Small k: one pass keeping the k best in a heap whose top is the worst kept.
    buf.resize(k);
    for (int64_t i = 0; i < k; ++i) buf[i] = {xs[i * stride], i};
    std::make_heap(buf.begin(), buf.end(), before);
    auto offer = [&](int64_t i) {
      const std::pair<T, int64_t> c{xs[i * stride], i};
      if (!before(c, buf.front())) return;
      std::pop_heap(buf.begin(), buf.end(), before);
      buf.back() = c;
      std::push_heap(buf.begin(), buf.end(), before);
    };
    int64_t i = k;
    if (stride == 1) {
      // Skip blocks whose every element is strictly worse than the worst kept: a vectorised
      // count (NaN never counts as worse, so blocks holding one are examined).
      constexpr int64_t B = 32;
      for (; i + B <= n; i += B) {
        const T thr = buf.front().first;
        int worse = 0;
        if (largest) {
          for (int64_t j = 0; j < B; ++j) worse += xs[i + j] < thr;
        } else {
          for (int64_t j = 0; j < B; ++j) worse += xs[i + j] > thr;
        }
        if (worse == B) continue;
        for (int64_t j = 0; j < B; ++j) offer(i + j);
      }
    }
    for (; i < n; ++i) offer(i);
    std::sort_heap(buf.begin(), buf.end(), before);
  }

  template <typename T>
  void compute(const T* x, T* vals, int64_t* idx, int64_t outer, int64_t n, int64_t inner,
               int64_t k, ThreadPool& pool) const {
    const bool largest = largest_;
    pool.parallel_for(outer * inner, std::max<int64_t>(1, kGrainElems / n),
                      [&](int64_t b, int64_t e) {
                        std::vector<std::pair<T, int64_t>> buf;
                        for (int64_t s = b; s < e; ++s) {
                          const int64_t o = s / inner, j = s % inner;
                          top_k(x + o * n * inner + j, inner, n, k, largest, buf);
                          const int64_t base = o * k * inner + j;
                          for (int64_t i = 0; i < k; ++i) {
                            vals[base + i * inner] = buf[i].first;
                            if (idx) idx[base + i * inner] = buf[i].second;
                          }
                        }
                      });
  }

  int64_t k_attr_;
  int64_t axis_;
  bool largest_;
};

// ---------------------------------------------------------------------------------------------
// CumSum along the `axis` input; `exclusive` shifts by one, `reverse` sums from the end.
// Accumulates in T, as numpy's cumsum does.
class CumSumKernel : public Kernel {
 public:
  explicit CumSumKernel(const KernelInfo& info)
      : exclusive_(info.node.get_int("exclusive", 0) != 0),
        reverse_(info.node.get_int("reverse", 0) != 0) {}

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    RUNNX_CHECK(x.rank() >= 1, kInvalidArgument, node.label(), ": input must have rank >= 1");
    const int64_t axis =
        normalize_axis(scalar_int(ctx.required_input(1), "axis", node), x.rank(), node);
    int64_t outer, n, inner;
    split_at(x.shape, axis, outer, n, inner);
    Tensor& y = ctx.allocate_output(0, x.dtype, x.shape);
    if (x.numel() == 0) return;
    dispatch_numeric(x.dtype, node, [&](auto tag) {
      using T = decltype(tag);
      compute<T>(x.ptr<T>(), y.ptr<T>(), outer, n, inner, ctx.pool());
    });
  }

 private:
  template <typename T>
  void compute(const T* x, T* y, int64_t outer, int64_t n, int64_t inner, ThreadPool& pool) const {
    const int64_t chunks = (inner + kColChunk - 1) / kColChunk;
    const int64_t grain = std::max<int64_t>(1, kGrainElems / (n * std::min(inner, kColChunk)));
    pool.parallel_for(outer * chunks, grain, [&](int64_t b, int64_t e) {
      T acc[kColChunk];
      for (int64_t t = b; t < e; ++t) {
        const int64_t o = t / chunks, c0 = (t % chunks) * kColChunk,
                      w = std::min(kColChunk, inner - c0);
        std::fill(acc, acc + w, T(0));
        for (int64_t s = 0; s < n; ++s) {
          const int64_t r = reverse_ ? n - 1 - s : s;
          const int64_t off = (o * n + r) * inner + c0;
          const T* xr = x + off;
          T* yr = y + off;
          if (exclusive_) {
            for (int64_t j = 0; j < w; ++j) yr[j] = acc[j], acc[j] += xr[j];
          } else {
            for (int64_t j = 0; j < w; ++j) acc[j] += xr[j], yr[j] = acc[j];
          }
        }
      }
    });
  }

  bool exclusive_;
  bool reverse_;
};

// ---------------------------------------------------------------------------------------------
// Trilu: keeps the upper (j - i >= k) or lower (j - i <= k) triangle of the last two dims and
// zeroes the rest. Byte copies, so every fixed-size dtype works.
class TriluKernel : public Kernel {
 public:
  explicit TriluKernel(const KernelInfo& info) : upper_(info.node.get_int("upper", 1) != 0) {}

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    RUNNX_CHECK(x.rank() >= 2, kInvalidArgument, node.label(),
                ": input must have rank >= 2, got shape ", shape_str(x.shape));
    const int64_t rows = x.shape[x.rank() - 2], cols = x.shape[x.rank() - 1];
    int64_t k = ctx.input(1) ? scalar_int(*ctx.input(1), "k", node) : 0;
    k = std::clamp<int64_t>(k, -rows - 1,
                            cols + 1);  // beyond that every row is all-kept or all-zero
    const size_t es = element_bytes(x.dtype, node);
    Tensor& y = ctx.allocate_output(0, x.dtype, x.shape);
    if (x.numel() == 0) return;
    const int64_t total_rows = x.numel() / cols;
    const auto* src = static_cast<const uint8_t*>(x.data);
    auto* dst = static_cast<uint8_t*>(y.data);
    const bool upper = upper_;
    ctx.pool().parallel_for(
        total_rows, std::max<int64_t>(1, kGrainElems / cols), [&](int64_t b, int64_t e) {
          for (int64_t r = b; r < e; ++r) {
            const int64_t i = r % rows;
            // Kept columns are [lo, hi).
            const int64_t lo = upper ? std::clamp<int64_t>(i + k, 0, cols) : 0;
            const int64_t hi = upper ? cols : std::clamp<int64_t>(i + k + 1, 0, cols);
            const size_t row = static_cast<size_t>(r * cols) * es;
            std::memset(dst + row, 0, lo * es);
            if (hi > lo) std::memcpy(dst + row + lo * es, src + row + lo * es, (hi - lo) * es);
            std::memset(dst + row + std::max(hi, lo) * es, 0, (cols - std::max(hi, lo)) * es);
          }
        });
  }

 private:
  bool upper_;
};

// ---------------------------------------------------------------------------------------------
// GatherND: out[b..., t...] = data[b..., indices[b..., t..., :], ...] with the first batch_dims
// dims shared by data and indices. Slices are copied as bytes, so every fixed-size dtype works.
class GatherNDKernel : public Kernel {
 public:
  explicit GatherNDKernel(const KernelInfo& info)
      : batch_dims_(info.node.get_int("batch_dims", 0)) {
    RUNNX_CHECK(batch_dims_ >= 0, kInvalidModel, info.node.label(), ": batch_dims must be >= 0");
  }

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& data = ctx.required_input(0);
    const Tensor& ind = ctx.required_input(1);
    const int64_t r = data.rank(), q = ind.rank(), bd = batch_dims_;
    RUNNX_CHECK(r >= 1 && q >= 1, kInvalidArgument, node.label(),
                ": data and indices must have rank >= 1");
    RUNNX_CHECK(ind.dtype == DType::kI64 || ind.dtype == DType::kI32, kInvalidArgument,
                node.label(), ": indices must be int64, got ", dtype_name(ind.dtype));
    RUNNX_CHECK(bd < std::min(q, r), kInvalidArgument, node.label(), ": batch_dims ", bd,
                " must be less than the ranks of data ", shape_str(data.shape), " and indices ",
                shape_str(ind.shape));
    const int64_t m = ind.shape[q - 1];
    RUNNX_CHECK(m >= 1 && m <= r - bd, kInvalidArgument, node.label(), ": indices' last dim ", m,
                " must be in [1, ", r - bd, "] for data ", shape_str(data.shape),
                " and batch_dims ", bd);
    for (int64_t d = 0; d < bd; ++d)
      RUNNX_CHECK(data.shape[d] == ind.shape[d], kInvalidArgument, node.label(), ": batch dim ", d,
                  " differs: data ", shape_str(data.shape), ", indices ", shape_str(ind.shape));
    Shape out_shape(ind.shape.begin(), ind.shape.end() - 1);
    out_shape.insert(out_shape.end(), data.shape.begin() + bd + m, data.shape.end());
    const size_t es = element_bytes(data.dtype, node);
    Tensor& y = ctx.allocate_output(0, data.dtype, out_shape);

    int64_t batches = 1, slice = 1;
    for (int64_t d = 0; d < bd; ++d) batches *= data.shape[d];
    for (int64_t d = bd + m; d < r; ++d) slice *= data.shape[d];
    const std::vector<int64_t> strides = contiguous_strides(data.shape);
    const int64_t batch_stride = bd ? strides[bd - 1] : 0;
    const int64_t tuples = ind.numel() / m;
    if (tuples == 0 || y.numel() == 0) return;
    const int64_t per_batch = tuples / batches;
    const std::vector<int64_t> idx = tensor_to_i64(ind);
    const auto* src = static_cast<const uint8_t*>(data.data);
    auto* dst = static_cast<uint8_t*>(y.data);
    const size_t slice_bytes = slice * es;
    ctx.pool().parallel_for(tuples, std::max<int64_t>(1, kGrainElems / slice),
                            [&](int64_t b, int64_t e) {
                              for (int64_t t = b; t < e; ++t) {
                                int64_t off = (t / per_batch) * batch_stride;
                                for (int64_t k = 0; k < m; ++k) {
                                  int64_t v = idx[t * m + k];
                                  const int64_t dim = data.shape[bd + k];
                                  RUNNX_CHECK(v >= -dim && v < dim, kInvalidArgument, node.label(),
                                              ": index ", v, " is out of range for dim ", bd + k,
                                              " of data shape ", shape_str(data.shape));
                                  off += (v < 0 ? v + dim : v) * strides[bd + k];
                                }
                                std::memcpy(dst + t * slice_bytes, src + off * es, slice_bytes);
                              }
                            });
  }

 private:
  int64_t batch_dims_;
};

// ---------------------------------------------------------------------------------------------
// Range: start, start + delta, ... up to (not including) limit; ceil((limit - start) / delta)
// elements. Floats compute in double, as numpy's arange over Python floats does.
class RangeKernel : public Kernel {
 public:
  explicit RangeKernel(const KernelInfo&) {}

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& start = ctx.required_input(0);
    const Tensor& limit = ctx.required_input(1);
    const Tensor& delta = ctx.required_input(2);
    for (const Tensor* t : {&start, &limit, &delta}) {
      RUNNX_CHECK(t->numel() == 1, kInvalidArgument, node.label(),
                  ": start, limit and delta must be scalars, got shape ", shape_str(t->shape));
      RUNNX_CHECK(t->dtype == start.dtype, kInvalidArgument, node.label(),
                  ": start, limit and delta must share a type");
    }
    if (start.dtype == DType::kF16 || start.dtype == DType::kBF16)
      return run_half(ctx, start, limit, delta);
    dispatch_numeric(start.dtype, node, [&](auto tag) {
      using T = decltype(tag);
      const T s = *start.ptr<T>(), l = *limit.ptr<T>(), d = *delta.ptr<T>();
      RUNNX_CHECK(d != T(0), kInvalidArgument, node.label(), ": delta must not be zero");
      int64_t count;
      if constexpr (std::is_floating_point_v<T>) {
        const double c = std::ceil((static_cast<double>(l) - s) / d);
        RUNNX_CHECK(c == c, kInvalidArgument, node.label(),
                    ": start, limit and delta must not be NaN");
        RUNNX_CHECK(c < static_cast<double>(kMaxTensorBytes), kInvalidArgument, node.label(),
                    ": range of ", c, " elements is too large");
        count = c > 0 ? static_cast<int64_t>(c) : 0;
      } else {
        // Exact integer count; __int128 so that limit - start cannot overflow.
        const __int128 span = static_cast<__int128>(l) - s, step = d;
        __int128 c = step > 0 ? (span + step - 1) / step : (span + step + 1) / step;
        if (c < 0) c = 0;
        RUNNX_CHECK(c < kMaxTensorBytes, kInvalidArgument, node.label(), ": range is too large");
        count = static_cast<int64_t>(c);
      }
      Tensor& y = ctx.allocate_output(0, start.dtype, Shape{count});
      T* yp = y.ptr<T>();
      if constexpr (std::is_floating_point_v<T>) {
        for (int64_t i = 0; i < count; ++i)
          yp[i] = static_cast<T>(static_cast<double>(s) + i * static_cast<double>(d));
      } else {
        for (int64_t i = 0; i < count; ++i) yp[i] = static_cast<T>(s + static_cast<T>(i) * d);
      }
    });
  }

 private:
  // float16/bfloat16 (opset 27): computed in float, the default stash_type, then rounded.
  static void run_half(KernelContext& ctx, const Tensor& start, const Tensor& limit,
                       const Tensor& delta) {
    const Node& node = ctx.node();
    const bool bf = start.dtype == DType::kBF16;
    auto rd = [bf](const Tensor& t) {
      return bf ? bf16_to_float(*t.ptr<uint16_t>()) : half_to_float(*t.ptr<uint16_t>());
    };
    const float s = rd(start), l = rd(limit), d = rd(delta);
    RUNNX_CHECK(d != 0, kInvalidArgument, node.label(), ": delta must not be zero");
    const double c = std::ceil((static_cast<double>(l) - s) / d);
    RUNNX_CHECK(c == c, kInvalidArgument, node.label(), ": start, limit and delta must not be NaN");
    RUNNX_CHECK(c < static_cast<double>(kMaxTensorBytes), kInvalidArgument, node.label(),
                ": range is too large");
    const int64_t count = c > 0 ? static_cast<int64_t>(c) : 0;
    uint16_t* yp = ctx.allocate_output(0, start.dtype, Shape{count}).ptr<uint16_t>();
    for (int64_t i = 0; i < count; ++i) {
      const float v = s + static_cast<float>(i) * d;
      yp[i] = bf ? float_to_bf16(v) : float_to_half(v);
    }
  }
};

// ---------------------------------------------------------------------------------------------
// Shape (with opset 15's start/end slice of the dims) and Size, both int64.
class ShapeKernel : public Kernel {
 public:
  explicit ShapeKernel(const KernelInfo& info)
      : start_(info.node.get_int("start", 0)),
        end_(info.node.get_int("end", std::numeric_limits<int64_t>::max())) {}

  void run(KernelContext& ctx) const override {
    const Shape& s = ctx.required_input(0).shape;
    const int64_t r = static_cast<int64_t>(s.size());
    auto clampi = [r](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + r : v, 0, r); };
    const int64_t b = clampi(start_), e = std::max(b, clampi(end_));
    Tensor& y = ctx.allocate_output(0, DType::kI64, Shape{e - b});
    std::copy(s.begin() + b, s.begin() + e, y.ptr<int64_t>());
  }

 private:
  int64_t start_, end_;
};

class SizeKernel : public Kernel {
 public:
  explicit SizeKernel(const KernelInfo&) {}
  void run(KernelContext& ctx) const override {
    const int64_t n = ctx.required_input(0).numel();
    *ctx.allocate_output(0, DType::kI64, Shape{}).ptr<int64_t>() = n;
  }
};

}  // namespace

void register_misc_ops(OpRegistry& r) {
  r.add("TopK", "", 1, factory<TopKKernel>());
  r.add("CumSum", "", 11, factory<CumSumKernel>());
  r.add("Trilu", "", 14, factory<TriluKernel>());
  r.add("GatherND", "", 11, factory<GatherNDKernel>());
  r.add("Range", "", 11, factory<RangeKernel>());
  r.add("Shape", "", 1, factory<ShapeKernel>());
  r.add("Size", "", 1, factory<SizeKernel>());
}

}  // namespace runnx
