// AVX2/FMA single-precision GEMM (compiled in csrc/kernels/cpu/avx2/ with -mavx2 -mfma; call only
// when cpu_features().has_avx2_fma()). Same contracts as the entry points in gemm.h, a residual
// that overlaps C included (each entry point copies only what its stores could overwrite first).
#pragma once
#include <cstdint>

#include "common/thread_pool.h"
#include "kernels/cpu/gemm.h"

namespace runnx {

void sgemm_avx2(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                int64_t ldb, float* C, int64_t ldc, float beta, ThreadPool* pool);

void sgemm_avx2_epilogue(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                         int64_t ldb, float* C, int64_t ldc, float beta, const GemmEpilogue& epi,
                         ThreadPool* pool);

// Floats a packed B of K x N takes (16-column panels, K-blocked).
int64_t sgemm_avx2_packed_floats(int64_t K, int64_t N);
// Packs B (or B given transposed, N x K) into `out` (sgemm_avx2_packed_floats floats).
void sgemm_avx2_pack_b(int64_t K, int64_t N, const float* B, int64_t ldb, bool transposed, float* out,
                       ThreadPool* pool);
void sgemm_avx2_packed(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* Bp,
                       float* C, int64_t ldc, float beta, const GemmEpilogue& epi, ThreadPool* pool);

// Columns up to which a constant B is kept as B^T for sgemm_avx2_dots.
constexpr int64_t kSgemmDotCols = 4;
// C = epilogue(A * B + beta*C) for N <= kSgemmDotCols, B given as Bt = B^T (N rows of K): one dot
// product along K per element. Each element's residual is read before its only store.
void sgemm_avx2_dots(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* Bt, float* C,
                     int64_t ldc, float beta, const GemmEpilogue& epi, ThreadPool* pool);

// Floats a packed A of M x K takes (6-row micro-panels, K-blocked), and the packing itself.
// Whether the packed-A tiles run the 12x16 AVX-512F kernel: the CPU has AVX-512F and
// RUNNX_DISABLE_AVX512 is unset (read once).
bool sgemm_avx2_uses_avx512();

// Floats of the calling thread's buffer for B packed on the fly (grown as needed, then kept).
int64_t sgemm_avx2_pack_scratch_floats();

int64_t sgemm_avx2_packed_a_floats(int64_t M, int64_t K);
void sgemm_avx2_pack_a(int64_t M, int64_t K, const float* A, int64_t lda, float* out);
// C = epilogue(A*B + beta*C) with A packed by sgemm_avx2_pack_a and B (K x N) packed on the fly.
void sgemm_avx2_packed_a(int64_t M, int64_t N, int64_t K, const float* Ap, const float* B, int64_t ldb, float* C,
                         int64_t ldc, float beta, const GemmEpilogue& epi, ThreadPool* pool);

void sgemm_avx2_softmax_rows(float* S, int64_t rows, int64_t n, int64_t ld, float scale, const float* mask,
                             int64_t mask_ld);

// The epilogue over a block of C, vectorised (exp/erf/tanh within 2e-7 absolute of float64).
void sgemm_avx2_epilogue_block(const GemmEpilogue& epi, int64_t i0, int64_t i1, int64_t j0, int64_t j1,
                               float* C, int64_t ldc);

}  // namespace runnx

namespace runnx {
// Register-only FMA chains on every pool thread for `seconds`: the measured fp32 peak, GFLOP/s.
double sgemm_avx2_fma_peak_gflops(ThreadPool& pool, double seconds);
}  // namespace runnx
