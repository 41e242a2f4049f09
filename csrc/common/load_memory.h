// Memory for buffers made once at session creation and kept while the session lives (packed and
// folded weights). Filling fresh memory costs a page fault per 4 KiB page (~2.4 us each on the
// build VM). With RUNNX_HUGE_PAGES=1 a block of at least kHugeBlockMin bytes is mapped 2 MiB-aligned
// and advised MADV_HUGEPAGE (transparent huge pages in `madvise` mode), so it faults once per
// 2 MiB. That is off by default: on the build VM fresh huge pages cost more than the faults they
// save once a process needs many of them (ResNet-50 created in a fresh process: 190 -> 350-430 ms
// CPU, almost all in the kernel zeroing the 2 MiB pages), though a session re-created in the same
// process gains ~10%. Where the advice is refused the block keeps 4 KiB pages; where mapping fails
// it comes from malloc. Smaller blocks, and all blocks by default, come from malloc. The mapping is
// exactly the block's pages (no slack the kernel could fill later), so the resident size is what
// the block holds. A malloc block of >= 64 KiB on fresh pages (its first or last page not yet
// mapped in) is faulted in with one MADV_POPULATE_WRITE, ~25% cheaper than a fault per page.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

namespace runnx {

inline constexpr size_t kHugePageBytes = size_t{2} << 20;
inline constexpr size_t kHugeBlockMin = kHugePageBytes;

// A 64-byte aligned, uninitialised block of `bytes` (at least 1) that frees itself with its last
// owner. Throws ResourceExhausted when no memory is left.
std::shared_ptr<void> alloc_load_block(size_t bytes);
// The same as floats.
std::shared_ptr<float> alloc_load_floats(int64_t n);

// Marks the scope of this thread as building a session (kernel construction), so that buffers
// shared code makes there (packed weights: gemm's pack_b_f32 / pack_a_f32) are load blocks, while
// the same code called per run (attention packs K^T per task) keeps malloc's reuse.
class LoadMemoryScope {
 public:
  LoadMemoryScope();
  ~LoadMemoryScope();
  LoadMemoryScope(const LoadMemoryScope&) = delete;
};
// `n` floats, 64-byte aligned: a load block inside a LoadMemoryScope, else from malloc.
std::shared_ptr<float> alloc_kept_floats(int64_t n);

// How blocks are made; tests flip it to check each path. kAuto: huge pages from kHugeBlockMin when
// RUNNX_HUGE_PAGES=1, else malloc; kOn: huge pages from kHugeBlockMin; kOff: malloc always;
// kAdviceFails: map as kOn does but treat the advice as refused; kMapFails: treat mmap as failing.
enum class HugePageMode { kAuto, kOn, kOff, kAdviceFails, kMapFails };
void set_huge_page_mode(HugePageMode mode);

struct LoadMemoryStats {
  int64_t huge_blocks = 0;     // blocks mapped and advised
  int64_t advice_refused = 0;  // blocks mapped whose advice failed (4 KiB pages)
  int64_t malloc_blocks = 0;   // blocks from malloc (small, off, or mmap failed)
};
LoadMemoryStats load_memory_stats();

}  // namespace runnx
