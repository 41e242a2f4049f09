// Portable cache-blocked GEMM. C is cut into tiles (parallel tasks); each tile walks K in blocks
// so that a KB x NB block of B stays in L2 while four rows of the C tile stay in L1. The inner
// loop is "i-k-j": four rows of C get a[i,k] * B[k, j0:j1] added, B's row streamed contiguously,
// which compilers vectorise for any ISA. The AVX2 microkernel replaces this inside gemm_f32.
#include "kernels/cpu/gemm.h"

#include "common/cpu_features.h"
#include "common/load_memory.h"
#include "kernels/cpu/sgemm_avx2.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

namespace runnx {
namespace {

constexpr int64_t kNB = 256;    // columns per tile: 4 rows of C = 4 KiB of floats, in L1
constexpr int64_t kKB = 128;    // K per block: a KB x NB block of B is 128 KiB of floats, in L2
constexpr int64_t kMaxMB = 64;  // rows per tile
// Below this many multiply-adds a GEMM runs on the calling thread (waking workers costs more).
constexpr int64_t kParallelMacs = int64_t{1} << 17;

// c0..c3 += a0[k]*b0 + a1[k]*b1 for two consecutive k: halves the C loads/stores per product.
template <typename T>
inline void rows4_k2(int64_t n, const T* a, int64_t lda, const T* __restrict b0,
                     const T* __restrict b1, T* __restrict c0, T* __restrict c1, T* __restrict c2,
                     T* __restrict c3) {
  const T x0 = a[0], y0 = a[1], x1 = a[lda], y1 = a[lda + 1];
  const T x2 = a[2 * lda], y2 = a[2 * lda + 1], x3 = a[3 * lda], y3 = a[3 * lda + 1];
  for (int64_t j = 0; j < n; ++j) {
    const T p = b0[j], q = b1[j];
    c0[j] += x0 * p + y0 * q;
    c1[j] += x1 * p + y1 * q;
    c2[j] += x2 * p + y2 * q;
    c3[j] += x3 * p + y3 * q;
  }
}

template <typename T>
inline void rows4_k1(int64_t n, const T* a, int64_t lda, const T* __restrict b, T* __restrict c0,
                     T* __restrict c1, T* __restrict c2, T* __restrict c3) {
  const T x0 = a[0], x1 = a[lda], x2 = a[2 * lda], x3 = a[3 * lda];
  for (int64_t j = 0; j < n; ++j) {
    const T p = b[j];
    c0[j] += x0 * p;
    c1[j] += x1 * p;
    c2[j] += x2 * p;
    c3[j] += x3 * p;
  }
}

template <typename T>
inline void row_k1(int64_t n, T x, const T* __restrict b, T* __restrict c) {
  for (int64_t j = 0; j < n; ++j) c[j] += x * b[j];
}

template <typename T>
void scale_rows(int64_t i0, int64_t i1, int64_t j0, int64_t n, T* C, int64_t ldc, T beta) {
  for (int64_t i = i0; i < i1; ++i) {
    T* c = C + i * ldc + j0;
    if (beta == T(0)) {
      std::fill(c, c + n, T(0));
    } else if (beta != T(1)) {
      for (int64_t j = 0; j < n; ++j) c[j] *= beta;
    }
  }
}

// One tile C[i0:i1, j0:j1] over all of K.
template <typename T>
void gemm_tile(int64_t i0, int64_t i1, int64_t j0, int64_t j1, int64_t K, const T* A, int64_t lda,
               const T* B, int64_t ldb, T* C, int64_t ldc, T beta) {
  const int64_t n = j1 - j0;
  scale_rows(i0, i1, j0, n, C, ldc, beta);
  for (int64_t k0 = 0; k0 < K; k0 += kKB) {
    const int64_t k1 = std::min(K, k0 + kKB);
    int64_t i = i0;
    for (; i + 4 <= i1; i += 4) {
      const T* a = A + i * lda;
      T* c0 = C + i * ldc + j0;
      int64_t k = k0;
      for (; k + 2 <= k1; k += 2) {
        const T* b = B + k * ldb + j0;
        rows4_k2(n, a + k, lda, b, b + ldb, c0, c0 + ldc, c0 + 2 * ldc, c0 + 3 * ldc);
      }
      if (k < k1)
        rows4_k1(n, a + k, lda, B + k * ldb + j0, c0, c0 + ldc, c0 + 2 * ldc, c0 + 3 * ldc);
    }
    for (; i < i1; ++i)
      for (int64_t k = k0; k < k1; ++k)
        row_k1(n, A[i * lda + k], B + k * ldb + j0, C + i * ldc + j0);
  }
}

template <typename T>
T dot(int64_t K, const T* __restrict a, const T* __restrict b) {
  // Eight partial sums: a vectorisable reduction without reassociation flags.
  T s[8] = {};
  int64_t k = 0;
  for (; k + 8 <= K; k += 8)
    for (int u = 0; u < 8; ++u) s[u] += a[k + u] * b[k + u];
  T t = T(0);
  for (; k < K; ++k) t += a[k] * b[k];
  return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7])) + t;
}

