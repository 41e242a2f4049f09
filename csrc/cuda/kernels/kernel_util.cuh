// Device helpers shared by the element-wise, normalisation, reduction and data-movement kernels
// (cudaops' families). Included by .cu files only.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <initializer_list>

namespace runnx::cuda {

// fp16 is stored as __half and computed in fp32.
__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }

// N consecutive elements loaded or stored as one aligned vector access (the caller checks the
// address is a multiple of sizeof(Pack)).
template <typename T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

// Blocks for a grid-stride loop over n items: enough to fill the GPU, never past the x limit.
inline unsigned grid_for(int64_t n, int threads) {
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks > 65536) blocks = 65536;  // grid-stride loops cover the rest
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks);
}

__device__ __forceinline__ int64_t global_thread() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_threads() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

// Returns t % d and leaves t / d in t. fits32: t and d are below 2^32 (the caller knows from the
// element count), so 32-bit division does, which is several times cheaper than 64-bit.
__device__ __forceinline__ int64_t div_mod(int64_t& t, int64_t d, bool fits32) {
  if (fits32) {
    const uint32_t a = static_cast<uint32_t>(t), b = static_cast<uint32_t>(d), q = a / b;
    t = q;
    return a - q * b;
  }
  const int64_t q = t / d, r = t - q * d;
  t = q;
  return r;
}

// Warp-wide and block-wide sum / max; every thread gets the result. Block versions need
// blockDim.x a multiple of 32 (<= 1024) and `scratch`, 32 floats of shared memory; they end with
// a barrier, so scratch can be reused at once.
struct SumOp {
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct MaxOp {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

template <typename Op>
__device__ __forceinline__ float warp_allreduce(float v, Op op) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
template <typename Op>
__device__ __forceinline__ float block_allreduce(float v, float identity, float* scratch, Op op) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_allreduce(v, op);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = warp_allreduce(lane < warps ? scratch[lane] : identity, op);
  __syncthreads();
  return v;
}

__device__ __forceinline__ float warp_sum(float v) { return warp_allreduce(v, SumOp()); }
__device__ __forceinline__ float warp_max(float v) { return warp_allreduce(v, MaxOp()); }
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  return block_allreduce(v, 0.f, scratch, SumOp());
}
__device__ __forceinline__ float block_max(float v, float* scratch) {
  return block_allreduce(v, -INFINITY, scratch, MaxOp());
}

// Coordinates of element t of an image batch [n, c, h, w] (NCHW) or [n, h, w, c] (NHWC).
struct ImageCoord {
  int64_t n, c, h, w;
};
// fits32: the batch has fewer than 2^32 elements (32-bit division).
__device__ __forceinline__ ImageCoord image_coord(int64_t t, bool nhwc, int64_t c, int64_t h, int64_t w,
                                                  bool fits32) {
  ImageCoord q;
  if (nhwc) {
    q.c = div_mod(t, c, fits32);
    q.w = div_mod(t, w, fits32);
    q.h = div_mod(t, h, fits32);
  } else {
    q.w = div_mod(t, w, fits32);
    q.h = div_mod(t, h, fits32);
    q.c = div_mod(t, c, fits32);
  }
  q.n = t;
  return q;
}

// Where pixel (ih, iw) of image n, channel ch lies in a [n, c, h, w] / [n, h, w, c] tensor:
// at base + ih * row + iw * col.
struct PlaneAddr {
  int64_t base, row, col;
};
__device__ __forceinline__ PlaneAddr plane_addr(bool nhwc, int64_t n, int64_t ch, int64_t c, int64_t h, int64_t w) {
  if (nhwc) return {n * h * w * c + ch, w * c, c};
  return {(n * c + ch) * h * w, w, 1};
}

// A pooling / convolution window: output pixel (oh, ow) starts at (h0, w0) = (oh * stride -
// pad_begin) per axis and steps by the dilation; taps outside the h x w image are skipped.
struct Window2d {
  int64_t h0, w0, kernel_h, kernel_w, dilation_h, dilation_w, h, w;
};
// Calls f(element offset, tap index kh * kernel_w + kw) for every tap inside the image.
template <typename F>
__device__ __forceinline__ void for_each_tap(const Window2d& win, const PlaneAddr& in, F&& f) {
  for (int64_t kh = 0; kh < win.kernel_h; ++kh) {
    const int64_t ih = win.h0 + kh * win.dilation_h;
    if (ih < 0 || ih >= win.h) continue;
    for (int64_t kw = 0; kw < win.kernel_w; ++kw) {
      const int64_t iw = win.w0 + kw * win.dilation_w;
      if (iw < 0 || iw >= win.w) continue;
      f(in.base + ih * in.row + iw * in.col, kh * win.kernel_w + kw);
    }
  }
}

}  // namespace runnx::cuda

#include "cuda/kernels/strided_plan.h"

namespace runnx::cuda {

// Element offsets of output element i in each of the first K operands of plan p.
template <int K>
__device__ __forceinline__ void plan_offsets(const StridedPlan& p, int64_t i, int64_t (&off)[K]) {
#pragma unroll
  for (int k = 0; k < K; ++k) off[k] = 0;
#pragma unroll
  for (int d = kMaxPlanRank - 1; d >= 1; --d) {
    if (d < p.rank) {
      const int64_t c = div_mod(i, p.dims[d], p.index32);
#pragma unroll
      for (int k = 0; k < K; ++k) off[k] += c * p.strides[k][d];
    }
  }
#pragma unroll
  for (int k = 0; k < K; ++k) off[k] += i * p.strides[k][0];
}

}  // namespace runnx::cuda

namespace runnx::cuda {

// Data-movement kernels copy opaque units of 1, 2, 4, 8 or 16 bytes. with_unit(bytes, f) calls
// f(UnitTag<U>{}) with U of that size (host code; bytes must be one of those). Element-wise
// callers pass kWith16 = false, so no 16-byte instantiation is compiled for them.
template <typename U>
struct UnitTag {
  using type = U;
};
template <bool kWith16 = true, typename F>
void with_unit(int64_t bytes, F&& f) {
  switch (bytes) {
    case 1: f(UnitTag<uint8_t>{}); break;
    case 2: f(UnitTag<uint16_t>{}); break;
    case 4: f(UnitTag<uint32_t>{}); break;
    case 8: f(UnitTag<uint2>{}); break;
    default:
      if constexpr (kWith16) f(UnitTag<uint4>{});
      break;
  }
}

// The widest unit (<= 16 bytes) that divides every value (byte counts and addresses).
inline int64_t widest_unit(std::initializer_list<uint64_t> values) {
  int64_t unit = 16;
  for (uint64_t v : values)
    while (v % unit != 0) unit /= 2;
  return unit;
}

}  // namespace runnx::cuda
