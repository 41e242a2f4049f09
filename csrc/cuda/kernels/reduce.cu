// Reduction kernels (reduce.h). The host merges adjacent dims of the same kind (reduced or
// kept); when that leaves [outer, reduced, inner] the 3-D kernels run: a warp (or, for long
// rows, a block) per output when inner == 1, else a thread per output walking down the reduced
// axis (neighbouring threads read neighbouring elements). Anything else (e.g. axes 0 and 2 of
// three) takes the general kernel: a thread per output walking every reduced element.
#include <algorithm>

#include "common/status.h"
#include "cuda/kernels/kernel_util.cuh"
#include "cuda/kernels/reduce.h"
#include "cuda/kernels/simple_mode.h"

namespace runnx::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarpsPerBlock = 4;
constexpr int64_t kBlockRowMin = 4096;  // rows at least this long get a whole block

__device__ __forceinline__ float reduce_init(ReduceOp op) {
  switch (op) {
    case ReduceOp::kMax: return -INFINITY;
    case ReduceOp::kMin: return INFINITY;
    case ReduceOp::kProd: return 1.f;
    default: return 0.f;
  }
}
// Folds two partial results (also a partial result and one element after reduce_map).
__device__ __forceinline__ float reduce_combine(ReduceOp op, float a, float b) {
  switch (op) {
    case ReduceOp::kMax: return (a > b || a != a) ? a : b;
    case ReduceOp::kMin: return (a < b || a != a) ? a : b;
    case ReduceOp::kProd: return a * b;
    default: return a + b;
  }
}
// What one element contributes.
__device__ __forceinline__ float reduce_map(ReduceOp op, float v) {
  switch (op) {
    case ReduceOp::kSumSquare: case ReduceOp::kL2: return v * v;
    case ReduceOp::kL1: return fabsf(v);
    default: return v;
  }
}
__device__ __forceinline__ float reduce_final(ReduceOp op, float acc, int64_t count) {
  switch (op) {
    case ReduceOp::kMean: return acc / static_cast<float>(count);
    case ReduceOp::kL2: return sqrtf(acc);
    case ReduceOp::kLogSum: return logf(acc);
    default: return acc;
  }
}

