#include "common/thread_pool.h"

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <string>
#include <utility>

namespace runnx {

int ThreadPool::default_num_threads() {
  int n = static_cast<int>(std::thread::hardware_concurrency());
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) n = CPU_COUNT(&set);
  // cgroup v2: "max 100000" or "<quota> <period>".
  std::ifstream f("/sys/fs/cgroup/cpu.max");
  std::string quota;
  long period = 0;
  if (f >> quota >> period && quota != "max" && period > 0) {
    long q = std::stol(quota);
    int limit = static_cast<int>(std::max(1L, (q + period - 1) / period));
    n = std::min(n, limit);
  }
  return std::max(1, n);
}

ThreadPool::ThreadPool(int num_threads) {
  num_threads_ = num_threads > 0 ? num_threads : default_num_threads();
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

}  // namespace

void ThreadPool::run_chunks() {
  for (;;) {
    int64_t b = next_.fetch_add(chunk_);
    if (b >= n_) break;
    try {
      (*fn_)(b, std::min(n_, b + chunk_));
    } catch (...) {
      std::lock_guard<std::mutex> lk(mu_);
      if (!error_) error_ = std::current_exception();
      next_ = n_;  // stop handing out chunks
    }
  }
}

bool ThreadPool::join(uint64_t ticket) {
  // Announce first, then re-check: the caller closes the ticket before it reads active_, so
  // either it sees this worker or this worker sees the ticket closed (both seq_cst).
  active_.fetch_add(1);
  if (ticket_.load() != ticket) {
    active_.fetch_sub(1);
    return false;
  }
  run_chunks();
  // The last one out wakes a caller that stopped spinning (same seq_cst pairing as above).
  if (active_.fetch_sub(1) == 1 && caller_sleeping_.load()) {
    std::lock_guard<std::mutex> lk(mu_);
    done_.notify_one();
  }
  return true;
}

void ThreadPool::worker_loop() {
  uint64_t seen = 0;
  for (;;) {
    // Spin a little before sleeping: the next kernel usually follows within microseconds.
    const auto spin_until = std::chrono::steady_clock::now() + std::chrono::microseconds(50);
    uint64_t t = ticket_.load();
    for (int i = 0; t == seen && !stop_.load(std::memory_order_relaxed); ++i) {
      cpu_relax();
      if ((i & 63) == 63) {
        if (std::chrono::steady_clock::now() >= spin_until) break;
        std::this_thread::yield();  // a shared core: let others run between checks
      }
      t = ticket_.load();
    }
    if (t == seen && !stop_.load()) {
      std::unique_lock<std::mutex> lk(mu_);
      sleepers_.fetch_add(1);
      wake_.wait(lk, [&] { return stop_.load() || ticket_.load() != seen; });
      sleepers_.fetch_sub(1);
      t = ticket_.load();
    }
    if (stop_.load()) return;
    seen = t;
    if (t & 1) join(t);
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  if (workers_.empty() || n <= grain) return fn(0, n);
  std::unique_lock<std::mutex> drive(drive_mu_, std::try_to_lock);
  if (!drive.owns_lock()) return fn(0, n);  // another caller owns the workers: run inline
  const int64_t chunks = std::min<int64_t>((n + grain - 1) / grain, int64_t{num_threads_} * 4);
  fn_ = &fn;
  n_ = n;
  chunk_ = (n + chunks - 1) / chunks;
  next_ = 0;
  error_ = nullptr;
  const uint64_t open = (ticket_.load() | 1) + 2;  // the next job number, open
  ticket_.store(open);
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lk(mu_);  // a worker between its check and its wait holds mu_
    wake_.notify_all();
  }
  run_chunks();
  ticket_.store(open - 1);  // closed: late workers stay out
  // Joined workers are finishing their last chunk: spin a little, then sleep (on a crowded host a
  // spinning caller would take the core a preempted worker needs).
  for (int i = 0; active_.load() != 0 && i < 2048; ++i) cpu_relax();
  if (active_.load() != 0) {
    std::unique_lock<std::mutex> lk(mu_);
    caller_sleeping_.store(true);
    done_.wait(lk, [&] { return active_.load() == 0; });
    caller_sleeping_.store(false);
  }
  fn_ = nullptr;
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

}  // namespace runnx
