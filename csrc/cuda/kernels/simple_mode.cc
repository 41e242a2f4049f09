#include "cuda/kernels/simple_mode.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace runnx::cuda {
namespace {

std::atomic<bool>& simple_flag() {
  static std::atomic<bool> flag = [] {
    const char* v = std::getenv("RUNNX_CUDA_SIMPLE");
    return v != nullptr && std::strcmp(v, "") != 0 && std::strcmp(v, "0") != 0;
  }();
  return flag;
}

}  // namespace

bool use_simple_kernels() { return simple_flag().load(std::memory_order_relaxed); }
void set_use_simple_kernels(bool simple) { simple_flag().store(simple, std::memory_order_relaxed); }

bool use_32bit_index(int64_t count) { return count <= static_cast<int64_t>(UINT32_MAX) && !use_simple_kernels(); }

}  // namespace runnx::cuda
