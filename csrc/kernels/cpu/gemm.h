// The one matrix-multiply entry point that MatMul, Gemm, Einsum, Conv and ConvTranspose call.
//
//   C[M,N] = A[M,K] * B[K,N] + beta * C[M,N]
//
// All three matrices are row-major with leading dimensions lda/ldb/ldc (in elements). beta == 0
// means C is write-only (its old contents, NaN included, are ignored). K == 0 gives beta * C.
// `pool` may be null (run on the calling thread); with a pool the work is split into tiles of C,
// so callers that already run in parallel pass null.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "common/thread_pool.h"

namespace runnx {

// Which float32 GEMM this CPU runs: "avx2 6x16" or "portable" (for `runnx inspect`).
const char* gemm_f32_isa();

// float32: the entry point later ISA-specific microkernels plug into (chosen inside by cpuid).
void gemm_f32(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
              int64_t ldb, float* C, int64_t ldc, float beta, ThreadPool* pool);

// What happens to each element of C after the product, while its tile is still in cache:
//   C = act(acc + beta * C_old + bias + residual)
// with acc = A*B. bias is one value per column (length N), or per row (length M) when
// bias_per_row (NCHW convolution: one per output channel); residual is an [M, N] matrix with
// leading dimension ldr. It may share C's buffer (an op whose output takes over the residual's):
// C receives partial sums before the epilogue runs, so an overlapping residual is copied first.
struct GemmEpilogue {
  enum class Act : uint8_t { kNone, kRelu, kClip, kSigmoid, kTanh, kGeluErf, kGeluTanh, kLeakyRelu, kHardSwish };
  const float* bias = nullptr;
  bool bias_per_row = false;
  const float* residual = nullptr;
  int64_t ldr = 0;
  Act act = Act::kNone;
  float clip_lo = 0, clip_hi = 0;  // kClip bounds
  // kLeakyRelu: v < 0 ? alpha * v : v;  kHardSwish: v * clamp(alpha * v + shift, 0, 1)
  float alpha = 0, shift = 0;
  bool trivial() const { return !bias && !residual && act == Act::kNone; }
};

// epi with a residual that overlaps C[M, N] (ldc) copied into `keep` as it is now (residual and
// ldr point there); epi itself when they do not overlap. For the drivers, where C's stores could
// reach a residual element before the epilogue reads it.
GemmEpilogue gemm_residual_copy(const GemmEpilogue& epi, int64_t M, int64_t N, const float* C, int64_t ldc,
                                std::vector<float>& keep);

// Applies `epi` to rows [i0, i1) and columns [j0, j1) of C (already holding acc + beta*C_old).
void gemm_epilogue_f32(const GemmEpilogue& epi, int64_t i0, int64_t i1, int64_t j0, int64_t j1, float* C,
                       int64_t ldc);

// B prepared once (constant weights) in the layout the microkernel streams: K-blocks of
// 16-column panels under AVX2 (B^T, one dot product per element, when N <= 4), plain row-major
// elsewhere. Cheap to copy (shared buffer).
struct PackedB {
  enum class Layout : uint8_t {
    kRowMajor,  // K x N as given (the portable GEMM)
    kPanels,    // AVX2: K-blocks of 16-column panels
    kDots,      // AVX2, N <= 4: B^T, N rows of K
  };
  int64_t K = 0, N = 0;
  Layout layout = Layout::kRowMajor;
  std::shared_ptr<float> data;
  bool empty() const { return !data; }
};

// Packs B (K x N, row-major with leading dimension ldb), or, when `transposed`, B given as its
// transpose (N x K, leading dimension ldb: a Gemm transB / Linear weight). On `pool` when given.
PackedB pack_b_f32(int64_t K, int64_t N, const float* B, int64_t ldb, bool transposed,
                   ThreadPool* pool = nullptr);

// C[M,N] = epilogue(A[M,K] * B + beta * C) with a prepacked B; split over M and N across `pool`
// (batch-1 GEMV, M = 1, splits N).
void gemm_f32_packed(int64_t M, const float* A, int64_t lda, const PackedB& B, float* C, int64_t ldc,
                     float beta, const GemmEpilogue& epi, ThreadPool* pool);

// gemm_f32 with an epilogue (B packed on the fly).
void gemm_f32_epilogue(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                       int64_t ldb, float* C, int64_t ldc, float beta, const GemmEpilogue& epi,
                       ThreadPool* pool);

// A prepared once (constant weights on the left: a convolution's W[Cout, K] against X[K, HW]).
// Under AVX2, 6-row micro-panels K-blocked like B's panels; plain row-major elsewhere.
struct PackedA {
  int64_t M = 0, K = 0;
  bool panels = false;
  std::shared_ptr<float> data;
  bool empty() const { return !data; }
};

// Packs A (M x K, row-major with leading dimension lda).
PackedA pack_a_f32(int64_t M, int64_t K, const float* A, int64_t lda);

// C[M,N] = epilogue(A * B[K,N] + beta * C) with a prepacked A; B (leading dimension ldb) is packed
// on the fly, once per call. The epilogue is applied in registers as each tile is stored.
void gemm_f32_packed_a(const PackedA& A, int64_t N, const float* B, int64_t ldb, float* C, int64_t ldc,
                       float beta, const GemmEpilogue& epi, ThreadPool* pool);

// Row-wise softmax of scale * S + mask for `rows` rows of n columns, in place (S rows `ld` apart;
// mask rows `mask_ld` apart, 0 to use one row for all, nullptr for none). Attention's inner step.
void softmax_rows_f32(float* S, int64_t rows, int64_t n, int64_t ld, float scale, const float* mask,
                      int64_t mask_ld);

// Any element type the ops need (float, double, int32_t, int64_t, uint32_t, uint64_t);
// gemm<float> forwards to gemm_f32. Integer products wrap like numpy's.
template <typename T>
void gemm(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T* C,
          int64_t ldc, T beta, ThreadPool* pool);

// dst[cols, rows] = transpose(src[rows, cols]); src rows are `ld` elements apart, dst is dense.
// Used to bring transposed operands (Gemm transA/transB, Einsum, ConvTranspose weights) into the
// row-major form gemm streams.
template <typename T>
void transpose_matrix(int64_t rows, int64_t cols, const T* src, int64_t ld, T* dst);

}  // namespace runnx
