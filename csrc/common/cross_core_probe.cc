#include "common/cross_core_probe.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "common/status.h"

namespace runnx {
namespace {

bool pin_self(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
}

}  // namespace

double cross_core_round_trip_ns(int a, int b, int trips) {
  RUNNX_CHECK(trips > 0, kInvalidArgument, "trips must be positive, got ", trips);
  cpu_set_t allowed;
  RUNNX_CHECK(sched_getaffinity(0, sizeof(allowed), &allowed) == 0, kRuntime, "sched_getaffinity failed");
  RUNNX_CHECK(a != b && a >= 0 && b >= 0 && a < CPU_SETSIZE && b < CPU_SETSIZE && CPU_ISSET(a, &allowed) &&
                  CPU_ISSET(b, &allowed),
              kInvalidArgument, "cross_core_round_trip_ns needs two different CPUs this process may use, got ", a,
              " and ", b);
  constexpr int kBatches = 16;
  // Odd values: the caller's serve; even: the echo. On a line (and its neighbour) of its own.
  struct alignas(128) Ball {
    std::atomic<int64_t> v{0};
    char pad[120];
  } line;
  std::atomic<int64_t>& ball = line.v;
  // The echo reports whether it is pinned (1) or not (-1) before any trip; the caller aborts the
  // echo if it cannot pin itself. Two unpinned spinners could share one CPU and crawl.
  struct alignas(128) Flags {
    std::atomic<int> echo_state{0};
    std::atomic<bool> abort{false};
  } flags;
  std::atomic<int>& echo_state = flags.echo_state;
  std::atomic<bool>& abort = flags.abort;
  const int64_t total = int64_t{kBatches} * trips;
  std::thread echo([&] {
    echo_state = pin_self(b) ? 1 : -1;
    for (int64_t i = 0; i < total; ++i) {
      while (ball.load(std::memory_order_acquire) != 2 * i + 1)
        if (abort.load(std::memory_order_relaxed)) return;
      ball.store(2 * i + 2, std::memory_order_release);
    }
  });
  // The calling thread's own mask comes back afterwards (it is the caller's Python thread).
  cpu_set_t mine;
  const bool had_mask = pthread_getaffinity_np(pthread_self(), sizeof(mine), &mine) == 0;
  const bool pinned = pin_self(a);
  while (echo_state.load() == 0) std::this_thread::yield();
  if (!pinned || echo_state.load() < 0) {
    abort = true;
    echo.join();
    if (had_mask) pthread_setaffinity_np(pthread_self(), sizeof(mine), &mine);
    fail(ErrorKind::kRuntime, "could not pin the probe's threads to CPUs ", a, " and ", b);
  }
  std::vector<double> per_trip;
  int64_t k = 0;
  for (int batch = 0; batch < kBatches; ++batch) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < trips; ++i, ++k) {
      ball.store(2 * k + 1, std::memory_order_release);
      while (ball.load(std::memory_order_acquire) != 2 * k + 2) {
      }
    }
    per_trip.push_back(std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() /
                       trips);
  }
  echo.join();
  if (had_mask) pthread_setaffinity_np(pthread_self(), sizeof(mine), &mine);
  std::nth_element(per_trip.begin(), per_trip.begin() + kBatches / 2, per_trip.end());
  return per_trip[kBatches / 2];
}

}  // namespace runnx
