// Row primitives shared by softmax, norm and reduce kernels, written so that GCC vectorises them
// at the baseline ISA without -ffast-math: reductions keep kLanes independent partial results
// (strict FP forbids reassociating one accumulator), and exp is branch-free arithmetic.
//
// They are all RUNNX_INLINE (always_inline) so that a kernel loop marked RUNNX_TARGET_AVX2 gets
// them inlined and vectorised with AVX2+FMA; the kernel keeps a baseline copy of the same loop
// and picks one by cpu_features() at session creation. An out-of-line call would run the
// baseline code.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define RUNNX_HAVE_TARGET_AVX2 1
#define RUNNX_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define RUNNX_HAVE_TARGET_AVX2 0
#define RUNNX_TARGET_AVX2
#endif
#define RUNNX_INLINE __attribute__((always_inline)) inline

namespace runnx {

constexpr int kLanes = 8;

// exp(x) for float in about 2 ulp: x = n*ln2 + r with |r| <= ln2/2, exp(r) by its degree-7
// Taylor polynomial (truncation error r^8/8! < 6e-9, below float epsilon), times 2^n built in the
// exponent bits. Inputs below -86.6 (results near the subnormal range) give 0, above 88.7 give
// +inf, NaN stays NaN.
// Clamping and special cases use integer bit masks, never `cond ? a : b` on floats: GCC threads
// such branches (sinking the polynomial into one arm) and, under the default -ftrapping-math,
// then refuses to if-convert the possibly trapping arithmetic, so the loop would stay scalar.
RUNNX_INLINE int32_t f32_bits(float f) {
  int32_t i;
  std::memcpy(&i, &f, sizeof(i));
  return i;
}
RUNNX_INLINE float f32_from_bits(int32_t i) {
  float f;
  std::memcpy(&f, &i, sizeof(f));
  return f;
}
// All ones where b is true, else zero.
RUNNX_INLINE int32_t mask_of(bool b) { return b ? -1 : 0; }
RUNNX_INLINE int32_t select_bits(int32_t m, int32_t a, int32_t b) { return (a & m) | (b & ~m); }

RUNNX_INLINE float exp_f32(float x) {
  const float lo = -86.6f, hi = 88.7f;
  const int32_t under = mask_of(x < lo), over = mask_of(x > hi), nan = mask_of(x != x);
  // Clamped input; NaN becomes 0 so the integer conversion below stays in range.
  const float xc = f32_from_bits(
      select_bits(under, f32_bits(lo), select_bits(over, f32_bits(hi), f32_bits(x) & ~nan)));
  // Round to nearest via the 1.5*2^23 shift: exact for |v| < 2^22 and vectorisable.
  const float shift = 12582912.0f;
  const float n = (xc * 1.44269504088896341f + shift) - shift;
  // ln2 split in two so n*ln2_hi is exact.
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.0f / 5040;
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // n is in [-125, 128]; 2^128 overflows the exponent field, so scale by 2^(n-1) and double.
  const float scale = f32_from_bits((static_cast<int32_t>(n) + 126) << 23);
  const int32_t y = f32_bits(p * scale * 2.0f);
  return f32_from_bits(select_bits(nan, f32_bits(x), select_bits(over, 0x7f800000, y & ~under)));
}

// exp(x) for x <= 0 or NaN (softmax after subtracting the row max), cheaper than exp_f32: no
// overflow case, and NaN needs no mask because r, and so the polynomial, of a NaN is NaN. n comes
// from x clamped (NaN to lo too, keeping the float-to-int conversion defined). Below -86.6 gives 0.
RUNNX_INLINE float exp_nonpos_f32(float x) {
  const float lo = -86.6f;
  const int32_t under = mask_of(x < lo);
  const float xc = f32_from_bits(select_bits(mask_of(!(x >= lo)), f32_bits(lo), f32_bits(x)));
  const float shift = 12582912.0f;
  const float n = (xc * 1.44269504088896341f + shift) - shift;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.0f / 5040;
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // n is in [-125, 0]. Where x < lo, r and p are meaningless and the result is flushed to 0.
  const float scale = f32_from_bits((static_cast<int32_t>(n) + 127) << 23);
  return f32_from_bits(f32_bits(p * scale) & ~under);
}
RUNNX_INLINE double exp_nonpos_t(double x) { return std::exp(x); }
RUNNX_INLINE float exp_nonpos_t(float x) { return exp_nonpos_f32(x); }

RUNNX_INLINE double exp_t(double x) { return std::exp(x); }
RUNNX_INLINE float exp_t(float x) { return exp_f32(x); }

template <typename T>
RUNNX_INLINE bool is_nan(T x) {
  if constexpr (std::is_floating_point_v<T>) return x != x;
  return false;
}

// Largest (kMax) or smallest element, NaN if any element is NaN (numpy's max/min); the type's
// lowest()/max() for an empty row. NaN is tracked apart from the extreme so each lane update
// stays a plain compare-and-select, which vectorises.
template <bool kMax, typename T>
RUNNX_INLINE T row_extreme(const T* x, int64_t n) {
  const T init = kMax ? std::numeric_limits<T>::lowest() : std::numeric_limits<T>::max();
  auto pick = [](T v, T a) { return (kMax ? v > a : v < a) ? v : a; };
  T lanes[kLanes];
  bool nan[kLanes] = {};
  for (int j = 0; j < kLanes; ++j) lanes[j] = init;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) {
      const T v = x[i + j];
      lanes[j] = pick(v, lanes[j]);
      nan[j] |= v != v;
    }
  T m = init;
  bool any_nan = false;
  for (; i < n; ++i) {
    m = pick(x[i], m);
    any_nan |= x[i] != x[i];
  }
  for (int j = 0; j < kLanes; ++j) {
    m = pick(lanes[j], m);
    any_nan |= nan[j];
  }
  if constexpr (std::numeric_limits<T>::has_quiet_NaN) {
    if (any_nan) return std::numeric_limits<T>::quiet_NaN();
  }
  return m;
}

