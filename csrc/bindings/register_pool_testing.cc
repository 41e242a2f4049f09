// Test hooks for the thread pool under concurrency: many callers at once, nested calls, chunks
// that throw, and the CPU an idle pool burns.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "common/cross_core_probe.h"
#include "common/thread_pool.h"
#include "runtime/session.h"

namespace py = pybind11;

namespace runnx {
namespace {

double process_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// How often parallel_for (grain > 0) or parallel_for_each (grain 0) visited each index of [0, n);
// parallel_for_each counts 1000 for an index it passed in a call with others (not one chunk each).
std::vector<int> coverage(ThreadPool& pool, int64_t n, int64_t grain) {
  std::unique_ptr<std::atomic<int>[]> hits(new std::atomic<int>[n > 0 ? n : 1]);
  for (int64_t i = 0; i < n; ++i) hits[i] = 0;
  {
    py::gil_scoped_release nogil;
    const auto visit = [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[i] += grain == 0 && e - b > 1 ? 1000 : 1;
    };
    if (grain > 0) pool.parallel_for(n, grain, visit);
    else pool.parallel_for_each(n, visit);
  }
  std::vector<int> out(n);
  for (int64_t i = 0; i < n; ++i) out[i] = hits[i];
  return out;
}

// `callers` threads each run `iters` parallel_for calls over [0, n) on one pool; with `nested`,
// every chunk also runs a parallel_for of its own over [0, 7). Returns, per caller, how many calls
// visited some index other than exactly once (all zeros expected).
std::vector<int> stress(int threads, int callers, int iters, int64_t n, int64_t grain, bool nested) {
  ThreadPool pool(threads);
  std::vector<int> bad(callers, 0);
  std::vector<std::thread> ts;
  for (int c = 0; c < callers; ++c)
    ts.emplace_back([&, c] {
      std::unique_ptr<std::atomic<int>[]> hits(new std::atomic<int>[n > 0 ? n : 1]);
      for (int it = 0; it < iters; ++it) {
        for (int64_t i = 0; i < n; ++i) hits[i] = 0;
        std::atomic<int> inner_bad{0};
        pool.parallel_for(n, grain, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) hits[i]++;
          if (!nested) return;
          std::atomic<int> inner[7] = {};
          pool.parallel_for(7, 1, [&](int64_t ib, int64_t ie) {
            for (int64_t i = ib; i < ie; ++i) inner[i]++;
          });
          for (auto& v : inner)
            if (v != 1) inner_bad++;
        });
        bool ok = inner_bad == 0;
        for (int64_t i = 0; i < n; ++i) ok = ok && hits[i] == 1;
        if (!ok) bad[c]++;
      }
    });
  for (auto& t : ts) t.join();
  return bad;
}

