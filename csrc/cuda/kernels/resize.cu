// Resize kernel (resize.h): a thread per output element; its two source coordinates are
// recomputed per element (in double, to match the CPU kernel's ties; Resize is memory-bound).
#include "common/status.h"
#include "cuda/kernels/kernel_util.cuh"
#include "cuda/kernels/simple_mode.h"
#include "cuda/kernels/resize.h"

namespace runnx::cuda {
namespace {

constexpr int kThreads = 256;

// Source coordinate of output position j along an axis of `in` pixels resized by `scale` to `out`.
__device__ __forceinline__ double source_coord(ResizeCoord coord, int64_t j, int64_t in, int64_t out, double scale) {
  const double y = static_cast<double>(j), n = static_cast<double>(in);
  const double out_w = scale * n;  // ONNX's length_resized
  switch (coord) {
    case ResizeCoord::kHalfPixel: return (y + 0.5) / scale - 0.5;
    case ResizeCoord::kHalfPixelSymmetric: {
      const double adjustment = static_cast<double>(out) / out_w;
      const double offset = n / 2 * (1 - adjustment);
      return offset + (y + 0.5) / scale - 0.5;
    }
    case ResizeCoord::kPytorchHalfPixel: return out_w == 1 ? -0.5 : (y + 0.5) / scale - 0.5;
    case ResizeCoord::kAlignCorners: return out_w == 1 ? 0.0 : y * (n - 1) / (out_w - 1);
    default: return y / scale;  // asymmetric
  }
}

__device__ __forceinline__ int64_t nearest_index(NearestRounding r, double x, int64_t in) {
  const double f = floor(x);
  double i = f;
  if (x != f) {
    const double frac = x - f;
    switch (r) {
      case NearestRounding::kRoundPreferFloor: i = frac <= 0.5 ? f : f + 1; break;
      case NearestRounding::kRoundPreferCeil: i = frac < 0.5 ? f : f + 1; break;
      case NearestRounding::kFloor: i = f; break;
      case NearestRounding::kCeil: i = f + 1; break;
    }
  }
  return static_cast<int64_t>(fmin(fmax(i, 0.0), static_cast<double>(in - 1)));
}

// The two linear taps of x: indices (clamped into the image) and weights. The left tap is the
// pixel at or before x (strictly before when x is whole, whose right tap then has weight 1).
__device__ __forceinline__ void linear_taps(double x, int64_t in, int64_t (&idx)[2], float (&w)[2]) {
  const double f = floor(x);
  const int64_t left = static_cast<int64_t>(f) - (x == f ? 1 : 0);
  const double w1 = x - static_cast<double>(left);
  w[0] = static_cast<float>(1 - w1);
  w[1] = static_cast<float>(w1);
  idx[0] = left < 0 ? 0 : (left >= in ? in - 1 : left);
  idx[1] = left + 1 < 0 ? 0 : (left + 1 >= in ? in - 1 : left + 1);
}

template <typename T>
__global__ void resize2d_kernel(Resize2dParams p, const T* x, T* y, int64_t total, bool fits32) {
  const bool nhwc = p.layout == Layout::kNHWC;
  for (int64_t t = global_thread(); t < total; t += grid_threads()) {
    const ImageCoord o = image_coord(t, nhwc, p.c, p.out_h, p.out_w, fits32);
    const PlaneAddr in = plane_addr(nhwc, o.n, o.c, p.c, p.h, p.w);
    const double sy = source_coord(p.coord, o.h, p.h, p.out_h, p.scale_h);
    const double sx = source_coord(p.coord, o.w, p.w, p.out_w, p.scale_w);
    float v;
    if (p.mode == ResizeMode::kNearest) {
      const int64_t ih = nearest_index(p.rounding, sy, p.h), iw = nearest_index(p.rounding, sx, p.w);
      v = to_float(x[in.base + ih * in.row + iw * in.col]);
    } else {
      int64_t ih[2], iw[2];
      float wh[2], ww[2];
      linear_taps(sy, p.h, ih, wh);
      linear_taps(sx, p.w, iw, ww);
      v = 0.f;
      for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 2; ++b) v += wh[a] * ww[b] * to_float(x[in.base + ih[a] * in.row + iw[b] * in.col]);
    }
    y[t] = from_float<T>(v);
  }
}

}  // namespace

void launch_resize2d(DType dtype, const Resize2dParams& p, const void* x, void* y, cudaStream_t stream) {
  const int64_t total = p.n * p.c * p.out_h * p.out_w;
  if (total <= 0) return;
  RUNNX_CHECK(p.h > 0 && p.w > 0 && p.scale_h > 0 && p.scale_w > 0, kInvalidArgument,
              "CUDA Resize: empty input or non-positive scale");
  const unsigned grid = grid_for(total, kThreads);
  const bool fits32 = use_32bit_index(total);
  switch (dtype) {
    case DType::kF32:
      resize2d_kernel<<<grid, kThreads, 0, stream>>>(p, static_cast<const float*>(x), static_cast<float*>(y), total,
                                                      fits32);
      break;
    case DType::kF16:
      resize2d_kernel<<<grid, kThreads, 0, stream>>>(p, static_cast<const __half*>(x), static_cast<__half*>(y), total,
                                                      fits32);
      break;
    default: fail(ErrorKind::kInvalidArgument, "CUDA Resize: unsupported dtype ", dtype_name(dtype));
  }
}

}  // namespace runnx::cuda
