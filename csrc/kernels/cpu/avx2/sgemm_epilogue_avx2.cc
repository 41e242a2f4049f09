// The AVX2 GEMM's vector math: the epilogue over a block of C (bias, residual, every activation;
// exp, tanh and erf as polynomials within 2e-7 absolute of float64) and attention's row softmax.
// The tile drivers in sgemm_avx2.cc apply the cheap activations in registers themselves and call
// sgemm_avx2_epilogue_block for right-edge tiles and the exp/erf/tanh sweeps.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "kernels/cpu/sgemm_avx2.h"

namespace runnx {

namespace {

// exp(x) for x in about [-87, 88] (clamped there), relative error about 2e-7.
inline __m256 exp256(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.0f / 5040);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

inline __m256 sigmoid256(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  return _mm256_div_ps(one, _mm256_add_ps(one, exp256(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

// tanh: odd Taylor polynomial below 0.3 (no cancellation), 1 - 2/(exp(2|x|)+1) above; sign restored.
inline __m256 tanh256(__m256 x) {
  const __m256 sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0f));
  const __m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 e = exp256(_mm256_add_ps(ax, ax));
  const __m256 big = _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, one)));
  const __m256 x2 = _mm256_mul_ps(ax, ax);
  __m256 p = _mm256_set1_ps(62.0f / 2835);
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-17.0f / 315));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(2.0f / 15));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-1.0f / 3));
  p = _mm256_fmadd_ps(p, x2, one);
  const __m256 small = _mm256_mul_ps(p, ax);
  const __m256 r = _mm256_blendv_ps(big, small, _mm256_cmp_ps(ax, _mm256_set1_ps(0.3f), _CMP_LT_OQ));
  return _mm256_or_ps(r, sign);
}

// erf by Abramowitz & Stegun 7.1.26: 1 - poly(t) exp(-x^2), t = 1/(1 + 0.3275911|x|);
// absolute error below 1.5e-7 (plus float rounding).
inline __m256 erf256(__m256 x) {
  const __m256 sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0f));
  const __m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
  const __m256 one = _mm256_set1_ps(1.0f);
  // t = 1/d by the reciprocal estimate and one Newton step (relative error ~1e-7): a division
  // was the sweep's slowest instruction.
  const __m256 d = _mm256_fmadd_ps(_mm256_set1_ps(0.3275911f), ax, one);
  const __m256 r0 = _mm256_rcp_ps(d);
  const __m256 t = _mm256_mul_ps(r0, _mm256_fnmadd_ps(d, r0, _mm256_set1_ps(2.0f)));
  __m256 p = _mm256_set1_ps(1.061405429f);
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.453152027f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
  p = _mm256_mul_ps(p, t);
  const __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(ax, ax)));
  const __m256 r = _mm256_fnmadd_ps(p, e, one);
  return _mm256_or_ps(r, sign);
}

// exp and erf as exp256 and erf256, in 512-bit registers (AVX-512F only: sign bits through the
// integer and/or, the reciprocal estimate from rcp14 and one Newton step). Within the same bounds.
__attribute__((target("avx512f"))) inline __m512 exp512(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

__attribute__((target("avx512f"))) inline __m512 erf512(__m512 x) {
  const __m512i bits = _mm512_castps_si512(x), sign_bit = _mm512_set1_epi32(INT32_MIN);
  const __m512i sign = _mm512_and_si512(bits, sign_bit);
  const __m512 ax = _mm512_castsi512_ps(_mm512_andnot_si512(sign_bit, bits));
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 d = _mm512_fmadd_ps(_mm512_set1_ps(0.3275911f), ax, one);
  const __m512 r0 = _mm512_rcp14_ps(d);
  const __m512 t = _mm512_mul_ps(r0, _mm512_fnmadd_ps(d, r0, _mm512_set1_ps(2.0f)));
  __m512 p = _mm512_set1_ps(1.061405429f);
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.453152027f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.421413741f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.284496736f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.254829592f));
  p = _mm512_mul_ps(p, t);
  const __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(ax, ax)));
  const __m512 r = _mm512_fnmadd_ps(p, e, one);
  return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(r), sign));
}

// Columns [j, j + 16k) of row c through bias, residual and GELU (erf form) 16 at a time, up to n;
// returns the first column left. BERT's feed-forward GELU sweep held ~2.5% of its time in 256-bit
// registers, which Zen 5 runs at half the 512-bit rate.
__attribute__((target("avx512f"))) int64_t gelu_erf_row_512(float* c, const float* col_bias, float row_bias,
                                                             const float* res, int64_t j, int64_t n) {
  const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
  const __m512 rsqrt2 = _mm512_set1_ps(0.70710678118654752f);
  for (; j + 16 <= n; j += 16) {
    __m512 v = _mm512_loadu_ps(c + j);
    if (col_bias) v = _mm512_add_ps(v, _mm512_loadu_ps(col_bias + j));
    else if (row_bias != 0.f) v = _mm512_add_ps(v, _mm512_set1_ps(row_bias));
    if (res) v = _mm512_add_ps(v, _mm512_loadu_ps(res + j));
    const __m512 e = erf512(_mm512_mul_ps(v, rsqrt2));
    _mm512_storeu_ps(c + j, _mm512_mul_ps(_mm512_mul_ps(half, v), _mm512_add_ps(one, e)));
  }
  return j;
}

