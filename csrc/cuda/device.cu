// The self-test kernel behind cuda::self_test (device.cc).
#include <cuda_runtime.h>

namespace runnx::cuda {

__global__ void self_test_kernel(int* data, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) data[i] = 3 * i + 1;
}

void launch_self_test_kernel(int* data, int n, cudaStream_t stream) {
  self_test_kernel<<<(n + 255) / 256, 256, 0, stream>>>(data, n);
}

}  // namespace runnx::cuda
