// A tensor-core peak probe for bench/gpu_check.sh: every warp runs `iters` rounds of 8
// independent mma.sync (fp16 m16n8k16 or int8 m16n8k32) on register operands, so the measured
// rate is the tensor cores' issue limit with no memory traffic. `sink` (one float/int per block)
// receives a result so the work cannot be optimised away.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace runnx::cuda {

constexpr int kPeakThreads = 256;
constexpr int kPeakChains = 8;

// Multiply-adds performed: blocks * (kPeakThreads / 32) * iters * kPeakChains * (16*8*16 or 16*8*32).
void launch_mma_peak_f16(int blocks, int iters, float* sink, cudaStream_t stream);
void launch_mma_peak_s8(int blocks, int iters, int32_t* sink, cudaStream_t stream);

}  // namespace runnx::cuda
