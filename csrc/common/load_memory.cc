#include "common/load_memory.h"

#include <sys/mman.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "common/status.h"

namespace runnx {

namespace {

std::atomic<int> mode_{static_cast<int>(HugePageMode::kAuto)};
std::atomic<int64_t> huge_blocks{0}, advice_refused{0}, malloc_blocks{0};

bool huge_pages_asked() {
  static const bool on = [] {
    const char* v = std::getenv("RUNNX_HUGE_PAGES");
    return v && v[0] == '1';
  }();
  return on;
}

constexpr size_t kPage = 4096;
constexpr size_t kPopulateFrom = size_t{64} << 10;  // smaller blocks: a fault or two

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

// `len` bytes (a whole number of pages) starting on a 2 MiB boundary, or nullptr.
void* map_aligned(size_t len, HugePageMode mode) {
  if (mode == HugePageMode::kMapFails) return nullptr;
  void* raw = ::mmap(nullptr, len + kHugePageBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const uintptr_t lo = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t start = round_up(lo, kHugePageBytes);
  const uintptr_t end = lo + len + kHugePageBytes;
  if (start > lo) ::munmap(raw, start - lo);
  if (end > start + len) ::munmap(reinterpret_cast<void*>(start + len), end - (start + len));
  return reinterpret_cast<void*>(start);
}

std::shared_ptr<void> malloc_block(size_t bytes) {
  void* p = std::aligned_alloc(64, round_up(bytes ? bytes : 1, 64));
  RUNNX_CHECK(p, kResourceExhausted, "out of memory allocating ", bytes, " bytes");
  malloc_blocks++;
  return std::shared_ptr<void>(p, std::free);
}

// True when the page holding `p` is not mapped in (never touched, or given back by free()).
bool fresh_page(uintptr_t p) {
  unsigned char resident = 1;
  return ::mincore(reinterpret_cast<void*>(p & ~(kPage - 1)), kPage, &resident) == 0 && !(resident & 1);
}

// A block malloc made from fresh pages (a grown heap, or pages free() gave back) is faulted in
// with one MADV_POPULATE_WRITE before it is filled rather than a fault per 4 KiB page as it is
// written: MobileNetV2 created on fresh pages (~3700 faults), 11.4 -> 10.1 ms. A block of pages
// malloc already holds (its first and last page resident) is left alone: walking them costs
// ~0.15 us a page for nothing. A kernel without the advice (before 5.14) faults as before.
void populate_if_fresh(void* block, size_t bytes) {
  if (bytes < kPopulateFrom) return;
  const uintptr_t lo = round_up(reinterpret_cast<uintptr_t>(block), kPage);
  const uintptr_t hi = (reinterpret_cast<uintptr_t>(block) + bytes) & ~(kPage - 1);
  if (hi <= lo || (!fresh_page(lo) && !fresh_page(hi - kPage))) return;
#ifndef MADV_POPULATE_WRITE
  constexpr int MADV_POPULATE_WRITE = 23;  // Linux 5.14; older headers lack the name
#endif
  ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_POPULATE_WRITE);
}

}  // namespace

void set_huge_page_mode(HugePageMode mode) { mode_ = static_cast<int>(mode); }

std::shared_ptr<void> alloc_load_block(size_t bytes) {
  const auto mode = static_cast<HugePageMode>(mode_.load());
  const bool huge = mode == HugePageMode::kAuto ? huge_pages_asked() : mode != HugePageMode::kOff;
  if (bytes < kHugeBlockMin || !huge) {
    std::shared_ptr<void> block = malloc_block(bytes);
    populate_if_fresh(block.get(), bytes);
    return block;
  }
  const size_t len = round_up(bytes, kPage);
  void* p = map_aligned(len, mode);
  if (!p) return malloc_block(bytes);
  const bool advised = mode != HugePageMode::kAdviceFails && ::madvise(p, len, MADV_HUGEPAGE) == 0;
  (advised ? huge_blocks : advice_refused)++;
  return std::shared_ptr<void>(p, [len](void* q) { ::munmap(q, len); });
}

std::shared_ptr<float> alloc_load_floats(int64_t n) {
  std::shared_ptr<void> block = alloc_load_block(static_cast<size_t>(n > 0 ? n : 1) * sizeof(float));
  return std::shared_ptr<float>(block, static_cast<float*>(block.get()));
}

namespace {
thread_local int load_scope_depth = 0;
}  // namespace

LoadMemoryScope::LoadMemoryScope() { ++load_scope_depth; }
LoadMemoryScope::~LoadMemoryScope() { --load_scope_depth; }

std::shared_ptr<float> alloc_kept_floats(int64_t n) {
  if (load_scope_depth > 0) return alloc_load_floats(n);
  std::shared_ptr<void> block = malloc_block(static_cast<size_t>(n > 0 ? n : 1) * sizeof(float));
  return std::shared_ptr<float>(block, static_cast<float*>(block.get()));
}

LoadMemoryStats load_memory_stats() { return {huge_blocks.load(), advice_refused.load(), malloc_blocks.load()}; }

}  // namespace runnx
