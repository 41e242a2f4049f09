// 2-D convolution as an implicit GEMM over NHWC tensors (group = 1), epilogue fused.
//
//   y[n][p][q][k] = epilogue( sum_{r,s,c} x[n][p*stride_h - pad_h + r*dil_h][q*stride_w - pad_w + s*dil_w][c]
//                                          * w[k][r][s][c] )       (x outside the image reads as 0)
//
// Layout (row-major, contiguous, device pointers):
//   x  NHWC  [N][H][W][C]
//   w  KRSC  [K][R][S][C]  (ONNX's [K][C][R][S] permuted once at load: w_krsc[k][r][s][c] = w_onnx[k][c][r][s])
//   y  NHWC  [N][P][Q][K]  (P, Q: the output size the caller computed, pads may be asymmetric; only
//                           the top/left pads enter the indexing)
// As a GEMM: M = N*P*Q rows (output pixels), N = K columns (channels), K = R*S*C; so the epilogue's
// bias is per output channel [K] and a residual is an NHWC tensor like y with epi.ldr = K.
// dtypes: launch_conv_f32 float; launch_conv_f16 __half x, w, y (and bias, residual), fp32 accumulate.
// fp16 uses tensor cores when C % 8 == 0 and x, w are 16-byte aligned (else, or with
// RUNNX_CUDA_SIMPLE=1, the SIMT kernel). Depthwise / grouped convolutions are not handled here.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "cuda/kernels/epilogue.h"

namespace runnx::cuda {

struct ConvArgs {
  int64_t N = 0, H = 0, W = 0, C = 0;
  int64_t K = 0, R = 0, S = 0;
  int64_t P = 0, Q = 0;
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dil_h = 1, dil_w = 1;
  const void* x = nullptr;
  const void* w = nullptr;
  void* y = nullptr;
  Epilogue epi;
  int32_t force_k_splits = 0;  // 0: the launcher decides; tests force split-K with a value > 1
};

void launch_conv_f32(const ConvArgs& args, cudaStream_t stream);
// workspace: as launch_gemm_f16 (split-K for deep layers at batch 1), may be null.
void launch_conv_f16(const ConvArgs& args, cudaStream_t stream, void* workspace = nullptr, size_t workspace_bytes = 0);
size_t conv_f16_workspace_bytes(const ConvArgs& args);
bool conv_f16_uses_tensor_cores(const ConvArgs& args);

}  // namespace runnx::cuda
