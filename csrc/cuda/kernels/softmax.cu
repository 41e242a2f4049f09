// Softmax kernels (softmax.h). Last axis: a warp per row holding the row in registers when it
// has <= 1024 elements (the fast path), otherwise a block per row reading it three times (max,
// sum, write; also the RUNNX_CUDA_SIMPLE path). Other axes: a thread per (outer, inner) column.
#include "common/status.h"
#include "cuda/kernels/kernel_util.cuh"
#include "cuda/kernels/simple_mode.h"
#include "cuda/kernels/softmax.h"

namespace runnx::cuda {
namespace {

constexpr int kWarpRowMax = 1024;  // 32 values per lane
constexpr int kPerLane = kWarpRowMax / 32;
constexpr int kRowsPerBlock = 4;   // warps per block in the warp-per-row kernel
constexpr int kBlockThreads = 256;

__device__ __forceinline__ float softmax_out(float v, float max, float sum, bool log_softmax) {
  return log_softmax ? (v - max) - logf(sum) : expf(v - max) / sum;
}

template <typename T>
__global__ void softmax_warp_kernel(const T* x, T* y, int64_t rows, int cols, bool log_softmax) {
  const int lane = threadIdx.x % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (row >= rows) return;  // whole warps leave together
  const T* xr = x + row * cols;
  float v[kPerLane];
  float max = -INFINITY;
#pragma unroll
  for (int k = 0; k < kPerLane; ++k) {
    const int c = lane + 32 * k;
    v[k] = c < cols ? to_float(xr[c]) : -INFINITY;
    max = fmaxf(max, v[k]);
  }
  max = warp_max(max);
  float sum = 0.f;
#pragma unroll
  for (int k = 0; k < kPerLane; ++k)
    if (lane + 32 * k < cols) sum += expf(v[k] - max);
  sum = warp_sum(sum);
  T* yr = y + row * cols;
#pragma unroll
  for (int k = 0; k < kPerLane; ++k) {
    const int c = lane + 32 * k;
    if (c < cols) yr[c] = from_float<T>(softmax_out(v[k], max, sum, log_softmax));
  }
}

// One block per row (grid-stride over rows).
template <typename T>
__global__ void softmax_block_kernel(const T* x, T* y, int64_t rows, int64_t cols, bool log_softmax) {
  __shared__ float scratch[32];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * cols;
    float max = -INFINITY;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) max = fmaxf(max, to_float(xr[c]));
    max = block_max(max, scratch);
    float sum = 0.f;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) sum += expf(to_float(xr[c]) - max);
    sum = block_sum(sum, scratch);
    T* yr = y + row * cols;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
      yr[c] = from_float<T>(softmax_out(to_float(xr[c]), max, sum, log_softmax));
  }
}

// Axis not last: thread per (o, i); neighbouring threads read neighbouring inner elements.
template <typename T>
__global__ void softmax_strided_kernel(const T* x, T* y, int64_t outer, int64_t axis_len, int64_t inner,
                                       bool log_softmax) {
  for (int64_t t = global_thread(); t < outer * inner; t += grid_threads()) {
    const int64_t base = (t / inner) * axis_len * inner + t % inner;
    float max = -INFINITY;
    for (int64_t a = 0; a < axis_len; ++a) max = fmaxf(max, to_float(x[base + a * inner]));
    float sum = 0.f;
    for (int64_t a = 0; a < axis_len; ++a) sum += expf(to_float(x[base + a * inner]) - max);
    for (int64_t a = 0; a < axis_len; ++a)
      y[base + a * inner] = from_float<T>(softmax_out(to_float(x[base + a * inner]), max, sum, log_softmax));
  }
}

template <typename T>
void softmax_typed(const T* x, T* y, int64_t outer, int64_t axis_len, int64_t inner, bool log_softmax,
                   cudaStream_t stream) {
  if (inner != 1) {
    softmax_strided_kernel<T><<<grid_for(outer * inner, kBlockThreads), kBlockThreads, 0, stream>>>(
        x, y, outer, axis_len, inner, log_softmax);
  } else if (axis_len <= kWarpRowMax && !use_simple_kernels()) {
    const int64_t blocks = (outer + kRowsPerBlock - 1) / kRowsPerBlock;
    RUNNX_CHECK(blocks <= 0x7fffffff, kInvalidArgument, "CUDA Softmax: too many rows");
    softmax_warp_kernel<T><<<static_cast<unsigned>(blocks), 32 * kRowsPerBlock, 0, stream>>>(
        x, y, outer, static_cast<int>(axis_len), log_softmax);
  } else {
    softmax_block_kernel<T><<<grid_for(outer, 1), kBlockThreads, 0, stream>>>(x, y, outer, axis_len, log_softmax);
  }
}

}  // namespace

void launch_softmax(DType dtype, const void* x, void* y, int64_t outer, int64_t axis_len, int64_t inner,
                    bool log_softmax, cudaStream_t stream) {
  if (outer <= 0 || axis_len <= 0 || inner <= 0) return;
  switch (dtype) {
    case DType::kF32:
      return softmax_typed(static_cast<const float*>(x), static_cast<float*>(y), outer, axis_len, inner,
                           log_softmax, stream);
    case DType::kF16:
      return softmax_typed(static_cast<const __half*>(x), static_cast<__half*>(y), outer, axis_len, inner,
                           log_softmax, stream);
    default: fail(ErrorKind::kInvalidArgument, "CUDA Softmax: unsupported dtype ", dtype_name(dtype));
  }
}

}  // namespace runnx::cuda
