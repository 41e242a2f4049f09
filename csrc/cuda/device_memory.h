// Device and pinned host memory for the CUDA executor: plain cudaMalloc (never managed memory),
// errors turned into runnx errors that say what to do.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "common/status.h"
#include "ir/tensor.h"

namespace runnx::cuda {

// Errors after which the CUDA context is unusable until the process ends (illegal address,
// launch failure, ...): every later call fails the same way.
bool is_sticky(cudaError_t err);
// Throws for err != cudaSuccess: ResourceExhausted for out-of-memory, RuntimeFailure otherwise;
// a sticky error says the device must be reset. `what` names the node or the operation.
void check_cuda(cudaError_t err, const std::string& what);

// A tensor in fresh device memory on the current device (freed when the last copy is dropped).
Tensor device_tensor(DType dtype, Shape shape);
// A device copy of a host tensor, enqueued on `stream` from pageable memory (load time only).
Tensor upload(const Tensor& host, cudaStream_t stream);

// One device allocation, moved not copied (arenas, scratch, CUDA-graph buffers).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes);
  DeviceBuffer(DeviceBuffer&& o) noexcept { *this = std::move(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  ~DeviceBuffer();
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// Pinned host memory for copies between pageable tensors and the device: each copy in a run takes
// its own range (async copies may still read it), so the buffer only grows between runs' syncs.
class PinnedStaging {
 public:
  PinnedStaging() = default;
  PinnedStaging(const PinnedStaging&) = delete;
  ~PinnedStaging();
  // A range of `bytes`; when the buffer is full, synchronises `stream` and starts over (larger).
  void* take(size_t bytes, cudaStream_t stream);
  void reset() { used_ = 0; }

 private:
  void* data_ = nullptr;
  size_t capacity_ = 0, used_ = 0;
};

}  // namespace runnx::cuda
