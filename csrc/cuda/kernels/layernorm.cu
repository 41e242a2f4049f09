// LayerNorm kernels (layernorm.h). Rows of <= 1024: a warp per row holding the row in registers
// (mean, then the variance around it: two passes over registers, no cancellation); longer rows
// (and RUNNX_CUDA_SIMPLE): a block per row reading the row three times.
#include "common/status.h"
#include "cuda/kernels/kernel_util.cuh"
#include "cuda/kernels/layernorm.h"
#include "cuda/kernels/simple_mode.h"

namespace runnx::cuda {
namespace {

constexpr int kWarpRowMax = 1024;
constexpr int kPerLane = kWarpRowMax / 32;
constexpr int kRowsPerBlock = 4;
constexpr int kBlockThreads = 256;

template <typename T>
__device__ __forceinline__ float load_sum(const LayerNormArgs& a, int64_t i) {
  float v = to_float(static_cast<const T*>(a.x)[i]);
  if (a.residual) v += to_float(static_cast<const T*>(a.residual)[i]);
  return v;
}

template <typename T>
__device__ __forceinline__ void store_normalized(const LayerNormArgs& a, int64_t row, int64_t c, float s, float mean,
                                                 float inv_std) {
  const int64_t i = row * a.cols + c;
  float v = (s - mean) * inv_std * to_float(static_cast<const T*>(a.scale)[c]);
  if (a.bias) v += to_float(static_cast<const T*>(a.bias)[c]);
  static_cast<T*>(a.y)[i] = from_float<T>(v);
}

__device__ __forceinline__ void store_stats(const LayerNormArgs& a, int64_t row, float mean, float inv_std) {
  if (a.mean) a.mean[row] = mean;
  if (a.inv_std) a.inv_std[row] = inv_std;
}

template <typename T>
__global__ void layernorm_warp_kernel(LayerNormArgs a) {
  const int lane = threadIdx.x % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (row >= a.rows) return;  // whole warps leave together
  const int cols = static_cast<int>(a.cols);
  float v[kPerLane];
  float sum = 0.f;
#pragma unroll
  for (int k = 0; k < kPerLane; ++k) {
    const int c = lane + 32 * k;
    v[k] = c < cols ? load_sum<T>(a, row * a.cols + c) : 0.f;
    sum += v[k];
  }
  const float mean = warp_sum(sum) / cols;
  float sq = 0.f;
#pragma unroll
  for (int k = 0; k < kPerLane; ++k) {
    const float d = lane + 32 * k < cols ? v[k] - mean : 0.f;
    sq += d * d;
  }
  const float inv_std = rsqrtf(warp_sum(sq) / cols + a.epsilon);
  // Everything is read before anything is written, so y may alias x or the residual.
#pragma unroll
  for (int k = 0; k < kPerLane; ++k) {
    const int c = lane + 32 * k;
    if (c >= cols) continue;
    if (a.sum_out) static_cast<T*>(a.sum_out)[row * a.cols + c] = from_float<T>(v[k]);
    store_normalized<T>(a, row, c, v[k], mean, inv_std);
  }
  if (lane == 0) store_stats(a, row, mean, inv_std);
}

// A block per row (grid-stride over rows). Each thread writes only the elements it read, so
// y may alias x or the residual here too.
template <typename T>
__global__ void layernorm_block_kernel(LayerNormArgs a) {
  __shared__ float scratch[32];
  for (int64_t row = blockIdx.x; row < a.rows; row += gridDim.x) {
    float sum = 0.f;
    for (int64_t c = threadIdx.x; c < a.cols; c += blockDim.x) sum += load_sum<T>(a, row * a.cols + c);
    const float mean = block_sum(sum, scratch) / a.cols;
    float sq = 0.f;
    for (int64_t c = threadIdx.x; c < a.cols; c += blockDim.x) {
      const float d = load_sum<T>(a, row * a.cols + c) - mean;
      sq += d * d;
    }
    const float inv_std = rsqrtf(block_sum(sq, scratch) / a.cols + a.epsilon);
    for (int64_t c = threadIdx.x; c < a.cols; c += blockDim.x) {
      const float s = load_sum<T>(a, row * a.cols + c);
      if (a.sum_out) static_cast<T*>(a.sum_out)[row * a.cols + c] = from_float<T>(s);
      store_normalized<T>(a, row, c, s, mean, inv_std);
    }
    if (threadIdx.x == 0) store_stats(a, row, mean, inv_std);
  }
}

template <typename T>
void layernorm_typed(const LayerNormArgs& a, cudaStream_t stream) {
  if (a.cols <= kWarpRowMax && !use_simple_kernels()) {
    const int64_t blocks = (a.rows + kRowsPerBlock - 1) / kRowsPerBlock;
    RUNNX_CHECK(blocks <= 0x7fffffff, kInvalidArgument, "CUDA LayerNorm: too many rows");
    layernorm_warp_kernel<T><<<static_cast<unsigned>(blocks), 32 * kRowsPerBlock, 0, stream>>>(a);
  } else {
    layernorm_block_kernel<T><<<grid_for(a.rows, 1), kBlockThreads, 0, stream>>>(a);
  }
}

}  // namespace

void launch_layernorm(DType dtype, const LayerNormArgs& args, cudaStream_t stream) {
  RUNNX_CHECK(args.x && args.scale && args.y, kInvalidArgument, "CUDA LayerNorm: x, scale and y are required");
  if (args.rows <= 0) return;
  RUNNX_CHECK(args.cols > 0, kInvalidArgument, "CUDA LayerNorm: the normalised dims are empty");
  switch (dtype) {
    case DType::kF32: return layernorm_typed<float>(args, stream);
    case DType::kF16: return layernorm_typed<__half>(args, stream);
    default: fail(ErrorKind::kInvalidArgument, "CUDA LayerNorm: unsupported dtype ", dtype_name(dtype));
  }
}

}  // namespace runnx::cuda
