// Helpers shared by the GEMM, convolution and attention test bindings: read a launcher's
// arguments from a Python dict ("spec") and move optional arrays to the device.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>  // std::vector arguments from Python lists

#include <optional>
#include <string>

#include "cuda/kernels/epilogue.h"
#include "cuda/testing/device_array.h"

namespace runnx::cuda::testing {

template <typename T>
T spec_get(const pybind11::dict& spec, const char* key, T fallback) {
  if (!spec.contains(key) || spec[key].is_none()) return fallback;
  return spec[key].cast<T>();
}

// The array under `key` on the device, or an empty DeviceArray when absent/None.
inline DeviceArray spec_array(const pybind11::dict& spec, const char* key) {
  if (!spec.contains(key) || spec[key].is_none()) return DeviceArray();
  return to_device(spec[key].cast<pybind11::array>());
}

inline const void* ptr_or_null(const DeviceArray& d) { return d.bytes() ? d.as<void>() : nullptr; }

// Epilogue from spec keys alpha, beta, act (int, Activation's value), p0, p1, ldr,
// residual_batch_stride; bias / residual point into `bias` / `residual` (kept alive by the caller).
inline Epilogue spec_epilogue(const pybind11::dict& spec, const DeviceArray& bias, const DeviceArray& residual) {
  Epilogue e;
  e.alpha = spec_get<float>(spec, "alpha", 1.f);
  e.beta = spec_get<float>(spec, "beta", 1.f);
  e.act = static_cast<Activation>(spec_get<int>(spec, "act", 0));
  e.p0 = spec_get<float>(spec, "p0", 0.f);
  e.p1 = spec_get<float>(spec, "p1", 0.f);
  e.bias = ptr_or_null(bias);
  e.residual = ptr_or_null(residual);
  e.ldr = spec_get<int64_t>(spec, "ldr", 0);
  e.residual_batch_stride = spec_get<int64_t>(spec, "residual_batch_stride", 0);
  return e;
}

// Runs `launch(stream)` `iters` times after two warm-up runs; milliseconds per run (cudaEvents).
template <typename Launch>
double time_launches(int iters, Launch&& launch) {
  cudaEvent_t start, stop;
  check_cuda(cudaEventCreate(&start), "cudaEventCreate");
  check_cuda(cudaEventCreate(&stop), "cudaEventCreate");
  for (int i = 0; i < 2; ++i) launch();
  check_launch("warm-up");
  check_cuda(cudaEventRecord(start, nullptr), "cudaEventRecord");
  for (int i = 0; i < iters; ++i) launch();
  check_cuda(cudaEventRecord(stop, nullptr), "cudaEventRecord");
  check_cuda(cudaEventSynchronize(stop), "cudaEventSynchronize");
  check_launch("timed launches");
  float ms = 0.f;
  check_cuda(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return static_cast<double>(ms) / (iters > 0 ? iters : 1);
}

}  // namespace runnx::cuda::testing
