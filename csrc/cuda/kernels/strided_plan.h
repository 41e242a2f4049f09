// How element-wise and copy kernels walk tensors: the output in row-major order, each operand
// through its own element strides (0 where it is broadcast). Host code builds a plan; kernels
// take it by value. Plans are coalesced (size-1 dims dropped, dims that are contiguous in every
// operand merged), so most real shapes end up rank 1 or 2 and take a fast path.
#pragma once
#include <cstdint>
#include <vector>

namespace runnx::cuda {

constexpr int kMaxPlanRank = 8;     // after coalescing; more is refused (InvalidArgument)
constexpr int kMaxPlanOperands = 3;  // Where has three inputs

struct StridedPlan {
  int rank = 1;                                     // >= 1 (a scalar is rank 1 of size 1)
  int64_t numel = 1;                                // product of dims
  int64_t dims[kMaxPlanRank] = {1};                 // output dims, row-major
  int64_t strides[kMaxPlanOperands][kMaxPlanRank] = {};  // elements, per operand and dim
  bool index32 = true;  // use_32bit_index(numel): kernels split indices with 32-bit division
};

// Output dims of numpy broadcasting; throws InvalidArgument when the shapes do not broadcast.
std::vector<int64_t> broadcast_dims(const std::vector<std::vector<int64_t>>& shapes);

// Plan for operands of `shapes` (contiguous, row-major) broadcast to their common shape.
StridedPlan make_broadcast_plan(const std::vector<std::vector<int64_t>>& shapes);

// Plan for an output of `out_dims` reading operand k at sum(coord[d] * strides[k][d]); each
// strides[k] has out_dims.size() entries (any sign).
StridedPlan make_strided_plan(const std::vector<int64_t>& out_dims,
                              const std::vector<std::vector<int64_t>>& strides);

// Row-major element strides of a contiguous tensor.
std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& dims);

}  // namespace runnx::cuda