__device__ __forceinline__ float warp_reduce(ReduceOp op, float v) {
  for (int o = 16; o > 0; o >>= 1) v = reduce_combine(op, v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// [outer, r, inner] with inner > 1 (and every shape in RUNNX_CUDA_SIMPLE): thread per output.
template <typename T>
__global__ void reduce_columns_kernel(ReduceOp op, const T* x, T* y, int64_t outer, int64_t r, int64_t inner) {
  for (int64_t t = global_thread(); t < outer * inner; t += grid_threads()) {
    const T* p = x + (t / inner) * r * inner + t % inner;
    float acc = reduce_init(op);
    for (int64_t k = 0; k < r; ++k) acc = reduce_combine(op, acc, reduce_map(op, to_float(p[k * inner])));
    y[t] = from_float<T>(reduce_final(op, acc, r));
  }
}

// [rows, r]: a warp per row.
template <typename T>
__global__ void reduce_rows_warp_kernel(ReduceOp op, const T* x, T* y, int64_t rows, int64_t r) {
  const int lane = threadIdx.x % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (row >= rows) return;  // whole warps leave together
  const T* p = x + row * r;
  float acc = reduce_init(op);
  for (int64_t k = lane; k < r; k += 32) acc = reduce_combine(op, acc, reduce_map(op, to_float(p[k])));
  acc = warp_reduce(op, acc);
  if (lane == 0) y[row] = from_float<T>(reduce_final(op, acc, r));
}

// [rows, r] with long rows: a block per row (grid-stride over rows).
template <typename T>
__global__ void reduce_rows_block_kernel(ReduceOp op, const T* x, T* y, int64_t rows, int64_t r) {
  __shared__ float scratch[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* p = x + row * r;
    float acc = reduce_init(op);
    for (int64_t k = threadIdx.x; k < r; k += blockDim.x) acc = reduce_combine(op, acc, reduce_map(op, to_float(p[k])));
    acc = warp_reduce(op, acc);
    if (lane == 0) scratch[warp] = acc;
    __syncthreads();
    if (warp == 0) {
      acc = warp_reduce(op, lane < warps ? scratch[lane] : reduce_init(op));
      if (lane == 0) y[row] = from_float<T>(reduce_final(op, acc, r));
    }
    __syncthreads();  // scratch is reused by the next row
  }
}

// Anything: output t's kept coordinates through `kept` (operand 0: input strides), then every
// reduced element through `red` (operand 0: input strides).
template <typename T>
__global__ void reduce_general_kernel(ReduceOp op, const T* x, T* y, StridedPlan kept, StridedPlan red) {
  for (int64_t t = global_thread(); t < kept.numel; t += grid_threads()) {
    int64_t base[1];
    plan_offsets<1>(kept, t, base);
    float acc = reduce_init(op);
    for (int64_t k = 0; k < red.numel; ++k) {
      int64_t off[1];
      plan_offsets<1>(red, k, off);
      acc = reduce_combine(op, acc, reduce_map(op, to_float(x[base[0] + off[0]])));
    }
    y[t] = from_float<T>(reduce_final(op, acc, red.numel));
  }
}

template <typename T>
void reduce_typed(ReduceOp op, const T* x, T* y, const std::vector<int64_t>& dims, const std::vector<bool>& reduced,
                  cudaStream_t stream) {
  int64_t kept_numel = 1, red_numel = 1;
  for (size_t d = 0; d < dims.size(); ++d) (reduced[d] ? red_numel : kept_numel) *= dims[d];
  if (kept_numel == 0) return;

  // Merge runs of the same kind, skipping size-1 dims: [(size, reduced?)...]
  std::vector<std::pair<int64_t, bool>> runs;
  for (size_t d = 0; d < dims.size(); ++d) {
    if (dims[d] == 1) continue;
    if (!runs.empty() && runs.back().second == reduced[d]) runs.back().first *= dims[d];
    else runs.push_back({dims[d], reduced[d]});
  }
  int64_t outer = 1, r = 1, inner = 1;
  bool three_d = true;
  if (red_numel == 0) {
    outer = kept_numel;  // every output is the empty reduction
    r = 0;
  } else {
    size_t i = 0;
    if (i < runs.size() && !runs[i].second) outer = runs[i++].first;
    if (i < runs.size() && runs[i].second) r = runs[i++].first;
    if (i < runs.size() && !runs[i].second) inner = runs[i++].first;
    three_d = i == runs.size();
  }

  if (three_d) {
    if (inner != 1 || use_simple_kernels()) {
      reduce_columns_kernel<T><<<grid_for(outer * inner, kThreads), kThreads, 0, stream>>>(op, x, y, outer, r, inner);
    } else if (r >= kBlockRowMin) {
      reduce_rows_block_kernel<T><<<grid_for(outer, 1), kThreads, 0, stream>>>(op, x, y, outer, r);
    } else {
      const int64_t blocks = (outer + kWarpsPerBlock - 1) / kWarpsPerBlock;
      RUNNX_CHECK(blocks <= 0x7fffffff, kInvalidArgument, "CUDA reduce: too many rows");
      reduce_rows_warp_kernel<T><<<static_cast<unsigned>(blocks), 32 * kWarpsPerBlock, 0, stream>>>(op, x, y, outer, r);
    }
    return;
  }
  // General: split the input strides between the kept and the reduced dims.
  const std::vector<int64_t> strides = contiguous_strides(dims);
  std::vector<int64_t> kept_dims, kept_strides, red_dims, red_strides;
  for (size_t d = 0; d < dims.size(); ++d) {
    (reduced[d] ? red_dims : kept_dims).push_back(dims[d]);
    (reduced[d] ? red_strides : kept_strides).push_back(strides[d]);
  }
  const StridedPlan kept = make_strided_plan(kept_dims, {kept_strides});
  const StridedPlan red = make_strided_plan(red_dims, {red_strides});
  reduce_general_kernel<T><<<grid_for(kept.numel, kThreads), kThreads, 0, stream>>>(op, x, y, kept, red);
}

}  // namespace

void launch_reduce(ReduceOp op, DType dtype, const void* x, const std::vector<int64_t>& dims,
                   const std::vector<int64_t>& axes, void* y, cudaStream_t stream) {
  const int64_t rank = static_cast<int64_t>(dims.size());
  std::vector<bool> reduced(dims.size(), false);
  for (int64_t a : axes) {
    RUNNX_CHECK(a >= -rank && a < rank, kInvalidArgument, "CUDA reduce: axis ", a, " out of range for rank ", rank);
    const int64_t d = a < 0 ? a + rank : a;
    RUNNX_CHECK(!reduced[d], kInvalidArgument, "CUDA reduce: axis ", a, " repeated");
    reduced[d] = true;
  }
  switch (dtype) {
    case DType::kF32:
      return reduce_typed(op, static_cast<const float*>(x), static_cast<float*>(y), dims, reduced, stream);
    case DType::kF16:
      return reduce_typed(op, static_cast<const __half*>(x), static_cast<__half*>(y), dims, reduced, stream);
    default: fail(ErrorKind::kInvalidArgument, "CUDA reduce: unsupported dtype ", dtype_name(dtype));
  }
}

}  // namespace runnx::cuda
