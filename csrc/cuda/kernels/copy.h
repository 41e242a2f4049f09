// Slice, Expand, Concat and Gather: copies that move elements unchanged. Elements are opaque
// (elem_size 1, 2, 4 or 8 bytes, any dtype); tensors are contiguous row-major; empty outputs
// launch nothing.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "common/dtype.h"

namespace runnx::cuda {

// y[j0, j1, ...] = x[starts[0] + j0 * steps[0], starts[1] + j1 * steps[1], ...] for y of out_dims;
// starts/steps per dim of x, already normalised by the caller (in range, steps != 0; a negative
// step walks backwards).
void launch_slice(int64_t elem_size, const void* x, const std::vector<int64_t>& x_dims,
                  const std::vector<int64_t>& starts, const std::vector<int64_t>& steps, void* y,
                  const std::vector<int64_t>& out_dims, cudaStream_t stream);

// y (out_dims) = x (x_dims) broadcast numpy-style; out_dims is the broadcast of the two shapes.
void launch_expand(int64_t elem_size, const void* x, const std::vector<int64_t>& x_dims, void* y,
                   const std::vector<int64_t>& out_dims, cudaStream_t stream);

// Concat along one axis: input k viewed as [outer, axis_sizes[k], inner], y as
// [outer, sum(axis_sizes), inner]. One launch per non-empty input.
void launch_concat(int64_t elem_size, const std::vector<const void*>& inputs, const std::vector<int64_t>& axis_sizes,
                   int64_t outer, int64_t inner, void* y, cudaStream_t stream);

// Gather along one axis: data viewed as [outer, axis_len, inner], y as [outer, n_indices, inner]:
// y[o, j, i] = data[o, idx[j], i]. indices are kI64 or kI32; negative ones count from the end.
// An index outside [-axis_len, axis_len) writes zeros and, when error_flag (device int) is not
// null, sets *error_flag = 1 so the caller can raise after synchronising.
void launch_gather(int64_t elem_size, const void* data, int64_t outer, int64_t axis_len, int64_t inner,
                   const void* indices, DType index_dtype, int64_t n_indices, void* y, int* error_flag,
                   cudaStream_t stream);

}  // namespace runnx::cuda