inline __m256 activate(__m256 v, const GemmEpilogue& epi) {
  switch (epi.act) {
    case GemmEpilogue::Act::kNone: return v;
    case GemmEpilogue::Act::kRelu: return _mm256_max_ps(v, _mm256_setzero_ps());
    case GemmEpilogue::Act::kClip:
      return _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(epi.clip_lo)), _mm256_set1_ps(epi.clip_hi));
    case GemmEpilogue::Act::kSigmoid: return sigmoid256(v);
    case GemmEpilogue::Act::kTanh: return tanh256(v);
    case GemmEpilogue::Act::kGeluErf: {
      const __m256 e = erf256(_mm256_mul_ps(v, _mm256_set1_ps(0.70710678118654752f)));
      return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), v), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
    }
    case GemmEpilogue::Act::kGeluTanh: {
      const __m256 v3 = _mm256_mul_ps(_mm256_mul_ps(v, v), v);
      const __m256 u = _mm256_mul_ps(_mm256_set1_ps(0.7978845608028654f),
                                     _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), v3, v));
      return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), v),
                           _mm256_add_ps(_mm256_set1_ps(1.0f), tanh256(u)));
    }
    case GemmEpilogue::Act::kLeakyRelu:
      return _mm256_blendv_ps(v, _mm256_mul_ps(v, _mm256_set1_ps(epi.alpha)),
                              _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ));
    case GemmEpilogue::Act::kHardSwish: {
      const __m256 g = _mm256_fmadd_ps(v, _mm256_set1_ps(epi.alpha), _mm256_set1_ps(epi.shift));
      return _mm256_mul_ps(v, _mm256_min_ps(_mm256_max_ps(g, _mm256_setzero_ps()), _mm256_set1_ps(1.0f)));
    }
  }
  return v;
}

}  // namespace

void sgemm_avx2_epilogue_block(const GemmEpilogue& epi, int64_t i0, int64_t i1, int64_t j0, int64_t j1,
                               float* C, int64_t ldc) {
  const bool gelu512 = epi.act == GemmEpilogue::Act::kGeluErf && sgemm_avx2_uses_avx512();
  for (int64_t i = i0; i < i1; ++i) {
    float* c = C + i * ldc;
    const float* res = epi.residual ? epi.residual + i * epi.ldr : nullptr;
    const float row_bias = epi.bias && epi.bias_per_row ? epi.bias[i] : 0.f;
    const float* col_bias = epi.bias && !epi.bias_per_row ? epi.bias : nullptr;
    int64_t j = j0;
    if (gelu512) j = gelu_erf_row_512(c, col_bias, row_bias, res, j, j1);
    for (; j + 8 <= j1; j += 8) {
      __m256 v = _mm256_loadu_ps(c + j);
      if (col_bias) v = _mm256_add_ps(v, _mm256_loadu_ps(col_bias + j));
      else if (row_bias != 0.f) v = _mm256_add_ps(v, _mm256_set1_ps(row_bias));
      if (res) v = _mm256_add_ps(v, _mm256_loadu_ps(res + j));
      _mm256_storeu_ps(c + j, activate(v, epi));
    }
    if (j < j1) {
      // The tail through an 8-float buffer (no reads past the rows' ends).
      const int n = static_cast<int>(j1 - j);
      alignas(32) float tc[8] = {}, tb[8] = {}, tr[8] = {};
      std::memcpy(tc, c + j, n * sizeof(float));
      if (col_bias) std::memcpy(tb, col_bias + j, n * sizeof(float));
      if (res) std::memcpy(tr, res + j, n * sizeof(float));
      __m256 v = _mm256_load_ps(tc);
      if (col_bias) v = _mm256_add_ps(v, _mm256_load_ps(tb));
      else if (row_bias != 0.f) v = _mm256_add_ps(v, _mm256_set1_ps(row_bias));
      if (res) v = _mm256_add_ps(v, _mm256_load_ps(tr));
      _mm256_store_ps(tc, activate(v, epi));
      std::memcpy(c + j, tc, n * sizeof(float));
    }
  }
}

