#include "serving/wake_signal.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <ctime>

namespace runnx {

static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t), "futex word must be a plain int");

void WakeSignal::wait(uint32_t seen, Clock::time_point deadline) {
  auto* word = reinterpret_cast<uint32_t*>(&epoch_);
  if (deadline == Clock::time_point::max()) {
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, seen, nullptr, nullptr, 0);
    return;
  }
  auto left = deadline - Clock::now();
  if (left <= Clock::duration::zero()) return;
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
  timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
  // Returns on a wake, a changed epoch, the timeout or a signal; callers re-check in every case.
  syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, seen, &ts, nullptr, 0);
}

void WakeSignal::wake() {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&epoch_), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}

}  // namespace runnx
