// Work spread over a few threads made for one call (session creation: packing and folding
// weights), for code that runs before a session has its pool and must leave no thread behind.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace runnx {

// Bytes of load-time work (weights to pack or fold) from which run_spread's threads pay off:
// below it a thread's start costs more than it saves.
inline constexpr size_t kSpreadFromBytes = size_t{2} << 20;

// Calls item(j) for every j in [0, n), each once, on the caller and up to `threads` - 1 threads
// started here (fewer when the machine has fewer CPUs or the system refuses a thread) and joined
// before returning; items are taken in order from a shared counter. The first exception an item
// throws stops handing out items and is rethrown here once every thread has joined. Returns the
// number of threads that took part.
inline int run_spread(size_t n, int threads, const std::function<void(size_t)>& item) {
  std::atomic<size_t> next{0};
  std::mutex mu;
  std::exception_ptr error;
  auto work = [&] {
    for (size_t j; (j = next.fetch_add(1)) < n;) {
      try {
        item(j);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu);
        if (!error) error = std::current_exception();
        next.store(n);
      }
    }
  };
  // hardware_concurrency() reads a /sys file each call: only asked when there is a choice.
  if (threads > 1) threads = std::min<int>(threads, std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::thread> helpers;
  helpers.reserve(threads);  // a vector that grew could not be destroyed with threads running
  for (int t = 1; t < threads && static_cast<size_t>(t) < n; ++t) {
    try {
      helpers.emplace_back(work);
    } catch (const std::system_error&) {
      break;  // no more threads (a pids limit): the ones started and the caller cover every item
    }
  }
  work();
  for (std::thread& h : helpers) h.join();
  if (error) std::rethrow_exception(error);
  return 1 + static_cast<int>(helpers.size());
}

}  // namespace runnx
