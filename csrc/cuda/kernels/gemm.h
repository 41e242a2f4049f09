// GEMM launchers (fp32 and fp16) with the fused epilogue, batched with strides.
//
//   C[b][m][n] = epilogue( sum_k A[b][m][k] * B[b][k][n] )      for m < M, n < N, b < batch
//
// Layout (all row-major, leading dimensions and strides in ELEMENTS, device pointers):
//   A[m][k]  at A + off_a(b) + m*lda + k
//   B[k][n]  at B + off_b(b) + k*ldb + n     (trans_b = false: B given as [K][N])
//   B[k][n]  at B + off_b(b) + n*ldb + k     (trans_b = true:  B given as B^T [N][K], e.g. a Linear
//                                              weight or the K of attention)
//   C[m][n]  at C + off_c(b) + m*ldc + n
// Batch: b runs over batch_outer x batch_inner (b = o*batch_inner + i) and off_x(b) = o*x_outer + i*x_inner,
// so MatMul broadcasting ([2,1,M,K] x [1,3,K,N]) and [batch, heads] attention need no copies; a
// stride of 0 broadcasts that operand. The epilogue's residual uses b as its batch index.
// dtypes: launch_gemm_f32: float everything. launch_gemm_f16: A, B __half; C __half or float
// (c_is_f32); accumulation in fp32; the epilogue's bias/residual have C's dtype.
// Size 0 (M, N or batch) launches nothing; K = 0 gives C = epilogue(0).
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "cuda/kernels/epilogue.h"

namespace runnx::cuda {

// Sizes, operands and batch strides: what every GEMM launcher (this file, gemm_int8.h) shares.
struct GemmOperands {
  int64_t M = 0, N = 0, K = 0;
  const void* A = nullptr;
  int64_t lda = 0;
  const void* B = nullptr;
  int64_t ldb = 0;
  void* C = nullptr;
  int64_t ldc = 0;
  int64_t batch_outer = 1, batch_inner = 1;
  int64_t a_outer = 0, a_inner = 0, b_outer = 0, b_inner = 0, c_outer = 0, c_inner = 0;
};

struct GemmArgs : GemmOperands {
  bool trans_b = false;
  Epilogue epi;
  int32_t force_k_splits = 0;  // 0: the launcher decides; tests force split-K with a value > 1
};

// fp32 SIMT, shared-memory tiled (64x64x16 per block): correct for any shape and alignment.
void launch_gemm_f32(const GemmArgs& args, cudaStream_t stream);

// fp16 in, fp32 accumulate. Tensor cores (mma.sync m16n8k16, ldmatrix, 4-stage cp.async pipeline,
// 128x128x32 block tile) when lda, ldb and every batch stride are multiples of 8 and A, B are
// 16-byte aligned; otherwise, or when RUNNX_CUDA_SIMPLE=1 (simple_mode.h), the SIMT kernel (same results up to
// summation order). Split-K: when the output has too few 128x128 tiles to fill the GPU (batch 1,
// long K; e.g. batch-1 BERT layers) and `workspace` holds gemm_f16_workspace_bytes(args) bytes
// (fp32 partial sums, 4-byte aligned), K is split across blocks and a second kernel adds the
// parts and applies the epilogue; without a workspace it runs unsplit (correct, slower).
void launch_gemm_f16(const GemmArgs& args, bool c_is_f32, cudaStream_t stream, void* workspace = nullptr,
                     size_t workspace_bytes = 0);
size_t gemm_f16_workspace_bytes(const GemmArgs& args);

// True when launch_gemm_f16 would use tensor cores for these arguments (for tests and `inspect`).
bool gemm_f16_uses_tensor_cores(const GemmArgs& args);

// The SIMT kernel for fp16 inputs, whatever the alignment (what the fallback runs).
void launch_gemm_f16_simt(const GemmArgs& args, bool c_is_f32, cudaStream_t stream);

}  // namespace runnx::cuda
