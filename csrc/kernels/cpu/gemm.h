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

#include "common/thread_pool.h"

namespace runnx {

// float32: the entry point later ISA-specific microkernels plug into (chosen inside by cpuid).
void gemm_f32(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
              int64_t ldb, float* C, int64_t ldc, float beta, ThreadPool* pool);

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
