// LayerNormalization over the last `cols` elements of each row of a contiguous row-major
// [rows, cols] tensor (ONNX axis = rank - k flattens to cols = product of the last k dims):
//   s = x (+ residual);  y = (s - mean(s)) / sqrt(var(s) + epsilon) * scale + bias
// x, residual, scale, bias, y, sum_out: all `dtype` (kF32 or kF16); statistics in fp32.
// scale and bias have `cols` elements (bias may be null); residual may be null; sum_out, when not
// null, receives s (the fused residual add's result, for a later skip connection);
// mean and inv_std (float, `rows` each; ONNX's optional Mean / InvStdDev outputs) may be null.
// y may alias x or residual.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "common/dtype.h"

namespace runnx::cuda {

struct LayerNormArgs {
  const void* x = nullptr;
  const void* residual = nullptr;
  const void* scale = nullptr;
  const void* bias = nullptr;
  void* y = nullptr;
  void* sum_out = nullptr;
  float* mean = nullptr;
  float* inv_std = nullptr;
  int64_t rows = 0, cols = 0;
  float epsilon = 1e-5f;
};

void launch_layernorm(DType dtype, const LayerNormArgs& args, cudaStream_t stream);

}  // namespace runnx::cuda
