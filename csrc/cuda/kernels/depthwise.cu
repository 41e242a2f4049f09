// Depthwise convolution kernel (depthwise.h): a thread per output element walking its window.
// In NHWC neighbouring threads are neighbouring channels, so input reads are coalesced; the
// weights (a few KB) stay in L1/L2.
#include "common/status.h"
#include "cuda/kernels/depthwise.h"
#include "cuda/kernels/kernel_util.cuh"
#include "cuda/kernels/simple_mode.h"

namespace runnx::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void depthwise_kernel(DepthwiseParams p, const T* x, const T* w, T* y, Epilogue e, int64_t total,
                                 bool fits32) {
  const bool nhwc = p.layout == Layout::kNHWC;
  const int64_t oc_count = p.c * p.multiplier;
  for (int64_t t = global_thread(); t < total; t += grid_threads()) {
    const ImageCoord o = image_coord(t, nhwc, oc_count, p.out_h, p.out_w, fits32);  // o.c: the output channel
    const PlaneAddr in = plane_addr(nhwc, o.n, o.c / p.multiplier, p.c, p.h, p.w);
    const T* wk = w + o.c * p.kernel_h * p.kernel_w;
    const int64_t h0 = o.h * p.stride_h - p.pad_top, w0 = o.w * p.stride_w - p.pad_left;
    const Window2d win{h0, w0, p.kernel_h, p.kernel_w, p.dilation_h, p.dilation_w, p.h, p.w};
    float acc = 0.f;
    for_each_tap(win, in, [&](int64_t off, int64_t k) { acc += to_float(x[off]) * to_float(wk[k]); });
    float v = e.alpha * acc;
    if (e.bias) v += to_float(static_cast<const T*>(e.bias)[o.c]);
    if (e.residual) v += e.beta * to_float(static_cast<const T*>(e.residual)[t]);  // same shape and layout as y
    y[t] = from_float<T>(apply_activation(v, e.act, e.p0, e.p1));
  }
}

}  // namespace

void launch_depthwise_conv2d(DType dtype, const DepthwiseParams& p, const void* x, const void* weight, void* y,
                             const Epilogue& epilogue, cudaStream_t stream) {
  RUNNX_CHECK(p.kernel_h > 0 && p.kernel_w > 0 && p.stride_h > 0 && p.stride_w > 0 && p.dilation_h > 0 &&
                  p.dilation_w > 0 && p.multiplier > 0,
              kInvalidArgument, "CUDA depthwise conv: kernel, strides, dilations and multiplier must be positive");
  const int64_t total = p.n * p.c * p.multiplier * p.out_h * p.out_w;
  if (total <= 0) return;
  const unsigned grid = grid_for(total, kThreads);
  const bool fits32 = use_32bit_index(total);
  switch (dtype) {
    case DType::kF32:
      depthwise_kernel<<<grid, kThreads, 0, stream>>>(p, static_cast<const float*>(x),
                                                       static_cast<const float*>(weight), static_cast<float*>(y),
                                                       epilogue, total, fits32);
      break;
    case DType::kF16:
      depthwise_kernel<<<grid, kThreads, 0, stream>>>(p, static_cast<const __half*>(x),
                                                       static_cast<const __half*>(weight), static_cast<__half*>(y),
                                                       epilogue, total, fits32);
      break;
    default: fail(ErrorKind::kInvalidArgument, "CUDA depthwise conv: unsupported dtype ", dtype_name(dtype));
  }
}

}  // namespace runnx::cuda
