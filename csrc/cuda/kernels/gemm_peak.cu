// The tensor-core peak probe (gemm_peak.h).
#include "cuda/kernels/gemm_common.cuh"
#include "cuda/kernels/gemm_peak.h"

namespace runnx::cuda {

namespace {

template <bool kInt8>
__global__ void __launch_bounds__(kPeakThreads) mma_peak_kernel(int iters, void* sink) {
  using Acc = typename std::conditional<kInt8, int32_t, float>::type;
  // Operands depend on the thread so the compiler cannot fold them; their values do not matter.
  const uint32_t seed = threadIdx.x * 0x9E3779B9u;
  const uint32_t a[4] = {seed & 0x3c003c00u, seed ^ 0x3c003c00u, seed | 0x3c00u, 0x3c003c00u};
  const uint32_t b[2] = {seed & 0x3c003c00u, 0x3c003c00u};
  Acc acc[kPeakChains][4] = {};
  for (int it = 0; it < iters; ++it) {
#pragma unroll
    for (int c = 0; c < kPeakChains; ++c) {
      if constexpr (kInt8)
        mma_s8_16832(acc[c], a, b);
      else
        mma_f16_16816(acc[c], a, b);
    }
  }
  Acc total = 0;
#pragma unroll
  for (int c = 0; c < kPeakChains; ++c) total += acc[c][0] + acc[c][1] + acc[c][2] + acc[c][3];
  if (threadIdx.x == 0) static_cast<Acc*>(sink)[blockIdx.x] = total;
}

}  // namespace

void launch_mma_peak_f16(int blocks, int iters, float* sink, cudaStream_t stream) {
  if (blocks > 0) mma_peak_kernel<false><<<blocks, kPeakThreads, 0, stream>>>(iters, sink);
}

void launch_mma_peak_s8(int blocks, int iters, int32_t* sink, cudaStream_t stream) {
  if (blocks > 0) mma_peak_kernel<true><<<blocks, kPeakThreads, 0, stream>>>(iters, sink);
}

}  // namespace runnx::cuda
