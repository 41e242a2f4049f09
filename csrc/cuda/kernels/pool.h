// 2-D MaxPool / AveragePool over NCHW or NHWC images (contiguous, the same layout in and out).
// The caller computes out_h/out_w (ceil_mode only changes them). Window tap (kh, kw) of output
// (oh, ow) reads row oh*stride_h - pad_top + kh*dilation_h, and likewise for columns; taps
// outside the image are skipped. Average divisor: the taps inside the image, or with
// count_include_pad the taps inside the padded image [-pad_top, h + pad_bottom) (as onnxruntime
// and the CPU kernel; with ceil_mode a window may reach past the padding). A window with no tap
// gives NaN (average) or -inf (max). fp32 or fp16 (fp32 sums).
// GlobalAveragePool / GlobalMaxPool: launch_reduce (reduce.h) over the spatial axes.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "common/dtype.h"
#include "cuda/kernels/layout.h"

namespace runnx::cuda {

enum class PoolKind : int32_t { kMax, kAverage };

struct Pool2dParams {
  Layout layout = Layout::kNCHW;
  int64_t n = 0, c = 0, h = 0, w = 0;
  int64_t out_h = 0, out_w = 0;
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  bool count_include_pad = false;
};

void launch_pool2d(PoolKind kind, DType dtype, const Pool2dParams& p, const void* x, void* y, cudaStream_t stream);

}  // namespace runnx::cuda
