// Small helpers every op family uses: axis normalisation, broadcasting, dtype dispatch.
#pragma once
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/status.h"
#include "ir/graph.h"
#include "ir/tensor.h"

namespace runnx {

// Maps a possibly negative axis into [0, rank); InvalidArgument naming the node otherwise.
inline int64_t normalize_axis(int64_t axis, int64_t rank, const Node& node) {
  RUNNX_CHECK(axis >= -rank && axis < std::max<int64_t>(rank, 1), kInvalidArgument, node.label(),
              ": axis ", axis, " is out of range for rank ", rank);
  return axis < 0 ? axis + rank : axis;
}

// Numpy-style broadcast of several shapes.
inline Shape broadcast_shapes(const std::vector<const Shape*>& shapes, const Node& node) {
  size_t rank = 0;
  for (const Shape* s : shapes) rank = std::max(rank, s->size());
  Shape out(rank, 1);
  for (const Shape* s : shapes) {
    size_t off = rank - s->size();
    for (size_t i = 0; i < s->size(); ++i) {
      int64_t d = (*s)[i];
      int64_t& o = out[off + i];
      if (d == o || d == 1) continue;
      RUNNX_CHECK(o == 1, kInvalidArgument, node.label(), ": shapes cannot broadcast: ",
                  shape_str(*shapes[0]), " and ", shape_str(*s));
      o = d;
    }
  }
  // A zero dim wins over 1 (numpy semantics): recompute dims where any input is 0.
  for (const Shape* s : shapes) {
    size_t off = rank - s->size();
    for (size_t i = 0; i < s->size(); ++i)
      if ((*s)[i] == 0) out[off + i] = 0;
  }
  return out;
}

// Element counts before and after `axis`: a tensor viewed as [outer, shape[axis], inner].
struct OuterInner {
  int64_t outer, inner;
};
inline OuterInner outer_inner(const Shape& shape, int64_t axis) {
  OuterInner r{1, 1};
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    if (d < axis) r.outer *= shape[d];
    if (d > axis) r.inner *= shape[d];
  }
  return r;
}

// Row-major strides of `shape` (in elements).
inline std::vector<int64_t> contiguous_strides(const Shape& shape) {
  std::vector<int64_t> st(shape.size(), 1);
  for (int64_t i = static_cast<int64_t>(shape.size()) - 2; i >= 0; --i) st[i] = st[i + 1] * shape[i + 1];
  return st;
}

// Strides to read a tensor of shape `in` as if broadcast to `out` (0 on broadcast dims).
inline std::vector<int64_t> broadcast_strides(const Shape& in, const Shape& out) {
  std::vector<int64_t> st(out.size(), 0);
  std::vector<int64_t> cs = contiguous_strides(in);
  size_t off = out.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i) st[off + i] = in[i] == 1 ? 0 : cs[i];
  return st;
}

// Calls f(T{}) with T the C++ integer type of `dt`; other types raise InvalidArgument.
template <typename F>
auto dispatch_integer(DType dt, const Node& node, F&& f) {
  switch (dt) {
    case DType::kI64: return f(int64_t{});
    case DType::kI32: return f(int32_t{});
    case DType::kI16: return f(int16_t{});
    case DType::kI8: return f(int8_t{});
    case DType::kU8: return f(uint8_t{});
    case DType::kU16: return f(uint16_t{});
    case DType::kU32: return f(uint32_t{});
    case DType::kU64: return f(uint64_t{});
    default:
      fail(ErrorKind::kInvalidArgument, node.label(), ": element type ", dtype_name(dt),
           " is not an integer type");
  }
}

// Calls f(T{}) with T the C++ type of `dt`, for the types numeric kernels support.
template <typename F>
auto dispatch_numeric(DType dt, const Node& node, F&& f) {
  switch (dt) {
    case DType::kF32: return f(float{});
    case DType::kF64: return f(double{});
    case DType::kI64: case DType::kI32: case DType::kI16: case DType::kI8:
    case DType::kU8: case DType::kU16: case DType::kU32: case DType::kU64:
      return dispatch_integer(dt, node, std::forward<F>(f));
    default: fail(ErrorKind::kUnsupportedOp, node.label(), ": element type ", dtype_name(dt), " is not supported");
  }
}

// Like dispatch_numeric plus bool; for ops that only move bytes around, dispatch on size instead.
template <typename F>
auto dispatch_all(DType dt, const Node& node, F&& f) {
  if (dt == DType::kBool) return f(bool{});
  return dispatch_numeric(dt, node, std::forward<F>(f));
}

// The value of a shape-like input (axes, pads, shape, repeats) as int64s: from an int32/int64
// tensor; an omitted input gives `dflt`.
inline std::vector<int64_t> read_ints(const Tensor* t, std::vector<int64_t> dflt = {}) {
  return t ? tensor_to_i64(*t) : dflt;
}

// Copies `n` bytes from a tensor into a new heap tensor of another shape: for ops that produce a
// copy (e.g. when the input is a graph input that must not be aliased by an output).
inline void copy_bytes(void* dst, const void* src, size_t n) {
  if (n) std::memcpy(dst, src, n);
}

}  // namespace runnx
