#include "cuda/device.h"

#include <cuda_runtime.h>

#include <mutex>

#include "common/status.h"

namespace runnx::cuda {

namespace {

struct Probe {
  int count = 0;
  std::string reason;
};

// The first call loads the driver through the static runtime; later calls reuse the answer.
const Probe& probe() {
  static const Probe result = [] {
    Probe p;
    cudaError_t err = cudaGetDeviceCount(&p.count);
    if (err != cudaSuccess) {
      p.count = 0;
      p.reason = std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
      cudaGetLastError();  // clear the sticky-free error so later calls start clean
    } else if (p.count == 0) {
      p.reason = "no CUDA device found";
    }
    return p;
  }();
  return result;
}

}  // namespace

int device_count() { return probe().count; }

std::string unavailable_reason() { return probe().reason; }

std::string describe_device(int index) {
  cudaDeviceProp prop{};
  if (index < 0 || index >= device_count() || cudaGetDeviceProperties(&prop, index) != cudaSuccess)
    return "";
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) +
         ", " + std::to_string(prop.totalGlobalMem >> 30) + " GiB)";
}

void launch_self_test_kernel(int* data, int n, cudaStream_t stream);  // device.cu

void self_test(int index) {
  if (index < 0 || index >= device_count())
    throw Error(ErrorKind::kInvalidArgument, "CUDA device " + std::to_string(index) + " does not exist");
  auto check = [](cudaError_t err, const char* what) {
    if (err != cudaSuccess)
      throw Error(ErrorKind::kRuntime,
                  std::string("CUDA self-test: ") + what + " failed: " + cudaGetErrorString(err));
  };
  check(cudaSetDevice(index), "cudaSetDevice");
  constexpr int n = 1000;
  int* device = nullptr;
  check(cudaMalloc(&device, n * sizeof(int)), "cudaMalloc");
  int host[n];
  launch_self_test_kernel(device, n, nullptr);
  cudaError_t launched = cudaGetLastError();
  cudaError_t copied = cudaMemcpy(host, device, sizeof(host), cudaMemcpyDeviceToHost);
  cudaFree(device);
  check(launched, "kernel launch (does this build carry code for the device's architecture?)");
  check(copied, "cudaMemcpy");
  for (int i = 0; i < n; ++i)
    if (host[i] != 3 * i + 1)
      throw Error(ErrorKind::kRuntime, "CUDA self-test: wrong result at " + std::to_string(i));
}

}  // namespace runnx::cuda
