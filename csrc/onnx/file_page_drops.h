// Dropping resident pages of weights nothing reads any more (MADV_DONTNEED). Each call flushes
// the TLB, and while other threads of the process run (session creation builds kernels on
// several) it interrupts each of their CPUs: ~18 us a call on the build VM against ~6 us alone,
// and MobileNetV2's build made ~50 of them. A FilePageDrops gathers the drops that fall inside
// one file mapping on the threads that joined it and makes them when it is flushed (at the
// latest when it ends), merged into as few calls as the byte ranges allow. A range of >= 1 MiB
// bypasses it (dropped at once, where it is released: its pages outweigh the call's cost), except
// while large drops are held: before the session has mapped the file in, which would undo them.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

namespace runnx {

// Drops the whole pages inside [p, p + n): into the batch this thread joined when they lie in its
// mapping, else at once. Heap pages read back as zeros afterwards: only for bytes no one reads.
void drop_file_pages(const uint8_t* p, size_t n);

class FilePageDrops {
 public:
  // Batches drops inside the read-only file mapping [mapped, mapped + size) (nothing when null).
  FilePageDrops(const uint8_t* mapped, size_t size) : lo_(mapped), hi_(mapped ? mapped + size : mapped) {}
  ~FilePageDrops() { flush(); }
  FilePageDrops(const FilePageDrops&) = delete;
  FilePageDrops& operator=(const FilePageDrops&) = delete;

  // Drops what was gathered. Ranges less than a page apart are merged: the bytes between them
  // (protobuf framing, small tensors) are clean file pages too, which a later read faults back.
  void flush();
  // Calls made (for tests).
  int64_t calls() const { return calls_; }
  // While held, ranges of >= 1 MiB are gathered too (set before the file is mapped in whole).
  void hold_large(bool hold) { hold_large_.store(hold, std::memory_order_relaxed); }

  // Makes `drops` (may be null) the batch of this thread's drops for the scope.
  class Join {
   public:
    explicit Join(FilePageDrops* drops);
    ~Join();
    Join(const Join&) = delete;

   private:
    FilePageDrops* saved_;
  };

 private:
  friend void drop_file_pages(const uint8_t* p, size_t n);
  bool add(const uint8_t* p, size_t n);  // false: outside the mapping

  const uint8_t* lo_;
  const uint8_t* hi_;
  std::atomic<bool> hold_large_{false};
  std::mutex mu_;
  std::vector<std::pair<const uint8_t*, const uint8_t*>> ranges_;
  int64_t calls_ = 0;
};

}  // namespace runnx
