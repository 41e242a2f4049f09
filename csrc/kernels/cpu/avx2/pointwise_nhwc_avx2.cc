// The channels-last pointwise kernel (pointwise_nhwc.h), AVX2 + FMA.
#include <immintrin.h>

#include <algorithm>
#include <limits>

#include "kernels/cpu/pointwise_nhwc.h"
#include "kernels/cpu/sgemm_avx2.h"  // sgemm_avx2_uses_avx512

namespace runnx {

namespace {

// MR pixels x NV vectors of 8 channels: acc = bias, then one FMA per (pixel, vector, k). CLAMP:
// min(max(acc, lo), hi) at the store (as the sgemm's ReLU/Clip: NaN becomes lo); without an
// activation acc is stored as is, so a NaN stays NaN.
template <int MR, int NV, bool CLAMP>
void pointwise_tile(int64_t K, const float* __restrict x, int64_t ldx, const float* __restrict w,
                    const float* bias, __m256 lo, __m256 hi, float* y, int64_t ldy) {
  __m256 acc[MR][NV];
  for (int h = 0; h < NV; ++h) {
    const __m256 b = bias ? _mm256_loadu_ps(bias + 8 * h) : _mm256_setzero_ps();
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) acc[i][h] = b;
  }
#pragma GCC unroll 4
  for (int64_t k = 0; k < K; ++k) {
    __m256 wv[NV];
#pragma GCC unroll 2
    for (int h = 0; h < NV; ++h) wv[h] = _mm256_loadu_ps(w + k * 8 * NV + 8 * h);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 a = _mm256_broadcast_ss(x + i * ldx + k);
#pragma GCC unroll 2
      for (int h = 0; h < NV; ++h) acc[i][h] = _mm256_fmadd_ps(a, wv[h], acc[i][h]);
    }
  }
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
    for (int h = 0; h < NV; ++h)
      _mm256_storeu_ps(y + i * ldy + 8 * h, CLAMP ? _mm256_min_ps(_mm256_max_ps(acc[i][h], lo), hi) : acc[i][h]);
}

using Tile = void (*)(int64_t, const float*, int64_t, const float*, const float*, __m256, __m256,
                      float*, int64_t);
template <bool CLAMP>
struct Tiles {  // [16 channels][pixels]
  static constexpr Tile by[2][7] = {
      {nullptr, pointwise_tile<1, 1, CLAMP>, pointwise_tile<2, 1, CLAMP>, pointwise_tile<3, 1, CLAMP>,
       pointwise_tile<4, 1, CLAMP>, pointwise_tile<5, 1, CLAMP>, pointwise_tile<6, 1, CLAMP>},
      {nullptr, pointwise_tile<1, 2, CLAMP>, pointwise_tile<2, 2, CLAMP>, pointwise_tile<3, 2, CLAMP>,
       pointwise_tile<4, 2, CLAMP>, pointwise_tile<5, 2, CLAMP>, pointwise_tile<6, 2, CLAMP>}};
};

// MR pixels x NZ panels of 16 channels in 512-bit registers (a CPU with AVX-512F): w0, w1 the
// panels ([K][16] each), bias and y at the first. Zen 5 runs 512-bit FMAs at twice the 256-bit
// rate. Each element is still one FMA chain in k order: the same sums as pointwise_tile, bit for bit.
template <int MR, int NZ, bool CLAMP>
__attribute__((target("avx512f"))) void pointwise_tile_512(int64_t K, const float* __restrict x, int64_t ldx,
                                                           const float* __restrict w0, const float* __restrict w1,
                                                           const float* bias, float lo, float hi, float* y,
                                                           int64_t ldy) {
  __m512 acc[MR][NZ];
#pragma GCC unroll 2
  for (int h = 0; h < NZ; ++h) {
    const __m512 b = bias ? _mm512_loadu_ps(bias + 16 * h) : _mm512_setzero_ps();
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) acc[i][h] = b;
  }
#pragma GCC unroll 4
  for (int64_t k = 0; k < K; ++k) {
    __m512 wv[NZ];
    wv[0] = _mm512_loadu_ps(w0 + k * 16);
    if constexpr (NZ == 2) wv[1] = _mm512_loadu_ps(w1 + k * 16);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m512 a = _mm512_set1_ps(x[i * ldx + k]);
#pragma GCC unroll 2
      for (int h = 0; h < NZ; ++h) acc[i][h] = _mm512_fmadd_ps(a, wv[h], acc[i][h]);
    }
  }
  const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
    for (int h = 0; h < NZ; ++h)
      _mm512_storeu_ps(y + i * ldy + 16 * h,
                       CLAMP ? _mm512_min_ps(_mm512_max_ps(acc[i][h], vlo), vhi) : acc[i][h]);
}

using Tile512 = void (*)(int64_t, const float*, int64_t, const float*, const float*, const float*, float, float,
                         float*, int64_t);
template <bool CLAMP>
struct Tiles512 {  // [panels - 1][pixels]
  static constexpr Tile512 by[2][7] = {
      {nullptr, pointwise_tile_512<1, 1, CLAMP>, pointwise_tile_512<2, 1, CLAMP>, pointwise_tile_512<3, 1, CLAMP>,
       pointwise_tile_512<4, 1, CLAMP>, pointwise_tile_512<5, 1, CLAMP>, pointwise_tile_512<6, 1, CLAMP>},
      {nullptr, pointwise_tile_512<1, 2, CLAMP>, pointwise_tile_512<2, 2, CLAMP>, pointwise_tile_512<3, 2, CLAMP>,
       pointwise_tile_512<4, 2, CLAMP>, pointwise_tile_512<5, 2, CLAMP>, pointwise_tile_512<6, 2, CLAMP>}};
};

}  // namespace

void pointwise_clamp_avx2(int64_t P, const float* x, int64_t ldx, const PointwiseWeights& w,
                          const float* bias, float lo, float hi, float* y, int64_t ldy) {
  const int64_t K = w.K, N = w.N;
  const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
  constexpr float kInf = std::numeric_limits<float>::infinity();
  const bool clamp = lo > -kInf || hi < kInf;
  const auto& tiles = clamp ? Tiles<true>::by : Tiles<false>::by;
  const auto& tiles512 = clamp ? Tiles512<true>::by : Tiles512<false>::by;
  const bool wide = sgemm_avx2_uses_avx512();
  // Pixel groups outer: their x rows stay in L1 while every panel of W meets them.
  for (int64_t p = 0; p < P; p += 6) {
    const int mr = static_cast<int>(std::min<int64_t>(6, P - p));
    int64_t j = 0;
    // Under AVX-512 pairs of full panels, then a last full one, in 512-bit registers.
    while (wide && N - j >= 16) {
      const int panels = N - j >= 32 ? 2 : 1;
      const float* w0 = w.data.data() + j * K;
      tiles512[panels - 1][mr](K, x + p * ldx, ldx, w0, w0 + 16 * K, bias ? bias + j : nullptr, lo, hi,
                               y + p * ldy + j, ldy);
      j += 16 * panels;
    }
    for (; j < N; j += 16) {
      const bool full = N - j >= 16;
      tiles[full][mr](K, x + p * ldx, ldx, w.data.data() + j * K, bias ? bias + j : nullptr, vlo,
                       vhi, y + p * ldy + j, ldy);
    }
  }
}

}  // namespace runnx
