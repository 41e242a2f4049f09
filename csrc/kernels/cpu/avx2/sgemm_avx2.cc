// f32 GEMM for AVX2+FMA: C = A*B + beta*C, row-major.
//
// B is packed into 16-column panels (zero-padded at the tail), K-blocked by kKc so one panel
// block (kKc x 16 floats = 16 KB) stays in L1 while a 6x16 register tile of C (12 ymm
// accumulators) sweeps down the rows of A. A is read in place: six broadcasts per k step from six
// rows. Tiles of C (kMc rows x kNc columns) are spread over the pool. Small M (GEMV-like) skips
// packing and streams rows of B instead, since there the cost is reading B once.
#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "kernels/cpu/sgemm_avx2.h"

namespace runnx {

namespace {

constexpr int kMr = 6;
constexpr int kNr = 16;
constexpr int64_t kKc = 256;
constexpr int64_t kMc = 72;   // multiple of kMr
constexpr int64_t kNc = 256;  // multiple of kNr

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};

// Packs B[k0:k0+kc, :] into panels: panel p holds columns [16p, 16p+16) as kc rows of 16.
void pack_b(const float* B, int64_t ldb, int64_t N, int64_t k0, int64_t kc, float* out, int64_t p0, int64_t p1) {
  for (int64_t p = p0; p < p1; ++p) {
    float* dst = out + p * kc * kNr;
    int64_t c0 = p * kNr, w = std::min<int64_t>(kNr, N - c0);
    for (int64_t k = 0; k < kc; ++k) {
      const float* src = B + (k0 + k) * ldb + c0;
      if (w == kNr) {
        _mm256_storeu_ps(dst + k * kNr, _mm256_loadu_ps(src));
        _mm256_storeu_ps(dst + k * kNr + 8, _mm256_loadu_ps(src + 8));
      } else {
        for (int64_t j = 0; j < kNr; ++j) dst[k * kNr + j] = j < w ? src[j] : 0.f;
      }
    }
  }
}

// acc(mr x 16) = A[0:mr, 0:kc] * Bp(kc x 16); then C = acc + (accumulate ? C : beta*C).
template <int MR>
void micro_kernel(int64_t kc, const float* A, int64_t lda, const float* Bp, float* C, int64_t ldc,
                  int ncols, bool accumulate, float beta) {
  __m256 acc[MR][2];
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    __m256 b0 = _mm256_loadu_ps(Bp + k * kNr);
    __m256 b1 = _mm256_loadu_ps(Bp + k * kNr + 8);
    for (int i = 0; i < MR; ++i) {
      __m256 a = _mm256_broadcast_ss(A + i * lda + k);
      acc[i][0] = _mm256_fmadd_ps(a, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(a, b1, acc[i][1]);
    }
  }
  const __m256 vbeta = _mm256_set1_ps(beta);
  for (int i = 0; i < MR; ++i) {
    float* c = C + i * ldc;
    if (ncols == kNr) {
      for (int h = 0; h < 2; ++h) {
        __m256 v = acc[i][h];
        if (accumulate) v = _mm256_add_ps(v, _mm256_loadu_ps(c + 8 * h));
        else if (beta != 0.f) v = _mm256_fmadd_ps(vbeta, _mm256_loadu_ps(c + 8 * h), v);
        _mm256_storeu_ps(c + 8 * h, v);
      }
    } else {
      alignas(32) float tmp[kNr];
      _mm256_store_ps(tmp, acc[i][0]);
      _mm256_store_ps(tmp + 8, acc[i][1]);
      for (int j = 0; j < ncols; ++j)
        c[j] = tmp[j] + (accumulate ? c[j] : (beta != 0.f ? beta * c[j] : 0.f));
    }
  }
}

using MicroKernel = void (*)(int64_t, const float*, int64_t, const float*, float*, int64_t, int, bool, float);
constexpr MicroKernel kKernels[kMr + 1] = {nullptr, micro_kernel<1>, micro_kernel<2>, micro_kernel<3>,
                                           micro_kernel<4>, micro_kernel<5>, micro_kernel<6>};

// Few rows: C[i, :] (+)= sum_k A[i,k] * B[k, :], streaming B once, split over columns.
void gemv_like(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
               float* C, int64_t ldc, float beta, ThreadPool* pool) {
  auto cols = [&](int64_t j0, int64_t j1) {
    for (int64_t i = 0; i < M; ++i) {
      float* c = C + i * ldc;
      if (beta == 0.f) std::fill(c + j0, c + j1, 0.f);
      else if (beta != 1.f) for (int64_t j = j0; j < j1; ++j) c[j] *= beta;
      const float* a = A + i * lda;
      for (int64_t k = 0; k < K; ++k) {
        const __m256 va = _mm256_set1_ps(a[k]);
        const float* b = B + k * ldb;
        int64_t j = j0;
        for (; j + 8 <= j1; j += 8)
          _mm256_storeu_ps(c + j, _mm256_fmadd_ps(va, _mm256_loadu_ps(b + j), _mm256_loadu_ps(c + j)));
        for (; j < j1; ++j) c[j] += a[k] * b[j];
      }
    }
  };
  // Column blocks of 512 keep a block of C rows in L1 across the whole K loop.
  int64_t blocks = (N + 511) / 512;
  auto run = [&](int64_t b0, int64_t b1) { cols(b0 * 512, std::min(N, b1 * 512)); };
  if (pool && M * N * K > 65536) pool->parallel_for(blocks, 1, run);
  else run(0, blocks);
}

}  // namespace

