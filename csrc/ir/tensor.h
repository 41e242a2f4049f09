// A dense, contiguous, row-major tensor view. `owner` keeps the bytes alive: a heap block, the
// memory-mapped model file (initializers used in place) or a run's arena.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/dtype.h"

namespace runnx {

using Shape = std::vector<int64_t>;

// Element count; throws InvalidArgument on a negative dim or an overflowing product.
int64_t shape_numel(const Shape& s);
std::string shape_str(const Shape& s);

// Upper bound on one tensor's bytes (a hostile file must not make us allocate without bound).
constexpr int64_t kMaxTensorBytes = int64_t{1} << 36;  // 64 GiB

struct Tensor {
  DType dtype = DType::kUndefined;
  Shape shape;
  void* data = nullptr;
  std::shared_ptr<void> owner;

  int64_t numel() const { return shape_numel(shape); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  int64_t rank() const { return static_cast<int64_t>(shape.size()); }
  template <typename T>
  T* ptr() const { return static_cast<T*>(data); }

  // A fresh 64-byte aligned heap tensor (contents uninitialised).
  static Tensor empty(DType dtype, Shape shape);
  // A copy of `src` that owns its bytes.
  static Tensor clone(const Tensor& src);
  // A tensor that shares `src`'s bytes under another shape (Reshape, Squeeze, Flatten, ...).
  Tensor view(Shape new_shape) const;
};

// Reads an integer tensor (int32/int64) as int64 values (shape-like inputs: axes, pads, shape).
std::vector<int64_t> tensor_to_i64(const Tensor& t);
// Reads a float-like or integer tensor as doubles (scalar attributes that became inputs).
std::vector<double> tensor_to_f64(const Tensor& t);

}  // namespace runnx