template <typename T>
RUNNX_INLINE T row_max(const T* x, int64_t n) {
  return row_extreme<true>(x, n);
}

// Largest non-NaN element (lowest() if none): about 2.5x cheaper than row_max, for callers whose
// result becomes NaN anyway when a NaN is present (softmax: exp(NaN - m) poisons the sum).
template <typename T>
RUNNX_INLINE T row_max_ignoring_nan(const T* x, int64_t n) {
  T lanes[kLanes];
  for (int j = 0; j < kLanes; ++j) lanes[j] = std::numeric_limits<T>::lowest();
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) lanes[j] = x[i + j] > lanes[j] ? x[i + j] : lanes[j];
  T m = std::numeric_limits<T>::lowest();
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  for (int j = 0; j < kLanes; ++j) m = lanes[j] > m ? lanes[j] : m;
  return m;
}

// Sum of a row accumulated in double. L partial sums: kLanes (two AVX2 registers of doubles) is
// bound by the add latency; 16 (four registers) runs about twice as fast on long rows.
template <int L = kLanes, typename T>
RUNNX_INLINE double row_sum(const T* x, int64_t n) {
  double lanes[L] = {};
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int j = 0; j < L; ++j) lanes[j] += static_cast<double>(x[i + j]);
  double s = 0;
  for (; i < n; ++i) s += static_cast<double>(x[i]);
  for (int j = 0; j < L; ++j) s += lanes[j];
  return s;
}

// Sum of (x - m)^2 over a row, in double (the second pass of a two-pass variance).
template <int L = kLanes, typename T>
RUNNX_INLINE double row_sum_sq_dev(const T* x, int64_t n, double m) {
  double lanes[L] = {};
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int j = 0; j < L; ++j) {
      double d = static_cast<double>(x[i + j]) - m;
      lanes[j] += d * d;
    }
  double s = 0;
  for (; i < n; ++i) {
    double d = static_cast<double>(x[i]) - m;
    s += d * d;
  }
  for (int j = 0; j < L; ++j) s += lanes[j];
  return s;
}

}  // namespace runnx
