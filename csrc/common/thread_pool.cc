#include "common/thread_pool.h"

#include <pthread.h>
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

ThreadPool::ThreadPool(int num_threads, bool allow_spinning)
    : num_threads_(num_threads > 0 ? num_threads : default_num_threads()), allow_spinning_(allow_spinning) {
  shares_.reset(new Share[num_threads_]);
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) allowed_cpus_.push_back(c);
  }
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
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

// The pool whose chunk this thread is running: a nested parallel_for on it runs inline (the
// driving caller holds drive_mu_ itself, so try_lock would be undefined there).
thread_local const ThreadPool* t_running_pool = nullptr;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

// A worker's spin before it sleeps (see worker_loop), and the driving caller's wait for joined
// workers before it sleeps.
constexpr std::chrono::microseconds kMinSpin(50), kMaxSpin(1000);

// At most this many chunks per thread: a thread that finishes early can only take chunks not yet
// started, so a chunk is the unit the threads even out by. With 4 a batch-32 ResNet-50 layer was
// 8 chunks of 4 images, and the faster core idled while the other finished its last one (quiet
// host, 2 threads, three A/Bs: batch 32 runs 4-20% faster with 16; batch 1 unchanged).
constexpr int64_t kChunksPerThread = 16;

// Spins (pause, yielding the core every 64 rounds) until done() or `limit` has passed; true if done.
template <typename Done>
bool spin_until(std::chrono::steady_clock::time_point limit, const Done& done) {
  for (int i = 0; !done(); ++i) {
    cpu_relax();
    if ((i & 63) == 63) {
      if (std::chrono::steady_clock::now() >= limit) return done();
      std::this_thread::yield();  // a shared core: let others run between checks
    }
  }
  return true;
}

}  // namespace

void ThreadPool::run_chunk(int64_t chunk) {
  const int64_t b = chunk * chunk_;
  try {
    (*fn_)(b, std::min(n_, b + chunk_));
  } catch (...) {
    std::lock_guard<std::mutex> lk(mu_);
    if (!error_) error_ = std::current_exception();
    failed_ = true;  // stop handing out chunks
  }
}

void ThreadPool::run_chunks(int self) {
  constexpr uint64_t kLow = 0xffffffffu;
  const ThreadPool* outer = std::exchange(t_running_pool, this);
  // Own share, front first: the same rows this thread had in the previous kernel.
  std::atomic<uint64_t>& own = shares_[self].range;
  for (uint64_t r = own.load(); !failed_.load(std::memory_order_relaxed);) {
    const uint64_t front = r & kLow, back = r >> 32;
    if (front >= back) break;
    if (own.compare_exchange_weak(r, r + 1)) {
      run_chunk(static_cast<int64_t>(front));
      r = own.load();
    }
  }
  // Then the others' shares, from the back (their owners may still be working at the front).
  for (int k = 1; k < num_threads_; ++k) {
    std::atomic<uint64_t>& other = shares_[(self + k) % num_threads_].range;
    for (uint64_t r = other.load(); !failed_.load(std::memory_order_relaxed);) {
      const uint64_t front = r & kLow, back = r >> 32;
      if (front >= back) break;
      if (other.compare_exchange_weak(r, front | (back - 1) << 32)) {
        run_chunk(static_cast<int64_t>(back - 1));
        r = other.load();
      }
    }
  }
  t_running_pool = outer;
}

bool ThreadPool::join(uint64_t ticket, int self) {
  // Announce first, then re-check: the caller closes the ticket before it reads active_, so
  // either it sees this worker or this worker sees the ticket closed (both seq_cst).
  active_.fetch_add(1);
  if (join_hook_) join_hook_();
  const bool open = ticket_.load() == ticket;
  if (open) run_chunks(self);
  // The last one out wakes a caller that stopped spinning (same seq_cst pairing as above). A
  // worker that came too late leaves the same way: the caller may have gone to sleep while this
  // worker's announcement still counted.
  if (active_.fetch_sub(1) == 1 && caller_sleeping_.load()) {
    std::lock_guard<std::mutex> lk(mu_);
    done_.notify_one();
  }
  return open;
}

bool ThreadPool::spin_for_job(uint64_t seen, uint64_t& ticket, std::chrono::microseconds spin_for) {
  if (!allow_spinning_) return false;
  const auto moved = [&] {
    ticket = ticket_.load();
    return ticket != seen || stop_.load(std::memory_order_relaxed);
  };
  // While a run is in progress its next kernel is coming: never sleep between them.
  for (auto limit = std::chrono::steady_clock::now() + spin_for;;) {
    if (spin_until(limit, moved)) return true;
    if (runs_.load() == 0) return false;
    limit = std::chrono::steady_clock::now() + spin_for;
  }
}

bool ThreadPool::begin_run() {
  if (!allow_spinning_ || workers_.empty() || !runs_use_workers_.load(std::memory_order_relaxed)) return false;
  // Pairs with the sleeper's check (both seq_cst): either it sees the run or this sees it asleep.
  if (runs_.fetch_add(1) == 0 && sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lk(mu_);
    wake_.notify_all();
  }
  return true;
}

