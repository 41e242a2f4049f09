// Test-only helpers for runnx._C.cuda._testing: move numpy arrays to the device and back so a
// kernel launcher can be called directly from a test and compared with the CPU path.
#pragma once
#include <cuda_runtime.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>  // std::vector arguments (shapes, axes, pads) from Python lists

#include <string>
#include <vector>

#include "common/status.h"

namespace runnx::cuda::testing {

inline void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw Error(ErrorKind::kRuntime, std::string(what) + ": " + cudaGetErrorString(err));
}

// Owns one device allocation. Moves only.
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(size_t bytes) : bytes_(bytes) {
    if (bytes_) check_cuda(cudaMalloc(&data_, bytes_), "cudaMalloc");
  }
  DeviceArray(DeviceArray&& o) noexcept : data_(o.data_), bytes_(o.bytes_) { o.data_ = nullptr; o.bytes_ = 0; }
  DeviceArray& operator=(DeviceArray&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  ~DeviceArray() { if (data_) cudaFree(data_); }

  template <typename T>
  T* as() const { return static_cast<T*>(data_); }
  size_t bytes() const { return bytes_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// Copies a C-contiguous numpy array (any dtype; fp16 arrives as numpy float16 == __half bits).
inline DeviceArray to_device(const pybind11::array& host) {
  pybind11::array contiguous = pybind11::array::ensure(host, pybind11::array::c_style);
  DeviceArray d(contiguous.nbytes());
  if (d.bytes())
    check_cuda(cudaMemcpy(d.as<void>(), contiguous.data(), d.bytes(), cudaMemcpyHostToDevice), "cudaMemcpy H2D");
  return d;
}

// A fresh numpy array of `shape` and `dtype` filled from the device (synchronises the device
// first so launch and execution errors surface here, not in a later test).
inline pybind11::array to_host(const DeviceArray& d, const std::vector<pybind11::ssize_t>& shape,
                               const pybind11::dtype& dtype) {
  check_cuda(cudaDeviceSynchronize(), "kernel execution");
  pybind11::array out(dtype, shape);
  if (static_cast<size_t>(out.nbytes()) > d.bytes())
    throw Error(ErrorKind::kInvalidArgument, "to_host: device buffer smaller than the requested array");
  if (out.nbytes())
    check_cuda(cudaMemcpy(out.mutable_data(), d.as<void>(), out.nbytes(), cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
  return out;
}

// After a launcher: raises with the launch error, if any.
inline void check_launch(const char* kernel) { check_cuda(cudaGetLastError(), kernel); }

}  // namespace runnx::cuda::testing
