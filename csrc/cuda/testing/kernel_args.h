// Test-only glue shared by cudaops' *_testing.cc files: numpy dtype <-> DType, shapes, and device
// copies placed at an element offset (to exercise the unaligned, non-vectorised paths).
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>  // std::vector arguments (shapes, axes, pads) from Python lists

#include <cstdint>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "common/status.h"
#include "cuda/testing/device_array.h"

namespace runnx::cuda::testing {

inline DType dtype_of(const pybind11::dtype& d) {
  const char kind = d.kind();
  const auto size = d.itemsize();
  if (kind == 'f') return size == 4 ? DType::kF32 : size == 2 ? DType::kF16 : DType::kF64;
  if (kind == 'i') return size == 8 ? DType::kI64 : size == 4 ? DType::kI32 : size == 1 ? DType::kI8 : DType::kI16;
  if (kind == 'u' && size == 1) return DType::kU8;
  if (kind == 'b') return DType::kBool;
  throw Error(ErrorKind::kInvalidArgument, "testing: unsupported numpy dtype");
}
inline DType dtype_of(const pybind11::array& a) { return dtype_of(a.dtype()); }

inline pybind11::dtype numpy_dtype(DType t) {
  switch (t) {
    case DType::kF32: return pybind11::dtype("float32");
    case DType::kF16: return pybind11::dtype("float16");
    case DType::kF64: return pybind11::dtype("float64");
    case DType::kI64: return pybind11::dtype("int64");
    case DType::kI32: return pybind11::dtype("int32");
    case DType::kI8: return pybind11::dtype("int8");
    case DType::kU8: return pybind11::dtype("uint8");
    case DType::kBool: return pybind11::dtype("bool");
    default: throw Error(ErrorKind::kInvalidArgument, "testing: no numpy dtype for " + dtype_name(t));
  }
}

inline std::vector<int64_t> dims_of(const pybind11::array& a) {
  return std::vector<int64_t>(a.shape(), a.shape() + a.ndim());
}
inline std::vector<pybind11::ssize_t> py_shape(const std::vector<int64_t>& dims) {
  return std::vector<pybind11::ssize_t>(dims.begin(), dims.end());
}
inline int64_t numel(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

// A device copy of `host` that starts `offset` elements into its allocation (offset 1 breaks
// every vector alignment), plus a device output of `bytes` at the same offset.
struct OffsetArray {
  DeviceArray storage;
  size_t offset_bytes = 0;
  template <typename T = void>
  T* ptr() const { return reinterpret_cast<T*>(storage.as<char>() + offset_bytes); }
};

inline OffsetArray to_device_at(const pybind11::array& host, int64_t offset) {
  pybind11::array c = pybind11::array::ensure(host, pybind11::array::c_style);
  OffsetArray d;
  d.offset_bytes = static_cast<size_t>(offset) * c.itemsize();
  d.storage = DeviceArray(d.offset_bytes + c.nbytes() + 1);
  if (c.nbytes())
    check_cuda(cudaMemcpy(d.ptr<void>(), c.data(), c.nbytes(), cudaMemcpyHostToDevice), "cudaMemcpy H2D");
  return d;
}

inline OffsetArray device_output(const std::vector<int64_t>& dims, DType t, int64_t offset) {
  OffsetArray d;
  d.offset_bytes = static_cast<size_t>(offset) * dtype_size(t);
  d.storage = DeviceArray(d.offset_bytes + numel(dims) * dtype_size(t) + 1);
  return d;
}

// Synchronises, surfaces launch/execution errors, and copies `dims` elements of `t` back.
inline pybind11::array to_host_at(const OffsetArray& d, const std::vector<int64_t>& dims, DType t) {
  check_launch("kernel launch");
  check_cuda(cudaDeviceSynchronize(), "kernel execution");
  pybind11::array out(numpy_dtype(t), py_shape(dims));
  if (out.nbytes())
    check_cuda(cudaMemcpy(out.mutable_data(), d.ptr<void>(), out.nbytes(), cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
  return out;
}

}  // namespace runnx::cuda::testing