// Narrow B (a few columns, e.g. matrix-vector): the i-k-j loop would run N-long inner loops, so
// transpose B once and take dot products along K instead.
template <typename T>
void gemm_narrow(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb,
                 T* C, int64_t ldc, T beta, ThreadPool* pool) {
  std::vector<T> bt(static_cast<size_t>(N * K));
  transpose_matrix(K, N, B, ldb, bt.data());
  auto rows = [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i)
      for (int64_t j = 0; j < N; ++j) {
        T v = dot(K, A + i * lda, bt.data() + j * K);
        T& c = C[i * ldc + j];
        c = beta == T(0) ? v : v + beta * c;
      }
  };
  const int64_t grain = std::max<int64_t>(1, kParallelMacs / std::max<int64_t>(1, N * K));
  if (pool)
    pool->parallel_for(M, grain, rows);
  else
    rows(0, M);
}

template <typename T>
void gemm_impl(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb,
               T* C, int64_t ldc, T beta, ThreadPool* pool) {
  if (M <= 0 || N <= 0) return;
  const bool parallel =
      pool && pool->num_threads() > 1 && M * N * std::max<int64_t>(K, 1) >= kParallelMacs;
  if (N < 4 && K >= 16)
    return gemm_narrow(M, N, K, A, lda, B, ldb, C, ldc, beta, parallel ? pool : nullptr);
  int64_t mb = kMaxMB;
  const int64_t tn = (N + kNB - 1) / kNB;
  if (parallel) {
    // Smaller row tiles until every thread has a couple of tiles to take.
    const int64_t want = 2 * pool->num_threads();
    while (mb > 4 && ((M + mb - 1) / mb) * tn < want) mb /= 2;
  }
  const int64_t tm = (M + mb - 1) / mb;
  auto tiles = [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t i0 = (t / tn) * mb, j0 = (t % tn) * kNB;
      gemm_tile(i0, std::min(M, i0 + mb), j0, std::min(N, j0 + kNB), K, A, lda, B, ldb, C, ldc,
                beta);
    }
  };
  if (parallel)
    pool->parallel_for(tm * tn, 1, tiles);
  else
    tiles(0, tm * tn);
}

// Signed integer products must wrap (numpy does), which is undefined behaviour for signed types
// in C++: run them as the unsigned type of the same width (same bits in two's complement).
template <typename T, bool = std::is_integral_v<T>>
struct ArithOf {
  using type = T;
};
template <typename T>
struct ArithOf<T, true> {
  using type = std::make_unsigned_t<T>;
};
template <typename T>
using Arith = typename ArithOf<T>::type;

// cpuid once (RUNNX_DISABLE_AVX2 is honoured there).
bool use_avx2() {
  static const bool avx2 = cpu_features().has_avx2_fma();
  return avx2;
}

}  // namespace

const char* gemm_f32_isa() { return use_avx2() ? "avx2 6x16" : "portable"; }

void gemm_f32(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
              int64_t ldb, float* C, int64_t ldc, float beta, ThreadPool* pool) {
  // The AVX2/FMA microkernel where the CPU has it, the portable loops elsewhere.
  if (use_avx2()) return sgemm_avx2(M, N, K, A, lda, B, ldb, C, ldc, beta, pool);
  gemm_impl<float>(M, N, K, A, lda, B, ldb, C, ldc, beta, pool);
}

