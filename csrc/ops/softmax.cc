// Softmax, LogSoftmax and Hardmax.
// Before opset 13 the input is coerced to 2-D at `axis` (default 1) and each row of
// prod(shape[axis:]) elements is normalised; from 13 on only the `axis` dim (default -1) is. Both
// forms become [outer, n, inner] blocks (inner == 1 for the old form), so one kernel serves both.
// Softmax subtracts the row max before exp so large logits cannot overflow.
#include <algorithm>
#include <cmath>
#include <limits>

#include "common/cpu_features.h"
#include "ops/kernel.h"
#include "ops/op_util.h"
#include "ops/vec_math.h"

namespace runnx {
namespace {

enum class SoftmaxKind { kSoftmax, kLogSoftmax, kHardmax };

// Columns of a strided block processed together: per-column state stays in L1.
constexpr int64_t kColChunk = 256;

template <typename T>
RUNNX_INLINE bool argmax_better(T v, T best) {
  // numpy's argmax: NaN counts as the maximum, first occurrence wins.
  return v > best || (v != v && best == best);
}

// One contiguous row of n elements (inner == 1).
template <typename T, SoftmaxKind K>
RUNNX_INLINE void softmax_row(const T* __restrict x, T* __restrict y, int64_t n) {
  if constexpr (K == SoftmaxKind::kHardmax) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; ++i)
      if (argmax_better(x[i], x[best])) best = i;
    std::fill(y, y + n, T(0));
    y[best] = T(1);
    return;
  }
  // A NaN anywhere makes the sum, and so every output, NaN: the max need not track it.
  const T m = row_max_ignoring_nan(x, n);
  // y = exp(x - m) (LogSoftmax overwrites it afterwards), then its sum while y is in L1.
  for (int64_t i = 0; i < n; ++i) y[i] = exp_nonpos_t(x[i] - m);
  const double sum = row_sum(y, n);
  if constexpr (K == SoftmaxKind::kSoftmax) {
    const T inv = static_cast<T>(1.0 / sum);
    for (int64_t i = 0; i < n; ++i) y[i] *= inv;
  } else {
    // (x - m) - log(sum) rather than x - (m + log(sum)): m + log(sum) would round at m's scale.
    const T lsum = static_cast<T>(std::log(sum));
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - m) - lsum;
  }
}

// Columns [0, w) of an [n, inner] block whose rows are `inner` apart.
template <typename T, SoftmaxKind K>
RUNNX_INLINE void softmax_cols(const T* __restrict x, T* __restrict y, int64_t n, int64_t inner,
                               int64_t w) {
  T mx[kColChunk];
  if constexpr (K == SoftmaxKind::kHardmax) {
    int64_t arg[kColChunk];
    for (int64_t j = 0; j < w; ++j) mx[j] = x[j], arg[j] = 0;
    for (int64_t r = 1; r < n; ++r) {
      const T* xr = x + r * inner;
      for (int64_t j = 0; j < w; ++j) {
        bool b = argmax_better(xr[j], mx[j]);
        mx[j] = b ? xr[j] : mx[j];
        arg[j] = b ? r : arg[j];
      }
    }
    for (int64_t r = 0; r < n; ++r) {
      T* yr = y + r * inner;
      for (int64_t j = 0; j < w; ++j) yr[j] = arg[j] == r ? T(1) : T(0);
    }
    return;
  }
  double sum[kColChunk];
  for (int64_t j = 0; j < w; ++j) mx[j] = std::numeric_limits<T>::lowest(), sum[j] = 0;
  for (int64_t r = 0; r < n; ++r) {
    const T* xr = x + r * inner;
    for (int64_t j = 0; j < w; ++j) mx[j] = xr[j] > mx[j] ? xr[j] : mx[j];  // NaN: as in the row
  }
  for (int64_t r = 0; r < n; ++r) {
    const T* xr = x + r * inner;
    T* yr = y + r * inner;
    for (int64_t j = 0; j < w; ++j) {
      T e = exp_nonpos_t(xr[j] - mx[j]);
      if constexpr (K == SoftmaxKind::kSoftmax) yr[j] = e;
      sum[j] += e;
    }
  }
  if constexpr (K == SoftmaxKind::kSoftmax) {
    T inv[kColChunk];
    for (int64_t j = 0; j < w; ++j) inv[j] = static_cast<T>(1.0 / sum[j]);
    for (int64_t r = 0; r < n; ++r) {
      T* yr = y + r * inner;
      for (int64_t j = 0; j < w; ++j) yr[j] *= inv[j];
    }
  } else {
    T lsum[kColChunk];
    for (int64_t j = 0; j < w; ++j) lsum[j] = static_cast<T>(std::log(sum[j]));
    for (int64_t r = 0; r < n; ++r) {
      const T* xr = x + r * inner;
      T* yr = y + r * inner;
      for (int64_t j = 0; j < w; ++j) yr[j] = (xr[j] - mx[j]) - lsum[j];
    }
  }
}

