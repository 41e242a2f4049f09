// Copy kernels (copy.h). Concat and Gather move whole inner rows, so they copy in the widest
// unit (up to 16 bytes) that divides the row, the pitches and the addresses; Slice and Expand
// are strided copies (transpose.h).
#include "common/status.h"
#include "cuda/kernels/copy.h"
#include "cuda/kernels/kernel_util.cuh"
#include "cuda/kernels/simple_mode.h"
#include "cuda/kernels/transpose.h"

namespace runnx::cuda {
namespace {

constexpr int kThreads = 256;

// dst[r * dst_pitch + c] = src[r * src_pitch + c] for r < rows, c < cols (in units).
template <typename U>
__global__ void copy_rows_kernel(const U* src, int64_t src_pitch, U* dst, int64_t dst_pitch, int64_t rows,
                                 int64_t cols, bool fits32) {
  const int64_t total = rows * cols;
  for (int64_t t = global_thread(); t < total; t += grid_threads()) {
    int64_t r = t;
    const int64_t c = div_mod(r, cols, fits32);
    dst[r * dst_pitch + c] = src[r * src_pitch + c];
  }
}

// y[(o * n + j) * row + c] = data[(o * axis_len + idx[j]) * row + c] (rows of `row` units).
template <typename U>
__global__ void gather_kernel(const U* data, int64_t axis_len, int64_t row, const void* indices, bool idx64,
                              int64_t n, U* y, int64_t total, int* error_flag, bool fits32) {
  for (int64_t t = global_thread(); t < total; t += grid_threads()) {
    int64_t o = t;
    const int64_t c = div_mod(o, row, fits32), j = div_mod(o, n, fits32);
    int64_t idx = idx64 ? static_cast<const int64_t*>(indices)[j] : static_cast<const int32_t*>(indices)[j];
    if (idx < 0) idx += axis_len;
    if (idx < 0 || idx >= axis_len) {
      y[t] = U{};
      if (error_flag) *error_flag = 1;
    } else {
      y[t] = data[(o * axis_len + idx) * row + c];
    }
  }
}

void check_elem_size(int64_t elem_size) {
  RUNNX_CHECK(elem_size == 1 || elem_size == 2 || elem_size == 4 || elem_size == 8, kInvalidArgument,
              "CUDA copy: element size ", elem_size, " is not 1, 2, 4 or 8 bytes");
}

uint64_t addr(const void* p) { return reinterpret_cast<uintptr_t>(p); }

}  // namespace

void launch_slice(int64_t elem_size, const void* x, const std::vector<int64_t>& x_dims,
                  const std::vector<int64_t>& starts, const std::vector<int64_t>& steps, void* y,
                  const std::vector<int64_t>& out_dims, cudaStream_t stream) {
  const size_t rank = x_dims.size();
  RUNNX_CHECK(starts.size() == rank && steps.size() == rank && out_dims.size() == rank, kInvalidArgument,
              "CUDA Slice: starts, steps and output need one entry per dim");
  const std::vector<int64_t> xs = contiguous_strides(x_dims);
  std::vector<int64_t> strides(rank);
  int64_t offset = 0;
  for (size_t d = 0; d < rank; ++d) {
    if (out_dims[d] == 0) return;
    const int64_t last = starts[d] + (out_dims[d] - 1) * steps[d];
    RUNNX_CHECK(starts[d] >= 0 && starts[d] < x_dims[d] && last >= 0 && last < x_dims[d], kInvalidArgument,
                "CUDA Slice: dim ", d, " reads outside the input");
    offset += starts[d] * xs[d];
    strides[d] = steps[d] * xs[d];
  }
  launch_strided_copy(elem_size, x, offset, strides, y, out_dims, stream);
}

void launch_expand(int64_t elem_size, const void* x, const std::vector<int64_t>& x_dims, void* y,
                   const std::vector<int64_t>& out_dims, cudaStream_t stream) {
  RUNNX_CHECK(broadcast_dims({x_dims, out_dims}) == out_dims, kInvalidArgument,
              "CUDA Expand: the output shape is not the broadcast shape");
  std::vector<int64_t> strides(out_dims.size(), 0);
  const std::vector<int64_t> own = contiguous_strides(x_dims);
  const size_t lead = out_dims.size() - x_dims.size();
  for (size_t d = 0; d < x_dims.size(); ++d) strides[lead + d] = x_dims[d] == 1 ? 0 : own[d];
  launch_strided_copy(elem_size, x, 0, strides, y, out_dims, stream);
}

void launch_concat(int64_t elem_size, const std::vector<const void*>& inputs, const std::vector<int64_t>& axis_sizes,
                   int64_t outer, int64_t inner, void* y, cudaStream_t stream) {
  check_elem_size(elem_size);
  RUNNX_CHECK(inputs.size() == axis_sizes.size(), kInvalidArgument, "CUDA Concat: one axis size per input");
  int64_t total = 0;
  for (int64_t s : axis_sizes) total += s;
  if (outer <= 0 || inner <= 0 || total <= 0) return;
  const int64_t dst_pitch = total * inner * elem_size;  // bytes
  int64_t before = 0;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const int64_t cols = axis_sizes[k] * inner * elem_size;  // bytes per row of input k
    char* dst = static_cast<char*>(y) + before * inner * elem_size;
    before += axis_sizes[k];
    if (cols == 0) continue;
    const int64_t unit = use_simple_kernels()
                             ? elem_size
                             : widest_unit({uint64_t(cols), uint64_t(dst_pitch), addr(inputs[k]), addr(dst)});
    with_unit(unit, [&](auto tag) {
      using U = typename decltype(tag)::type;
      copy_rows_kernel<U><<<grid_for(outer * (cols / unit), kThreads), kThreads, 0, stream>>>(
          static_cast<const U*>(inputs[k]), cols / unit, reinterpret_cast<U*>(dst), dst_pitch / unit, outer,
          cols / unit, use_32bit_index(outer * (cols / unit)));
    });
  }
}

void launch_gather(int64_t elem_size, const void* data, int64_t outer, int64_t axis_len, int64_t inner,
                   const void* indices, DType index_dtype, int64_t n_indices, void* y, int* error_flag,
                   cudaStream_t stream) {
  check_elem_size(elem_size);
  RUNNX_CHECK(index_dtype == DType::kI64 || index_dtype == DType::kI32, kInvalidArgument,
              "CUDA Gather: indices must be int64 or int32");
  const int64_t row_bytes = inner * elem_size;
  if (outer <= 0 || n_indices <= 0 || row_bytes <= 0) return;
  const int64_t unit = use_simple_kernels() ? elem_size : widest_unit({uint64_t(row_bytes), addr(data), addr(y)});
  const int64_t row = row_bytes / unit, total = outer * n_indices * row;
  with_unit(unit, [&](auto tag) {
    using U = typename decltype(tag)::type;
    gather_kernel<U><<<grid_for(total, kThreads), kThreads, 0, stream>>>(static_cast<const U*>(data), axis_len, row,
                                                                         indices, index_dtype == DType::kI64,
                                                                         n_indices, static_cast<U*>(y), total,
                                                                         error_flag, use_32bit_index(total));
  });
}

}  // namespace runnx::cuda
