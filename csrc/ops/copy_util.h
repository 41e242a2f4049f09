// Byte-moving loops shared by the data-movement ops (Transpose, Slice, Expand, Tile, Pad, Concat,
// nearest Resize...). They work on raw bytes with an element size of 1, 2, 4 or 8, so every
// fixed-size dtype (float16, bool, int8...) goes through the same code.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/thread_pool.h"
#include "ir/tensor.h"

namespace runnx {

// Calls f(U{}) with the unsigned integer type of the element's size: data movement never needs
// to know what the bytes mean.
template <typename F>
void by_size(size_t esize, F&& f) {
  switch (esize) {
    case 1:
      f(uint8_t{});
      break;
    case 2:
      f(uint16_t{});
      break;
    case 4:
      f(uint32_t{});
      break;
    case 8:
      f(uint64_t{});
      break;
    default:
      fail(ErrorKind::kUnsupportedOp, "element size ", esize, " is not supported");
  }
}

// Element size of a tensor's dtype; UnsupportedOp naming the node for types without one (string).
inline size_t element_size(DType dt, const std::string& who) {
  size_t n = dtype_size(dt);
  RUNNX_CHECK(n == 1 || n == 2 || n == 4 || n == 8, kUnsupportedOp, who, ": element type ",
              dtype_name(dt), " is not supported");
  return n;
}

// Writes the value v converted to dtype dt into out (a fill value from a float attribute: Pad's
// `value`, Resize's `extrapolation_value`).
void cast_scalar(double v, DType dt, void* out, const std::string& who);

// Copies an N-d region element by element: element (i_0..i_{r-1}) goes from
// src + sum(i_k * src_strides[k]) to dst + sum(i_k * dst_strides[k]); strides are in elements and
// src strides may be 0 (broadcast) or negative (reversed slices). Dims are coalesced first, rows
// whose inner dim is contiguous on both sides become memcpy, and a transposed inner dim is copied
// in cache-sized tiles. Multithreaded over rows.
void copy_strided(void* dst, const void* src, size_t esize, Shape shape,
                  std::vector<int64_t> dst_strides, std::vector<int64_t> src_strides,
                  ThreadPool& pool);

// Writes the contiguous tensor dst of shape `out` where element (i_0..i_{r-1}) is read from
// src + sum(maps[k][i_k] * src_strides[k]); a map entry of -1 means "write *fill instead" (Pad's
// constant border, Resize's extrapolation). Each maps[k] has out[k] entries.
void copy_by_maps(void* dst, const void* src, size_t esize, const Shape& out,
                  const std::vector<std::vector<int64_t>>& maps,
                  const std::vector<int64_t>& src_strides, const void* fill, ThreadPool& pool);

// Writes `count` copies of the esize-byte value at `value` to dst.
void fill_elements(void* dst, size_t esize, int64_t count, const void* value, ThreadPool& pool);

// Rows per parallel chunk so that one chunk moves about `kCopyGrainElems` elements.
constexpr int64_t kCopyGrainElems = 1 << 15;
inline int64_t rows_grain(int64_t row_len) {
  return row_len >= kCopyGrainElems ? 1 : kCopyGrainElems / (row_len > 0 ? row_len : 1);
}

}  // namespace runnx