// Tasks [begin, end) of an [outer, n, inner] problem; a task is one row (inner == 1) or one
// chunk of up to kColChunk columns of one outer index.
template <typename T, SoftmaxKind K>
RUNNX_INLINE void softmax_tasks(const T* x, T* y, int64_t n, int64_t inner, int64_t begin,
                                int64_t end) {
  const int64_t chunks = (inner + kColChunk - 1) / kColChunk;
  for (int64_t t = begin; t < end; ++t) {
    const int64_t o = t / chunks, c = t % chunks;
    const int64_t base = o * n * inner + c * kColChunk;
    if (inner == 1) {
      softmax_row<T, K>(x + base, y + base, n);
    } else {
      const int64_t w = std::min(kColChunk, inner - c * kColChunk);
      softmax_cols<T, K>(x + base, y + base, n, inner, w);
    }
  }
}

// The same loop compiled for the baseline ISA and for AVX2+FMA (see vec_math.h).
template <typename T, SoftmaxKind K>
void softmax_tasks_base(const T* x, T* y, int64_t n, int64_t inner, int64_t b, int64_t e) {
  softmax_tasks<T, K>(x, y, n, inner, b, e);
}
template <typename T, SoftmaxKind K>
RUNNX_TARGET_AVX2 void softmax_tasks_avx2(const T* x, T* y, int64_t n, int64_t inner, int64_t b,
                                          int64_t e) {
  softmax_tasks<T, K>(x, y, n, inner, b, e);
}

template <SoftmaxKind K>
class SoftmaxKernel : public Kernel {
 public:
  explicit SoftmaxKernel(const KernelInfo& info)
      : coerce_2d_(info.opset < 13),
        axis_(info.node.get_int("axis", info.opset < 13 ? 1 : -1)),
        avx2_(RUNNX_HAVE_TARGET_AVX2 && cpu_features().has_avx2_fma()) {}

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    RUNNX_CHECK(x.rank() >= 1, kInvalidArgument, node.label(),
                ": input must have rank >= 1, got shape ", shape_str(x.shape));
    const int64_t axis = normalize_axis(axis_, x.rank(), node);
    int64_t outer = 1, n = 1, inner = 1;
    for (int64_t d = 0; d < x.rank(); ++d) {
      int64_t s = x.shape[d];
      if (d < axis)
        outer *= s;
      else if (d == axis || coerce_2d_)
        n *= s;
      else
        inner *= s;
    }
    Tensor& y = ctx.allocate_output(0, x.dtype, x.shape);
    if (outer * n * inner == 0) return;
    switch (x.dtype) {
      case DType::kF32:
        return compute<float>(ctx, x, y, outer, n, inner);
      case DType::kF64:
        return compute<double>(ctx, x, y, outer, n, inner);
      default:
        fail(ErrorKind::kUnsupportedOp, node.label(), ": element type ", dtype_name(x.dtype),
             " is not supported");
    }
  }

 private:
  template <typename T>
  void compute(KernelContext& ctx, const Tensor& x, Tensor& y, int64_t outer, int64_t n,
               int64_t inner) const {
    const T* xp = x.ptr<T>();
    T* yp = y.ptr<T>();
    const int64_t chunks = (inner + kColChunk - 1) / kColChunk;
    const int64_t task_elems = n * std::min(inner, kColChunk);
    const int64_t grain = std::max<int64_t>(1, (1 << 14) / task_elems);
    auto tasks = avx2_ ? softmax_tasks_avx2<T, K> : softmax_tasks_base<T, K>;
    ctx.pool().parallel_for(outer * chunks, grain, [&](int64_t begin, int64_t end) {
      tasks(xp, yp, n, inner, begin, end);
    });
  }

  bool coerce_2d_;
  int64_t axis_;
  bool avx2_;
};

}  // namespace

void register_softmax_ops(OpRegistry& r) {
  r.add("Softmax", "", 1, factory<SoftmaxKernel<SoftmaxKind::kSoftmax>>());
  r.add("LogSoftmax", "", 1, factory<SoftmaxKernel<SoftmaxKind::kLogSoftmax>>());
  r.add("Hardmax", "", 1, factory<SoftmaxKernel<SoftmaxKind::kHardmax>>());
}

}  // namespace runnx
