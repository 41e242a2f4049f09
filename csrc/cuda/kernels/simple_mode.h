// RUNNX_CUDA_SIMPLE=1 makes every cudaops launcher take its plain, obviously indexed kernel
// instead of the fast path (vectorised, tiled, warp-per-row), so a GPU run can compare the two.
#pragma once
#include <cstdint>

namespace runnx::cuda {

bool use_simple_kernels();
// Tests flip it to run both paths in one process (not thread-safe against running launchers).
void set_use_simple_kernels(bool simple);

// Whether a kernel over `count` elements may split indices with 32-bit division (count < 2^32),
// else 64-bit; the simple mode always takes 64-bit, so tests cover both.
bool use_32bit_index(int64_t count);

}  // namespace runnx::cuda