void ThreadPool::end_run(bool counted, uint64_t ticket_at_begin) {
  if (counted) runs_.fetch_sub(1);
  // Jobs of overlapping runs count too: a hint, right again after one run.
  if (!workers_.empty()) runs_use_workers_.store(ticket_.load() != ticket_at_begin, std::memory_order_relaxed);
}

void ThreadPool::notify_caller_for_testing() {
  std::lock_guard<std::mutex> lk(mu_);
  done_.notify_all();
}

void ThreadPool::worker_loop(int self) {
  using std::chrono::microseconds;
  uint64_t seen = 0;
  microseconds spin_for(kMinSpin);
  for (;;) {
    // Spin before sleeping: the next kernel of a run follows within microseconds to a few
    // hundred (the caller finishing a long chunk), and the next run of a caller's loop often
    // within a few hundred. A sleeping worker wakes late on this kind of VM, and the job it
    // missed runs on fewer cores meanwhile. After a job that came within kMaxSpin of the one
    // before (the pool is busy) spin the whole kMaxSpin; after a longer gap (an idle server)
    // only kMinSpin, so an idle pool burns nothing. Spinning twice the last gap instead slept
    // ~20 times in each ResNet-50 batch-1 run (its gaps vary from 1 to 300 us): 2 threads 10%
    // slower. Inside a session run, spin until its next job whatever the gap.
    const int64_t idle_from = now_ns();
    uint64_t t = seen;
    const bool spun = spin_for_job(seen, t, spin_for);
    if (!spun && !stop_.load()) {
      std::unique_lock<std::mutex> lk(mu_);
      sleepers_.fetch_add(1);
      wake_.wait(lk, [&] {
        return stop_.load() || ticket_.load() != seen || (allow_spinning_ && runs_.load() > 0);
      });
      sleepers_.fetch_sub(1);
      t = ticket_.load();
    }
    if (stop_.load()) return;
    if (t == seen) continue;  // woken by a run's start: spin for its first job
    seen = t;
    if (!(t & 1)) continue;  // a job this worker joined has closed
    // Only an opening job tells how busy the pool is: the close of a job this worker joined
    // follows within microseconds, and counting it would keep every worker on kMaxSpin.
    const int64_t now = now_ns();
    spin_for = std::chrono::nanoseconds(now - idle_from) <= kMaxSpin ? kMaxSpin : kMinSpin;
    join(t, self);
  }
}

void ThreadPool::keep_workers_off(int cpu) {
  if (cpu == kept_off_cpu_ || cpu < 0 || allowed_cpus_.size() < 2) return;
  kept_off_cpu_ = cpu;
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : allowed_cpus_)
    if (c != cpu) CPU_SET(c, &set);
  // A failure (the mask changed under us, a sandbox refusing it) only loses the placement.
  for (auto& w : workers_) pthread_setaffinity_np(w.native_handle(), sizeof(set), &set);
}

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int64_t, int64_t)>& fn) {
  run_job(n, grain, int64_t{num_threads_} * kChunksPerThread, fn);
}

void ThreadPool::parallel_for_each(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  run_job(n, 1, n, fn);
}

void ThreadPool::run_job(int64_t n, int64_t grain, int64_t max_chunks,
                         const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  if (workers_.empty() || n <= grain || t_running_pool == this) return fn(0, n);
  std::unique_lock<std::mutex> drive(drive_mu_, std::try_to_lock);
  if (!drive.owns_lock()) return fn(0, n);  // another caller owns the workers: run inline
  const int64_t chunks = std::min<int64_t>((n + grain - 1) / grain, max_chunks);
  fn_ = &fn;
  n_ = n;
  chunk_ = (n + chunks - 1) / chunks;
  const int64_t count = (n + chunk_ - 1) / chunk_;
  for (int t = 0; t < num_threads_; ++t) {
    const uint64_t front = static_cast<uint64_t>(count * t / num_threads_);
    const uint64_t back = static_cast<uint64_t>(count * (t + 1) / num_threads_);
    shares_[t].range.store(front | back << 32, std::memory_order_relaxed);
  }
  failed_.store(false, std::memory_order_relaxed);
  error_ = nullptr;
  keep_workers_off(sched_getcpu());
  const uint64_t open = (ticket_.load() | 1) + 2;  // the next job number, open
  ticket_.store(open);
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lk(mu_);  // a worker between its check and its wait holds mu_
    wake_.notify_all();
  }
  run_chunks(0);
  ticket_.store(open - 1);  // closed: late workers stay out
  // Joined workers are finishing their last chunk (one each): spin up to
  // kMaxSpin, yielding the core between checks (on a crowded host a preempted worker may need
  // it), then sleep. A caller that slept after 2048 pauses woke late ~13 times per ResNet-50
  // batch-1 run, each time with the next kernel waiting on it.
  const auto workers_out = [&] { return active_.load() == 0; };
  const bool done = allow_spinning_ ? spin_until(std::chrono::steady_clock::now() + kMaxSpin, workers_out)
                                    : workers_out();
  if (!done) {
    std::unique_lock<std::mutex> lk(mu_);
    caller_sleeping_.store(true);
    done_.wait(lk, [&] { return active_.load() == 0; });
    caller_sleeping_.store(false);
  }
  fn_ = nullptr;
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

}  // namespace runnx
