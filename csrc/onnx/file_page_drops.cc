#include "onnx/file_page_drops.h"

#include <sys/mman.h>

#include <algorithm>

namespace runnx {

namespace {

constexpr uintptr_t kPage = 4096;
constexpr size_t kDropAtOnceBytes = size_t{1} << 20;

thread_local FilePageDrops* current_drops = nullptr;

void drop_now(const uint8_t* p, size_t n) {
  const uintptr_t lo = (reinterpret_cast<uintptr_t>(p) + kPage - 1) & ~(kPage - 1);
  const uintptr_t hi = (reinterpret_cast<uintptr_t>(p) + n) & ~(kPage - 1);
  if (hi > lo) ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
}

}  // namespace

void drop_file_pages(const uint8_t* p, size_t n) {
  if (n == 0) return;
  if (current_drops && current_drops->add(p, n)) return;
  drop_now(p, n);
}

bool FilePageDrops::add(const uint8_t* p, size_t n) {
  // A large range pays its own call's cost many times over in pages: dropped where it is
  // released (on the build thread that packed it, in parallel with the others), unless the file
  // is still to be mapped in.
  if (!lo_ || p < lo_ || p + n > hi_) return false;
  if (n >= kDropAtOnceBytes && !hold_large_.load(std::memory_order_relaxed)) return false;
  std::lock_guard<std::mutex> lk(mu_);
  ranges_.emplace_back(p, p + n);
  return true;
}

void FilePageDrops::flush() {
  std::vector<std::pair<const uint8_t*, const uint8_t*>> ranges;
  {
    std::lock_guard<std::mutex> lk(mu_);
    ranges.swap(ranges_);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 0; i < ranges.size();) {
    const uint8_t* begin = ranges[i].first;
    const uint8_t* end = ranges[i].second;
    for (++i; i < ranges.size() && ranges[i].first < end + kPage; ++i) end = std::max(end, ranges[i].second);
    drop_now(begin, static_cast<size_t>(end - begin));
    calls_++;
  }
}

FilePageDrops::Join::Join(FilePageDrops* drops) : saved_(current_drops) { current_drops = drops; }
FilePageDrops::Join::~Join() { current_drops = saved_; }

}  // namespace runnx