void sgemm_avx2(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                int64_t ldb, float* C, int64_t ldc, float beta, ThreadPool* pool) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.f ? 0.f : beta * C[i * ldc + j];
    return;
  }
  if (M < 4) return gemv_like(M, N, K, A, lda, B, ldb, C, ldc, beta, pool);

  const int64_t panels = (N + kNr - 1) / kNr;
  const int64_t kc_max = std::min(K, kKc);
  std::unique_ptr<float, FreeDeleter> packed(
      static_cast<float*>(std::aligned_alloc(64, ((panels * kc_max * kNr * 4) + 63) / 64 * 64)));
  const int64_t m_tiles = (M + kMc - 1) / kMc;
  const int64_t n_tiles = (N + kNc - 1) / kNc;
  const bool parallel = pool && M * N * K >= 4 * 65536;

  for (int64_t k0 = 0; k0 < K; k0 += kKc) {
    const int64_t kc = std::min(kKc, K - k0);
    const bool accumulate = k0 > 0;
    float* bp = packed.get();
    auto pack = [&](int64_t p0, int64_t p1) { pack_b(B, ldb, N, k0, kc, bp, p0, p1); };
    if (parallel) pool->parallel_for(panels, 4, pack);
    else pack(0, panels);

    auto tiles = [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        int64_t mt = t % m_tiles, nt = t / m_tiles;
        int64_t m0 = mt * kMc, m1 = std::min(M, m0 + kMc);
        int64_t n0 = nt * kNc, n1 = std::min(N, n0 + kNc);
        for (int64_t j = n0; j < n1; j += kNr) {
          const float* panel = bp + (j / kNr) * kc * kNr;
          int ncols = static_cast<int>(std::min<int64_t>(kNr, N - j));
          for (int64_t i = m0; i < m1; i += kMr) {
            int mr = static_cast<int>(std::min<int64_t>(kMr, m1 - i));
            kKernels[mr](kc, A + i * lda + k0, lda, panel, C + i * ldc + j, ldc, ncols, accumulate, beta);
          }
        }
      }
    };
    if (parallel) pool->parallel_for(m_tiles * n_tiles, 1, tiles);
    else tiles(0, m_tiles * n_tiles);
  }
}

}  // namespace runnx