namespace {

// A row holding NaN, or with an infinite max (all -inf, or +inf in it), s already x = scale * s +
// mask: the plain formula, which gives the reference's NaNs.
void softmax_row_plain(float* s, int64_t n, float mx) {
  float sum = 0.f;
  for (int64_t c = 0; c < n; ++c) sum += (s[c] = std::exp(s[c] - mx));
  for (int64_t c = 0; c < n; ++c) s[c] /= sum;
}

// Row i of sgemm_avx2_softmax_rows in 512-bit registers: false (the row untouched past pass 1's
// x = scale * s + mask) when it holds a NaN or an infinite max, for the caller's plain formula.
// Attention's 128-wide rows of scores: the three passes in 256-bit registers held ~1.5% of
// BERT-base's time at batch 8.
__attribute__((target("avx512f"))) bool softmax_row_512(float* s, int64_t n, float scale, const float* m,
                                                        float& mx) {
  const __m512 vscale = _mm512_set1_ps(scale);
  __m512 vmax = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __mmask16 nan = 0;
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    __m512 x = _mm512_mul_ps(_mm512_loadu_ps(s + j), vscale);
    if (m) x = _mm512_add_ps(x, _mm512_loadu_ps(m + j));
    _mm512_storeu_ps(s + j, x);
    nan |= _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    vmax = _mm512_max_ps(vmax, x);
  }
  mx = _mm512_reduce_max_ps(vmax);
  bool has_nan = nan != 0;
  for (; j < n; ++j) {
    s[j] = s[j] * scale + (m ? m[j] : 0.f);
    has_nan |= s[j] != s[j];
    mx = std::max(mx, s[j]);
  }
  if (has_nan || mx == -std::numeric_limits<float>::infinity() || mx == std::numeric_limits<float>::infinity())
    return false;
  const __m512 vm = _mm512_set1_ps(mx);
  __m512 vsum = _mm512_setzero_ps();
  for (j = 0; j + 16 <= n; j += 16) {
    const __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(s + j), vm));
    _mm512_storeu_ps(s + j, e);
    vsum = _mm512_add_ps(vsum, e);
  }
  float sum = _mm512_reduce_add_ps(vsum);
  for (; j < n; ++j) sum += (s[j] = std::exp(s[j] - mx));
  const __m512 inv = _mm512_set1_ps(1.0f / sum);
  for (j = 0; j + 16 <= n; j += 16) _mm512_storeu_ps(s + j, _mm512_mul_ps(_mm512_loadu_ps(s + j), inv));
  for (; j < n; ++j) s[j] *= 1.0f / sum;
  return true;
}

}  // namespace

void sgemm_avx2_softmax_rows(float* S, int64_t rows, int64_t n, int64_t ld, float scale, const float* mask,
                             int64_t mask_ld) {
  if (sgemm_avx2_uses_avx512()) {
    for (int64_t i = 0; i < rows; ++i) {
      float* s = S + i * ld;
      float mx = 0.f;
      if (!softmax_row_512(s, n, scale, mask ? mask + i * mask_ld : nullptr, mx)) softmax_row_plain(s, n, mx);
    }
    return;
  }
  const __m256 vscale = _mm256_set1_ps(scale);
  for (int64_t i = 0; i < rows; ++i) {
    float* s = S + i * ld;
    const float* m = mask ? mask + i * mask_ld : nullptr;
    // Pass 1: x = scale*s + mask, its max; NaN anywhere sends the row to the scalar path.
    __m256 vmax = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
    __m256 vnan = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
      __m256 x = _mm256_mul_ps(_mm256_loadu_ps(s + j), vscale);
      if (m) x = _mm256_add_ps(x, _mm256_loadu_ps(m + j));
      _mm256_storeu_ps(s + j, x);
      vnan = _mm256_or_ps(vnan, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
      vmax = _mm256_max_ps(vmax, x);
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, vmax);
    float mx = lanes[0];
    for (int q = 1; q < 8; ++q) mx = std::max(mx, lanes[q]);
    bool nan = _mm256_movemask_ps(vnan) != 0;
    for (; j < n; ++j) {
      s[j] = s[j] * scale + (m ? m[j] : 0.f);
      nan |= s[j] != s[j];
      mx = std::max(mx, s[j]);
    }
    if (nan || mx == -std::numeric_limits<float>::infinity() || mx == std::numeric_limits<float>::infinity()) {
      softmax_row_plain(s, n, mx);
      continue;
    }
    // Pass 2: exp(x - max) and the sum; pass 3: normalise.
    const __m256 vm = _mm256_set1_ps(mx);
    __m256 vsum = _mm256_setzero_ps();
    for (j = 0; j + 8 <= n; j += 8) {
      const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
      _mm256_storeu_ps(s + j, e);
      vsum = _mm256_add_ps(vsum, e);
    }
    _mm256_store_ps(lanes, vsum);
    float sum = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
    for (; j < n; ++j) sum += (s[j] = std::exp(s[j] - mx));
    const __m256 inv = _mm256_set1_ps(1.0f / sum);
    for (j = 0; j + 8 <= n; j += 8) _mm256_storeu_ps(s + j, _mm256_mul_ps(_mm256_loadu_ps(s + j), inv));
    for (; j < n; ++j) s[j] *= 1.0f / sum;
  }
}

}  // namespace runnx
