// Transpose and general strided copies. Elements are opaque: elem_size is 1, 2, 4 or 8 bytes
// (any dtype). x and y are contiguous row-major unless strides say otherwise; empty outputs
// launch nothing; more than 8 dims that cannot be merged throw InvalidArgument.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "cuda/kernels/layout.h"

namespace runnx::cuda {

// y = x.transpose(perm): y has dims x_dims[perm[0]], x_dims[perm[1]], ...
void launch_transpose(int64_t elem_size, const void* x, const std::vector<int64_t>& x_dims,
                      const std::vector<int64_t>& perm, void* y, cudaStream_t stream);

// NCHW <-> NHWC for n images of c channels and hw = h * w pixels (from = the layout of x).
void launch_layout_convert(int64_t elem_size, Layout from, const void* x, int64_t n, int64_t c, int64_t hw, void* y,
                           cudaStream_t stream);

// y (contiguous, out_dims) element at coords (i0, i1, ...) = x[x_offset + sum_d i_d * x_strides[d]]
// (element strides, any sign, 0 repeats). The building block of Slice, Expand and views.
void launch_strided_copy(int64_t elem_size, const void* x, int64_t x_offset, const std::vector<int64_t>& x_strides,
                         void* y, const std::vector<int64_t>& out_dims, cudaStream_t stream);

}  // namespace runnx::cuda
