// Depthwise convolution kernel (depthwise.h): a thread per output element walking its window.
// In NHWC neighbouring threads are neighbouring channels, so input reads are coalesced; the
// weights (a few KB) stay in L1/L2.
#include "common/status.h"
#include "cuda/kernels/depthwise.h"
#include "cuda/kernels/kernel_util.cuh"

namespace runnx::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void depthwise_kernel(DepthwiseParams p, const T* x, const T* w, T* y, Epilogue e, int64_t total) {
  const bool nhwc = p.layout == Layout::kNHWC;
  const int64_t oc_count = p.c * p.multiplier;
  for (int64_t t = global_thread(); t < total; t += grid_threads()) {
    int64_t n, oc, oh, ow, rest = t;
    if (nhwc) {
      oc = rest % oc_count; rest /= oc_count;
      ow = rest % p.out_w; rest /= p.out_w;
      oh = rest % p.out_h; n = rest / p.out_h;
    } else {
      ow = rest % p.out_w; rest /= p.out_w;
      oh = rest % p.out_h; rest /= p.out_h;
      oc = rest % oc_count; n = rest / oc_count;
    }
    const int64_t ic = oc / p.multiplier;
    // Input element (ih, iw) of this image and channel is at base + ih * row + iw * col.
    const int64_t base = nhwc ? n * p.h * p.w * p.c + ic : (n * p.c + ic) * p.h * p.w;
    const int64_t row = nhwc ? p.w * p.c : p.w, col = nhwc ? p.c : 1;
    const T* wk = w + oc * p.kernel_h * p.kernel_w;
    const int64_t h0 = oh * p.stride_h - p.pad_top, w0 = ow * p.stride_w - p.pad_left;
    float acc = 0.f;
    for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
      const int64_t ih = h0 + kh * p.dilation_h;
      if (ih < 0 || ih >= p.h) continue;
      for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
        const int64_t iw = w0 + kw * p.dilation_w;
        if (iw < 0 || iw >= p.w) continue;
        acc += to_float(x[base + ih * row + iw * col]) * to_float(wk[kh * p.kernel_w + kw]);
      }
    }
    float v = e.alpha * acc;
    if (e.bias) v += to_float(static_cast<const T*>(e.bias)[oc]);
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
  switch (dtype) {
    case DType::kF32:
      depthwise_kernel<<<grid, kThreads, 0, stream>>>(p, static_cast<const float*>(x), static_cast<const float*>(weight),
                                                       static_cast<float*>(y), epilogue, total);
      break;
    case DType::kF16:
      depthwise_kernel<<<grid, kThreads, 0, stream>>>(p, static_cast<const __half*>(x),
                                                       static_cast<const __half*>(weight), static_cast<__half*>(y),
                                                       epilogue, total);
      break;
    default: fail(ErrorKind::kInvalidArgument, "CUDA depthwise conv: unsupported dtype ", dtype_name(dtype));
  }
}

}  // namespace runnx::cuda
