// Pooling kernel (pool.h): a thread per output element walking its window. In NHWC neighbouring
// threads are neighbouring channels, so every tap is a coalesced read.
#include "common/status.h"
#include "cuda/kernels/kernel_util.cuh"
#include "cuda/kernels/simple_mode.h"
#include "cuda/kernels/pool.h"

namespace runnx::cuda {
namespace {

constexpr int kThreads = 256;

// Taps of one window axis that land in [lo, hi).
__device__ __forceinline__ int64_t taps_within(int64_t start, int64_t k, int64_t dilation, int64_t lo, int64_t hi) {
  int64_t count = 0;
  for (int64_t i = 0; i < k; ++i) {
    const int64_t pos = start + i * dilation;
    count += pos >= lo && pos < hi;
  }
  return count;
}

template <typename T>
__global__ void pool2d_kernel(PoolKind kind, Pool2dParams p, const T* x, T* y, int64_t total, bool fits32) {
  const bool nhwc = p.layout == Layout::kNHWC;
  for (int64_t t = global_thread(); t < total; t += grid_threads()) {
    const ImageCoord o = image_coord(t, nhwc, p.c, p.out_h, p.out_w, fits32);
    const int64_t h0 = o.h * p.stride_h - p.pad_top, w0 = o.w * p.stride_w - p.pad_left;
    const PlaneAddr in = plane_addr(nhwc, o.n, o.c, p.c, p.h, p.w);
    const Window2d win{h0, w0, p.kernel_h, p.kernel_w, p.dilation_h, p.dilation_w, p.h, p.w};
    float acc = kind == PoolKind::kMax ? -INFINITY : 0.f;
    for_each_tap(win, in, [&](int64_t off, int64_t) {
      const float v = to_float(x[off]);
      acc = kind == PoolKind::kMax ? ((v > acc || v != v) ? v : acc) : acc + v;
    });
    if (kind == PoolKind::kAverage) {
      const bool inc = p.count_include_pad;
      const int64_t count =
          taps_within(h0, p.kernel_h, p.dilation_h, inc ? -p.pad_top : 0, inc ? p.h + p.pad_bottom : p.h) *
          taps_within(w0, p.kernel_w, p.dilation_w, inc ? -p.pad_left : 0, inc ? p.w + p.pad_right : p.w);
      acc = count > 0 ? acc / static_cast<float>(count) : NAN;
    }
    y[t] = from_float<T>(acc);
  }
}

}  // namespace

void launch_pool2d(PoolKind kind, DType dtype, const Pool2dParams& p, const void* x, void* y, cudaStream_t stream) {
  RUNNX_CHECK(p.kernel_h > 0 && p.kernel_w > 0 && p.stride_h > 0 && p.stride_w > 0 && p.dilation_h > 0 &&
                  p.dilation_w > 0,
              kInvalidArgument, "CUDA pool: kernel, strides and dilations must be positive");
  const int64_t total = p.n * p.c * p.out_h * p.out_w;
  if (total <= 0) return;
  const unsigned grid = grid_for(total, kThreads);
  const bool fits32 = use_32bit_index(total);
  switch (dtype) {
    case DType::kF32:
      pool2d_kernel<<<grid, kThreads, 0, stream>>>(kind, p, static_cast<const float*>(x), static_cast<float*>(y), total,
                                                    fits32);
      break;
    case DType::kF16:
      pool2d_kernel<<<grid, kThreads, 0, stream>>>(kind, p, static_cast<const __half*>(x), static_cast<__half*>(y),
                                                    total, fits32);
      break;
    default: fail(ErrorKind::kInvalidArgument, "CUDA pool: unsupported dtype ", dtype_name(dtype));
  }
}

}  // namespace runnx::cuda
