// Stress test of the serving primitives, meant for a ThreadSanitizer build (not part of CI):
//   cmake -S . -B build/tsan -G Ninja -DRUNNX_TSAN=ON && ninja -C build/tsan serving_queue_stress
//   build/tsan/serving_queue_stress
// 1. MpmcQueue: producers and consumers hammer a small ring; every value arrives exactly once.
// 2. WakeSignal: consumers sleep with no timeout whenever the ring looks empty; a lost wake-up
//    shows as a hang, which the watchdog turns into a failure.
// 3. CompletionChannel: many pushers, one consumer blocked on the eventfd; nothing is lost.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "serving/completion_channel.h"
#include "serving/mpmc_queue.h"
#include "serving/wake_signal.h"

using namespace runnx;

namespace {

int failures = 0;

void expect(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "FAIL: %s\n", what);
    ++failures;
  }
}

void queue_and_wake(int producers, int consumers, int per_producer, size_t capacity) {
  MpmcQueue<uint64_t> q(capacity);
  WakeSignal sig;
  std::atomic<int> producers_left{producers};
  std::vector<std::atomic<uint8_t>> seen(static_cast<size_t>(producers) * per_producer);
  std::atomic<int64_t> received{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p)
    threads.emplace_back([&, p] {
      for (int i = 0; i < per_producer; ++i) {
        uint64_t v = static_cast<uint64_t>(p) * per_producer + i;
        while (!q.try_push(v)) std::this_thread::yield();  // full: consumers will make room
        sig.notify_all();
      }
      producers_left.fetch_sub(1);
      sig.notify_all();
    });
  for (int c = 0; c < consumers; ++c)
    threads.emplace_back([&] {
      for (;;) {
        uint32_t epoch = sig.prepare();
        bool done = producers_left.load() == 0;
        uint64_t v;
        bool got = false;
        while (q.try_pop(v)) {
          got = true;
          seen[v].fetch_add(1);
          received.fetch_add(1);
        }
        if (!got && done) {
          sig.done();
          sig.notify_all();  // let the other consumers see the end too
          return;
        }
        if (!got) sig.wait(epoch, WakeSignal::Clock::time_point::max());
        sig.done();
      }
    });
  for (auto& t : threads) t.join();
  expect(received.load() == static_cast<int64_t>(seen.size()), "every value received");
  for (auto& s : seen) expect(s.load() == 1, "each value exactly once");
}

void completion_channel(int pushers, int per_pusher) {
  CompletionChannel ch(false);
  std::vector<Request> reqs(static_cast<size_t>(pushers) * per_pusher);
  std::vector<std::thread> threads;
  for (int p = 0; p < pushers; ++p)
    threads.emplace_back([&, p] {
      for (int i = 0; i < per_pusher; ++i) {
        Request& r = reqs[static_cast<size_t>(p) * per_pusher + i];
        r.seq = static_cast<uint64_t>(p) * per_pusher + i;
        ch.push(&r);
      }
    });
  size_t got = 0;
  std::vector<int> count(reqs.size(), 0);
  while (got < reqs.size()) {
    uint64_t n;
    if (read(ch.fd(), &n, sizeof n) < 0) continue;  // blocks until a push onto an empty stack
    for (Request* r : ch.take_all()) {
      ++count[r->seq];
      ++got;
    }
  }
  for (auto& t : threads) t.join();
  for (int c : count) expect(c == 1, "each request delivered exactly once");
}

}  // namespace

int main() {
  alarm(300);  // a lost wake-up hangs: SIGALRM ends the run with a failure status
  for (int round = 0; round < 3; ++round) {
    queue_and_wake(8, 1, 20000, 4);      // tiny ring: full and empty all the time
    queue_and_wake(6, 3, 20000, 64);     // several consumers
    queue_and_wake(1, 4, 50000, 1024);
    completion_channel(8, 20000);
  }
  std::printf(failures ? "serving_queue_stress: %d failures\n" : "serving_queue_stress: ok\n", failures);
  return failures ? 1 : 0;
}
