#include "cuda/device_memory.h"

#include <algorithm>
#include <cstring>

namespace runnx::cuda {

bool is_sticky(cudaError_t err) {
  switch (err) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorHardwareStackError:
    case cudaErrorAssert:
    case cudaErrorLaunchTimeout:
    case cudaErrorECCUncorrectable:
      return true;
    default:
      return false;
  }
}

void check_cuda(cudaError_t err, const std::string& what) {
  if (err == cudaSuccess) return;
  std::string msg = what + ": CUDA error " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")";
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // not sticky: clear it so the next call starts clean
    throw Error(ErrorKind::kResourceExhausted, msg);
  }
  if (is_sticky(err))
    throw Error(ErrorKind::kRuntime, msg + "; the CUDA context is now unusable: the device must be reset "
                                           "(restart the process) before it can run anything again");
  cudaGetLastError();
  throw Error(ErrorKind::kRuntime, msg);
}

Tensor device_tensor(DType dtype, Shape shape) {
  Tensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  size_t bytes = t.nbytes();
  void* p = nullptr;
  if (bytes) check_cuda(cudaMalloc(&p, bytes), "cudaMalloc of " + std::to_string(bytes) + " bytes");
  t.data = p;
  t.owner = std::shared_ptr<void>(p, [](void* q) {
    if (q) cudaFree(q);
  });
  return t;
}

Tensor upload(const Tensor& host, cudaStream_t stream) {
  Tensor d = device_tensor(host.dtype, host.shape);
  if (d.nbytes())
    check_cuda(cudaMemcpyAsync(d.data, host.data, d.nbytes(), cudaMemcpyHostToDevice, stream), "uploading a constant");
  return d;
}

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes_) check_cuda(cudaMalloc(&data_, bytes_), "cudaMalloc of " + std::to_string(bytes_) + " bytes");
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  std::swap(data_, o.data_);
  std::swap(bytes_, o.bytes_);
  return *this;
}

DeviceBuffer::~DeviceBuffer() {
  if (data_) cudaFree(data_);
}

PinnedStaging::~PinnedStaging() {
  if (data_) cudaFreeHost(data_);
}

void* PinnedStaging::take(size_t bytes, cudaStream_t stream) {
  constexpr size_t kAlign = 256;
  size_t need = (bytes + kAlign - 1) / kAlign * kAlign;
  if (used_ + need > capacity_) {
    // Copies in flight may still read the old buffer: wait for them before replacing it.
    check_cuda(cudaStreamSynchronize(stream), "waiting for host copies");
    if (need > capacity_) {
      size_t cap = std::max({need, capacity_ * 2, size_t{1} << 20});
      if (data_) cudaFreeHost(data_);
      data_ = nullptr;
      capacity_ = 0;
      check_cuda(cudaMallocHost(&data_, cap), "cudaMallocHost of " + std::to_string(cap) + " bytes");
      capacity_ = cap;
    }
    used_ = 0;
  }
  void* p = static_cast<uint8_t*>(data_) + used_;
  used_ += need;
  return p;
}

}  // namespace runnx::cuda
