// The channels-last pointwise kernel (pointwise_nhwc.h), AVX2 + FMA.
#include <immintrin.h>

#include <algorithm>
#include <limits>

#include "kernels/cpu/pointwise_nhwc.h"

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

}  // namespace

void pointwise_clamp_avx2(int64_t P, const float* x, int64_t ldx, const PointwiseWeights& w,
                          const float* bias, float lo, float hi, float* y, int64_t ldy) {
  const int64_t K = w.K, N = w.N;
  const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
  constexpr float kInf = std::numeric_limits<float>::infinity();
  const auto& tiles = lo > -kInf || hi < kInf ? Tiles<true>::by : Tiles<false>::by;
  // Pixel groups outer: their x rows stay in L1 while every panel of W meets them.
  for (int64_t p = 0; p < P; p += 6) {
    const int mr = static_cast<int>(std::min<int64_t>(6, P - p));
    for (int64_t j = 0; j < N; j += 16) {
      const bool full = N - j >= 16;
      tiles[full][mr](K, x + p * ldx, ldx, w.data.data() + j * K, bias ? bias + j : nullptr, vlo,
                       vhi, y + p * ldy + j, ldy);
    }
  }
}

}  // namespace runnx
