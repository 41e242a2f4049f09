// Depthwise 2-D convolution (group == in channels): output channel oc = ic * multiplier + m reads
// only input channel ic. x: [n, c, h, w] (NCHW) or [n, h, w, c] (NHWC); y: the same layout with
// c * multiplier channels and out_h x out_w pixels (computed by the caller); weights in ONNX's
// layout [c * multiplier, 1, kernel_h, kernel_w] for both layouts. Tap (kh, kw) of output
// (oh, ow) reads row oh*stride_h - pad_top + kh*dilation_h (likewise columns); taps outside the
// image read zero. fp32 or fp16 (fp32 accumulation).
// Epilogue (epilogue.h) in fp32 before the store: y = act(alpha * acc + bias[oc] + beta * residual),
// where bias has one value per output channel and residual has y's shape and layout (its ldr and
// residual_batch_stride fields are ignored).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "common/dtype.h"
#include "cuda/kernels/epilogue.h"
#include "cuda/kernels/layout.h"

namespace runnx::cuda {

struct DepthwiseParams {
  Layout layout = Layout::kNHWC;
  int64_t n = 0, c = 0, h = 0, w = 0;  // input
  int64_t multiplier = 1;              // output channels per input channel
  int64_t out_h = 0, out_w = 0;
  int64_t kernel_h = 3, kernel_w = 3;
  int64_t stride_h = 1, stride_w = 1;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t pad_top = 0, pad_left = 0;
};

void launch_depthwise_conv2d(DType dtype, const DepthwiseParams& p, const void* x, const void* weight, void* y,
                             const Epilogue& epilogue, cudaStream_t stream);

}  // namespace runnx::cuda
