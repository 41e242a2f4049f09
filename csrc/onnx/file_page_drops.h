// Dropping resident pages of weights nothing reads any more (MADV_DONTNEED). Each call flushes
// the TLB, and while other threads of the process run (session creation builds kernels on
// several) it interrupts each of their CPUs: ~18 us a call on the build VM against ~6 us alone,
// and MobileNetV2's build made ~50 of them. A FilePageDrops gathers the drops that fall inside
// one file mapping on the threads that joined it and makes them when it is flushed (at the
// latest when it ends), merged into as few calls as the byte ranges allow. A range of >= 1 MiB
// bypasses it (dropped at once, where it is released: its pages outweigh the call's cost).
#pragma once
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
  std::mutex mu_;
  std::vector<std::pair<const uint8_t*, const uint8_t*>> ranges_;
  int64_t calls_ = 0;
};

}  // namespace runnx
