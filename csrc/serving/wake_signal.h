// An event count: lets consumers sleep until producers publish something, while producers stay
// lock-free (one atomic add per publish, a futex syscall only when someone sleeps).
//
//   consumer: uint32_t e = sig.prepare();  if (!work_available()) sig.wait(e, deadline);  sig.done();
//   producer: publish(); sig.notify_all();
//
// No lost wake-up: the consumer reads the epoch before checking for work; a publish after that
// check bumps the epoch, and futex_wait refuses to sleep on a changed value.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>

namespace runnx {

class WakeSignal {
 public:
  using Clock = std::chrono::steady_clock;

  uint32_t prepare() {
    waiters_.fetch_add(1, std::memory_order_seq_cst);
    return epoch_.load(std::memory_order_seq_cst);
  }
  // Sleeps until notified after prepare() or until `deadline` (Clock::time_point::max(): none).
  void wait(uint32_t seen, Clock::time_point deadline);
  void done() { waiters_.fetch_sub(1, std::memory_order_seq_cst); }

  void notify_all() {
    epoch_.fetch_add(1, std::memory_order_seq_cst);
    if (waiters_.load(std::memory_order_seq_cst) > 0) wake();
  }

 private:
  void wake();
  alignas(64) std::atomic<uint32_t> epoch_{0};
  alignas(64) std::atomic<int> waiters_{0};
};

}  // namespace runnx
