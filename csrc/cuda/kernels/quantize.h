// Linear quantization on the device (ONNX QuantizeLinear / DequantizeLinear, per tensor or per
// axis) and the requantize step of an int32 product with an int32 bias (com.runnx QGemm).
// Tensors are contiguous device buffers; scales and zero points are device pointers too (so a
// computed scale works as a constant one). Per axis: x viewed as [outer, axis_len, inner] and
// element i takes parameter (i / inner) % axis_len; per tensor: axis_len = 1. A null zero point
// is 0. Rounding is half to even (rintf), as the CPU kernels and onnxruntime; n <= 0 launches
// nothing. Launchers never synchronise; the caller checks cudaGetLastError().
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "common/dtype.h"

namespace runnx::cuda {

// y = saturate(rint(x / scale) + zero); x float32, y (and zero) kI8 or kU8. NaN gives the minimum.
void launch_quantize_linear(const float* x, const float* scale, const void* zero, DType qtype, void* y, int64_t n,
                            int64_t axis_len, int64_t inner, cudaStream_t stream);

// y = (x - zero) * scale; x (and zero) kI8, kU8 or kI32, y float32.
void launch_dequantize_linear(const void* x, DType qtype, const float* scale, const void* zero, float* y, int64_t n,
                              int64_t axis_len, int64_t inner, cudaStream_t stream);

// y[r][c] = saturate(rint(float(acc[r][c] + bias[c * bias_stride]) * (a_scale * b_scale[c * b_scale_stride] /
//           y_scale)) + y_zero), acc int32 [rows][cols] row-major, bias int32 (null: none), y of
// `qtype` (kI8 / kU8) [rows][cols]. The float math is the int8 GEMM launcher's, in that order.
struct RequantizeArgs {
  const int32_t* acc = nullptr;
  const int32_t* bias = nullptr;
  int64_t bias_stride = 0;
  const float* a_scale = nullptr;
  const float* b_scale = nullptr;
  int64_t b_scale_stride = 0;
  const float* y_scale = nullptr;
  const void* y_zero = nullptr;
  DType qtype = DType::kU8;
  void* y = nullptr;
  int64_t rows = 0, cols = 0;
};
void launch_requantize(const RequantizeArgs& args, cudaStream_t stream);

// The A operand of a 2-D int8 convolution as one implicit GEMM over a batch of NCHW images:
//   patches[n * P + p][t * c + ch] = x[n][ch][ih][iw],  p = oh * out_w + ow, t = kh * kernel_w + kw,
//   ih = oh * stride_h - pad_top + kh * dilation_h (iw likewise); taps in the padding hold *zero
// (a device byte, x's zero point; null: 0). Bytes: int8 and uint8 alike. P = out_h * out_w.
struct PatchArgs {
  const void* x = nullptr;
  const void* zero = nullptr;
  void* patches = nullptr;
  int64_t n = 0, c = 0, h = 0, w = 0, out_h = 0, out_w = 0, kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1, pad_top = 0, pad_left = 0;
};
void launch_int8_patches(const PatchArgs& args, cudaStream_t stream);

}  // namespace runnx::cuda