// Waits up to `timeout_s` for ready() to hold; whether it did.
template <typename Ready>
bool wait_for(double timeout_s, const Ready& ready) {
  const auto limit = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (!ready()) {
    if (std::chrono::steady_clock::now() >= limit) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// A worker announces itself to a job, then (held 5 ms by the join hook, past the caller's 1 ms
// wait for joined workers) finds it closed while the caller sleeps waiting for it: the worker
// must wake the caller on its way out. Returns (the worker announced itself, the caller came back
// within timeout_s). A caller still asleep then is woken by hand so that the test ends.
std::pair<bool, bool> late_joiner(double timeout_s) {
  ThreadPool pool(2);
  std::atomic<bool> announced{false}, returned{false};
  pool.set_join_hook_for_testing([&] {
    if (!announced.exchange(true)) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  });
  std::thread caller([&] {
    pool.parallel_for(2, 1, [&](int64_t, int64_t) {
      wait_for(2.0, [&] { return announced.load(); });  // keep the job open until the worker joins
    });
    returned = true;
  });
  const bool came_back = wait_for(timeout_s, [&] { return returned.load(); });
  while (!returned.load()) {
    pool.notify_caller_for_testing();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  caller.join();
  return {announced.load(), came_back};
}

// Workers asleep in a pool of `threads`: idle before any run (after one job), inside a run scope
// (spinning: awaited up to 2 s to reach 0; without: after 20 ms), still inside it after `callers`
// threads ran `jobs` parallel_for calls each within run scopes of their own, and once every scope
// has ended (awaited up to 2 s to reach all of them; a worker spins at most 1 ms first).
std::tuple<int, int, int, int> run_scope_sleepers(int threads, bool allow_spinning, int callers, int jobs) {
  ThreadPool pool(threads, allow_spinning);
  const int workers = threads - 1;
  std::atomic<int64_t> sink{0};
  pool.parallel_for(64, 1, [&](int64_t b, int64_t e) { sink += e - b; });  // start the workers
  const auto all_asleep = [&] { return pool.sleeping_workers() == workers; };
  wait_for(2.0, all_asleep);
  const int before = pool.sleeping_workers();
  int in_run = 0, after_jobs = 0;
  {
    ThreadPool::RunScope outer(pool);
    if (allow_spinning)
      wait_for(2.0, [&] { return pool.sleeping_workers() == 0; });
    else
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    in_run = pool.sleeping_workers();
    std::vector<std::thread> ts;
    for (int c = 0; c < callers; ++c)
      ts.emplace_back([&] {
        ThreadPool::RunScope run(pool);
        for (int j = 0; j < jobs; ++j) pool.parallel_for(256, 1, [&](int64_t b, int64_t e) { sink += e - b; });
      });
    for (auto& t : ts) t.join();
    if (!allow_spinning) wait_for(2.0, all_asleep);
    after_jobs = pool.sleeping_workers();
  }
  wait_for(2.0, all_asleep);
  return {before, in_run, after_jobs, pool.sleeping_workers()};
}

// Workers asleep inside a run that follows a run without a job (all expected: not woken for a
// model whose kernels run inline), and inside one that follows a run with a job (awaited up to
// 2 s to reach none).
std::pair<int, int> runs_after_jobless_runs(int threads) {
  ThreadPool pool(threads);
  const int workers = threads - 1;
  std::atomic<int64_t> sink{0};
  const auto job = [&] { pool.parallel_for(64, 1, [&](int64_t b, int64_t e) { sink += e - b; }); };
  const auto all_asleep = [&] { return pool.sleeping_workers() == workers; };
  job();
  { ThreadPool::RunScope jobless(pool); }
  wait_for(2.0, all_asleep);
  int after_jobless = 0, after_job = 0;
  {
    ThreadPool::RunScope run(pool);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    after_jobless = pool.sleeping_workers();
    job();
  }
  wait_for(2.0, all_asleep);
  {
    ThreadPool::RunScope run(pool);
    wait_for(2.0, [&] { return pool.sleeping_workers() == 0; });
    after_job = pool.sleeping_workers();
  }
  return {after_jobless, after_job};
}

}  // namespace

void register_pool_testing(py::module_& m) {
  m.def("thread_pool_coverage", [](int64_t n, int64_t grain, int threads) {
    ThreadPool pool(threads);
    return coverage(pool, n, grain);
  });
  m.def("thread_pool_stress", [](int threads, int callers, int iters, int64_t n, int64_t grain,
                                 bool nested) {
    py::gil_scoped_release nogil;
    return stress(threads, callers, iters, n, grain, nested);
  });
  // parallel_for over [0, n) whose chunk holding index `throw_at` throws: the error reaches the
  // caller (as RuntimeError), then the same pool covers [0, n) once more; returns that coverage.
  m.def("thread_pool_throw_then_cover", [](int threads, int64_t n, int64_t grain, int64_t throw_at) {
    ThreadPool pool(threads);
    {
      py::gil_scoped_release nogil;
      bool threw = false;
      try {
        pool.parallel_for(n, grain, [&](int64_t b, int64_t e) {
          if (b <= throw_at && throw_at < e) throw std::runtime_error("chunk failed");
        });
      } catch (const std::runtime_error&) {
        threw = true;
      }
      if (!threw) throw std::logic_error("the chunk's exception did not reach the caller");
    }
    return coverage(pool, n, grain);
  });
  // The CPU masks the workers ran one job's chunks under (each chunk sleeps 2 ms so workers join),
  // to check that they keep off the caller's CPU and within the process's mask.
  m.def("thread_pool_worker_masks", [](int threads) {
    py::gil_scoped_release nogil;
    ThreadPool pool(threads);
    const std::thread::id caller = std::this_thread::get_id();
    std::mutex mu;
    std::vector<std::vector<int>> masks;
    // On a loaded host the caller may take every chunk before a fresh worker is scheduled:
    // repeat the job (up to ~2 s) until some worker has run a chunk.
    for (int attempt = 0; attempt < 100 && masks.empty(); ++attempt)
      pool.parallel_for(4 * threads, 1, [&](int64_t, int64_t) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        if (std::this_thread::get_id() == caller) return;
        cpu_set_t set;
        if (sched_getaffinity(0, sizeof(set), &set) != 0) return;
        std::vector<int> cpus;
        for (int c = 0; c < CPU_SETSIZE; ++c)
          if (CPU_ISSET(c, &set)) cpus.push_back(c);
        std::lock_guard<std::mutex> lk(mu);
        masks.push_back(cpus);
      });
    return masks;
  });
  m.def("thread_pool_late_joiner", [](double timeout_s) {
    py::gil_scoped_release nogil;
    return late_joiner(timeout_s);
  });
  m.def("thread_pool_run_scope_sleepers", [](int threads, bool allow_spinning, int callers, int jobs) {
    py::gil_scoped_release nogil;
    return run_scope_sleepers(threads, allow_spinning, callers, jobs);
  });
  m.def("thread_pool_runs_after_jobless_runs", [](int threads) {
    py::gil_scoped_release nogil;
    return runs_after_jobless_runs(threads);
  });
  // Whether the session's pool (made now if no run made it yet) spins: the config entry's path.
  m.def("session_pool_allows_spinning", [](const Session& s) { return s.pool().allow_spinning(); });
  // Makes the session pool's workers join each job `seconds` late (0: on time again), so that the
  // caller runs every chunk: its own share front to back, then the others' from the back. Call
  // between runs. The caller waits out each late worker, a job at a time.
  m.def("session_pool_delay_joins", [](const Session& s, double seconds) {
    if (seconds <= 0) return s.pool().set_join_hook_for_testing(nullptr);
    s.pool().set_join_hook_for_testing(
        [seconds] { std::this_thread::sleep_for(std::chrono::duration<double>(seconds)); });
  });
  // Median ns of a cache line's round trip between CPUs a and b (bench/host_state.py).
  m.def("cross_core_round_trip_ns", [](int a, int b, int trips) {
    py::gil_scoped_release nogil;
    return cross_core_round_trip_ns(a, b, trips);
  }, py::arg("a"), py::arg("b"), py::arg("trips") = 2000);
  // Process CPU seconds burnt while a pool that has just run `jobs` jobs sits idle for `idle_s`.
  m.def("thread_pool_idle_cpu", [](int threads, int jobs, double idle_s) {
    py::gil_scoped_release nogil;
    ThreadPool pool(threads);
    std::atomic<int64_t> sink{0};
    for (int j = 0; j < jobs; ++j)
      pool.parallel_for(1 << 12, 1, [&](int64_t b, int64_t e) { sink += e - b; });
    const double c0 = process_cpu_seconds();
    std::this_thread::sleep_for(std::chrono::duration<double>(idle_s));
    return process_cpu_seconds() - c0;
  });
}

}  // namespace runnx
