// Work spread over a few threads made for one call (session creation: packing and folding
// weights), for code that runs before a session has its pool and must leave no thread behind.
#pragma once
#include <atomic>
#include <cstddef>
#include <functional>
#include <thread>
#include <vector>

namespace runnx {

// Calls item(j) for every j in [0, n), each once, on the caller and `threads` - 1 threads started
// here and joined before returning; items are taken in order from a shared counter. `item` must
// not throw when threads > 1 (catch inside and report after).
inline void run_spread(size_t n, int threads, const std::function<void(size_t)>& item) {
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t j; (j = next.fetch_add(1)) < n;) item(j);
  };
  std::vector<std::thread> helpers;
  for (int t = 1; t < threads && static_cast<size_t>(t) < n; ++t) helpers.emplace_back(work);
  work();
  for (std::thread& h : helpers) h.join();
}

}  // namespace runnx
