// RUNNX_CUDA_SIMPLE=1 makes every cudaops launcher take its plain, obviously indexed kernel
// instead of the fast path (vectorised, tiled, warp-per-row), so a GPU run can compare the two.
#pragma once

namespace runnx::cuda {

bool use_simple_kernels();
// Tests flip it to run both paths in one process (not thread-safe against running launchers).
void set_use_simple_kernels(bool simple);

}  // namespace runnx::cuda
