// int8 GEMM launcher (tensor cores: mma.sync m16n8k32 s8*s8 -> s32) with the quantized output
// stage of ONNX MatMulInteger / QLinearMatMul (and MatMulInteger followed by DequantizeLinear).
//
//   acc[b][m][n] = sum_k (A[b][m][k] - a_zero) * (B[b][k][n] - b_zero[n])       (exact, int32)
//   out = kInt32:           acc
//         kFloat:           act(float(acc) * (a_scale * b_scale[n]) + bias[n])
//         kInt8 / kUInt8:   saturate(rint(float(acc) * (a_scale * b_scale[n] / y_scale)) + y_zero)
// All float math in fp32 in that order (rint = round half to even, as ONNX's reference).
//
// Layout (elements = bytes for int8; device pointers):
//   A[m][k]  at A + off_a(b) + m*lda + k               int8, or uint8 when a_unsigned
//   B[k][n]  at B + off_b(b) + n*ldb + k               given TRANSPOSED as B^T [N][K] (K contiguous):
//                                                       cudart transposes constant weights once at load
//   C[m][n]  at C + off_c(b) + m*ldc + n               int32 / float / int8 / uint8 per `out`
// Batch offsets as in gemm.h (b = o*batch_inner + i, off_x(b) = o*x_outer + i*x_inner).
// Quantization parameters are device pointers (so DynamicQuantizeLinear outputs can be used as
// they are): a_zero, y_zero one value of A's / the output's type; b_zero of B's type, b_scale
// float, each with a stride (0: per tensor, 1: per output column n). Null zero point = 0,
// null bias = none. The launcher needs `gemm_int8_workspace_bytes` of scratch (4-byte aligned)
// for the row sums the zero-point correction uses.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "cuda/kernels/epilogue.h"
#include "cuda/kernels/gemm.h"

namespace runnx::cuda {

enum class Int8Output : int32_t { kInt32, kFloat, kInt8, kUInt8 };

// Sizes, operands and batch strides as gemm.h's GemmOperands, with B given as B^T [N][K].
struct GemmInt8Args : GemmOperands {
  bool a_unsigned = false;
  bool b_unsigned = false;
  Int8Output out = Int8Output::kInt32;
  const void* a_zero = nullptr;
  const void* b_zero = nullptr;
  int64_t b_zero_stride = 0;
  const float* a_scale = nullptr;
  const float* b_scale = nullptr;
  int64_t b_scale_stride = 0;
  const float* y_scale = nullptr;
  const void* y_zero = nullptr;
  const float* bias = nullptr;  // kFloat only: [N]
  Activation act = Activation::kNone;  // kFloat only
  float p0 = 0.f, p1 = 0.f;
};

size_t gemm_int8_workspace_bytes(const GemmInt8Args& args);

// Tensor cores when lda, ldb and the batch strides are multiples of 16 and A, B 16-byte aligned
// (and RUNNX_CUDA_SIMPLE is unset); otherwise one thread per output with an int32 loop (exact too).
void launch_gemm_int8(const GemmInt8Args& args, void* workspace, cudaStream_t stream);
bool gemm_int8_uses_tensor_cores(const GemmInt8Args& args);

}  // namespace runnx::cuda