namespace {

float activate_scalar(float v, const GemmEpilogue& epi) {
  switch (epi.act) {
    case GemmEpilogue::Act::kNone: return v;
    case GemmEpilogue::Act::kRelu: return v > 0.f ? v : 0.f;
    case GemmEpilogue::Act::kClip: return std::min(std::max(v, epi.clip_lo), epi.clip_hi);
    case GemmEpilogue::Act::kSigmoid: return 1.f / (1.f + std::exp(-v));
    case GemmEpilogue::Act::kTanh: return std::tanh(v);
    case GemmEpilogue::Act::kGeluErf: return 0.5f * v * (1.f + std::erf(v * 0.70710678118654752f));
    case GemmEpilogue::Act::kGeluTanh:
      return 0.5f * v * (1.f + std::tanh(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    case GemmEpilogue::Act::kLeakyRelu: return v < 0.f ? epi.alpha * v : v;
    case GemmEpilogue::Act::kHardSwish: return v * std::min(std::max(epi.alpha * v + epi.shift, 0.f), 1.f);
  }
  return v;
}

}  // namespace

void gemm_epilogue_f32(const GemmEpilogue& epi, int64_t i0, int64_t i1, int64_t j0, int64_t j1, float* C,
                       int64_t ldc) {
  if (epi.trivial()) return;
  if (use_avx2()) return sgemm_avx2_epilogue_block(epi, i0, i1, j0, j1, C, ldc);
  for (int64_t i = i0; i < i1; ++i)
    for (int64_t j = j0; j < j1; ++j) {
      float v = C[i * ldc + j];
      if (epi.bias) v += epi.bias_per_row ? epi.bias[i] : epi.bias[j];
      if (epi.residual) v += epi.residual[i * epi.ldr + j];
      C[i * ldc + j] = activate_scalar(v, epi);
    }
}

PackedB pack_b_f32(int64_t K, int64_t N, const float* B, int64_t ldb, bool transposed, ThreadPool* pool) {
  using Layout = PackedB::Layout;
  PackedB p;
  p.K = K;
  p.N = N;
  p.layout = !use_avx2() ? Layout::kRowMajor : N <= kSgemmDotCols ? Layout::kDots : Layout::kPanels;
  // Kept as long as the session: made at its creation (a LoadMemoryScope), a large one is
  // huge-page backed (a fault per 2 MiB, not per 4 KiB); elsewhere it comes from malloc.
  p.data = alloc_kept_floats(p.layout == Layout::kPanels ? sgemm_avx2_packed_floats(K, N) : K * N);
  float* buf = p.data.get();
  switch (p.layout) {
    case Layout::kPanels: sgemm_avx2_pack_b(K, N, B, ldb, transposed, buf, pool); break;
    case Layout::kDots:
      if (transposed) {
        for (int64_t j = 0; j < N; ++j) std::memcpy(buf + j * K, B + j * ldb, K * sizeof(float));
      } else {
        transpose_matrix<float>(K, N, B, ldb, buf);
      }
      break;
    case Layout::kRowMajor:
      if (transposed) {
        transpose_matrix<float>(N, K, B, ldb, buf);
      } else {
        for (int64_t k = 0; k < K; ++k) std::memcpy(buf + k * N, B + k * ldb, N * sizeof(float));
      }
      break;
  }
  return p;
}

PackedA pack_a_f32(int64_t M, int64_t K, const float* A, int64_t lda) {
  PackedA p;
  p.M = M;
  p.K = K;
  p.panels = use_avx2();
  p.data = alloc_kept_floats(p.panels ? sgemm_avx2_packed_a_floats(M, K) : M * K);
  float* buf = p.data.get();
  if (p.panels) {
    sgemm_avx2_pack_a(M, K, A, lda, buf);
  } else {
    for (int64_t i = 0; i < M; ++i) std::memcpy(buf + i * K, A + i * lda, K * sizeof(float));
  }
  return p;
}

GemmEpilogue gemm_residual_copy(const GemmEpilogue& epi, int64_t M, int64_t N, const float* C, int64_t ldc,
                                std::vector<float>& keep) {
  if (!epi.residual || M <= 0 || N <= 0) return epi;
  const float* r = epi.residual;
  const bool overlap = r < C + (M - 1) * ldc + N && C < r + (M - 1) * epi.ldr + N;
  if (!overlap) return epi;
  keep.resize(static_cast<size_t>(M * N));
  for (int64_t i = 0; i < M; ++i) std::memcpy(keep.data() + i * N, r + i * epi.ldr, N * sizeof(float));
  GemmEpilogue e = epi;
  e.residual = keep.data();
  e.ldr = N;
  return e;
}

// The AVX2 entry points keep an overlapping residual apart themselves (a per-tile copy where C is
// the residual); the portable GEMM fills C over all of K before the epilogue reads it.
void gemm_f32_packed_a(const PackedA& A, int64_t N, const float* B, int64_t ldb, float* C, int64_t ldc,
                       float beta, const GemmEpilogue& epi, ThreadPool* pool) {
  if (A.panels) return sgemm_avx2_packed_a(A.M, N, A.K, A.data.get(), B, ldb, C, ldc, beta, epi, pool);
  gemm_f32_epilogue(A.M, N, A.K, A.data.get(), A.K, B, ldb, C, ldc, beta, epi, pool);
}

void gemm_f32_packed(int64_t M, const float* A, int64_t lda, const PackedB& B, float* C, int64_t ldc,
                     float beta, const GemmEpilogue& epi, ThreadPool* pool) {
  switch (B.layout) {
    case PackedB::Layout::kDots:
      return sgemm_avx2_dots(M, B.N, B.K, A, lda, B.data.get(), C, ldc, beta, epi, pool);
    case PackedB::Layout::kPanels:
      return sgemm_avx2_packed(M, B.N, B.K, A, lda, B.data.get(), C, ldc, beta, epi, pool);
    case PackedB::Layout::kRowMajor:
      return gemm_f32_epilogue(M, B.N, B.K, A, lda, B.data.get(), B.N, C, ldc, beta, epi, pool);
  }
}

void gemm_f32_epilogue(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                       int64_t ldb, float* C, int64_t ldc, float beta, const GemmEpilogue& epi_in,
                       ThreadPool* pool) {
  if (use_avx2()) return sgemm_avx2_epilogue(M, N, K, A, lda, B, ldb, C, ldc, beta, epi_in, pool);
  std::vector<float> keep;
  const GemmEpilogue epi = gemm_residual_copy(epi_in, M, N, C, ldc, keep);
  gemm_impl<float>(M, N, K, A, lda, B, ldb, C, ldc, beta, pool);
  if (epi.trivial() || M <= 0 || N <= 0) return;
  auto rows = [&](int64_t r0, int64_t r1) { gemm_epilogue_f32(epi, r0, r1, 0, N, C, ldc); };
  if (pool && M * N > 65536) pool->parallel_for(M, std::max<int64_t>(1, 16384 / N), rows);
  else rows(0, M);
}

void softmax_rows_f32(float* S, int64_t rows, int64_t n, int64_t ld, float scale, const float* mask,
                      int64_t mask_ld) {
  if (use_avx2()) return sgemm_avx2_softmax_rows(S, rows, n, ld, scale, mask, mask_ld);
  for (int64_t i = 0; i < rows; ++i) {
    float* s = S + i * ld;
    const float* m = mask ? mask + i * mask_ld : nullptr;
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < n; ++j) {
      s[j] = s[j] * scale + (m ? m[j] : 0.f);
      mx = std::max(mx, s[j]);
    }
    float sum = 0.f;
    for (int64_t j = 0; j < n; ++j) {
      s[j] = std::exp(s[j] - mx);
      sum += s[j];
    }
    for (int64_t j = 0; j < n; ++j) s[j] /= sum;
  }
}

template <typename T>
void gemm(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T* C,
          int64_t ldc, T beta, ThreadPool* pool) {
  if constexpr (std::is_same_v<T, float>) {
    gemm_f32(M, N, K, A, lda, B, ldb, C, ldc, beta, pool);
  } else {
    using U = Arith<T>;
    gemm_impl<U>(M, N, K, reinterpret_cast<const U*>(A), lda, reinterpret_cast<const U*>(B), ldb,
                 reinterpret_cast<U*>(C), ldc, static_cast<U>(beta), pool);
  }
}

template <typename T>
void transpose_matrix(int64_t rows, int64_t cols, const T* src, int64_t ld, T* dst) {
  constexpr int64_t kB = 32;  // 32x32 blocks: both sides' lines stay in L1
  for (int64_t r0 = 0; r0 < rows; r0 += kB)
    for (int64_t c0 = 0; c0 < cols; c0 += kB) {
      const int64_t r1 = std::min(rows, r0 + kB), c1 = std::min(cols, c0 + kB);
      for (int64_t c = c0; c < c1; ++c)
        for (int64_t r = r0; r < r1; ++r) dst[c * rows + r] = src[r * ld + c];
    }
}

#define RUNNX_GEMM_TYPE(T)                                                                   \
  template void gemm<T>(int64_t, int64_t, int64_t, const T*, int64_t, const T*, int64_t, T*, \
                        int64_t, T, ThreadPool*);                                            \
  template void transpose_matrix<T>(int64_t, int64_t, const T*, int64_t, T*);
RUNNX_GEMM_TYPE(float)
RUNNX_GEMM_TYPE(double)
RUNNX_GEMM_TYPE(int32_t)
RUNNX_GEMM_TYPE(int64_t)
RUNNX_GEMM_TYPE(uint32_t)
RUNNX_GEMM_TYPE(uint64_t)
#undef RUNNX_GEMM_TYPE

}  // namespace runnx
