// A small fork-join pool. Workers spin briefly after a job (a model runs many short kernels back to
// back: 1 ms while jobs come within 1 ms of each other, 50 us after a longer gap) and then sleep
// on a condition variable, so an idle session burns no core. A CPU session's run (Session::run
// without a device provider) holds a RunScope: its start wakes sleeping workers at once (their
// wake-up overlaps the run's first, serial work instead of delaying its first parallel kernel)
// and they spin between jobs, through serial stretches too, until the last run in progress ends;
// then the spin above applies. Without spinning (ORT's session.intra_op.allow_spinning = 0, for
// hosts shared with other work) workers and the caller sleep as soon as they wait.
// Each thread owns a contiguous share of a job's chunks (the caller the first, worker i the
// i+1-th) and runs it front to back, then takes chunks from the back of the others' shares: a
// chain of kernels split the same way (pixels, rows) keeps each part of the activations on the
// core that wrote it, and a worker that is slow or asleep is covered by the others.
// The caller does not wait for workers that have not joined by the time the chunks run out: a
// sleeping worker costs a tiny job nothing but its own wake-up.
// parallel_for may be called from many threads at once: only one caller drives the workers at a
// time; the others run their range inline rather than queue behind it.
// Workers keep off the CPU the driving caller runs on: Linux wakes a sleeping thread on its
// waker's CPU when that looks cheap, and a worker queued behind a busy caller does nothing until
// the load balancer moves it, which it may not do for hundreds of milliseconds.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace runnx {

class ThreadPool {
 public:
  // num_threads: total threads including the caller; <= 0 means default.
  explicit ThreadPool(int num_threads, bool allow_spinning = true);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // Calls fn(begin, end) over [0, n) in chunks of at least `grain` items.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

  // parallel_for with each of the n items a chunk of its own, however many (parallel_for caps a
  // job at 16 chunks a thread): for few, long items such as GEMM tiles, which even out item by item.
  void parallel_for_each(int64_t n, const std::function<void(int64_t, int64_t)>& fn);

  // Cores this process may use: the affinity mask, capped by a cgroup CPU quota.
  static int default_num_threads();

  // Marks a session run in progress for its lifetime (runs may overlap, from any threads). A run
  // wakes the workers only if the last run to end gave them a job: a model whose kernels all run
  // inline (a small MLP) keeps them asleep.
  class RunScope {
   public:
    explicit RunScope(ThreadPool& pool) : pool_(pool), ticket_(pool.ticket_.load()), counted_(pool.begin_run()) {}
    ~RunScope() { pool_.end_run(counted_, ticket_); }
    RunScope(const RunScope&) = delete;
    RunScope& operator=(const RunScope&) = delete;

   private:
    ThreadPool& pool_;
    const uint64_t ticket_;  // the pool's ticket when the run began
    const bool counted_;     // the run is in runs_
  };

  // Workers asleep on the condition variable now (tests, diagnostics).
  int sleeping_workers() const { return sleepers_.load(); }
  bool allow_spinning() const { return allow_spinning_; }

  // Tests only: called by a worker between announcing itself to a job and checking that the job
  // is still open (to force a late join). Set it while no job runs; empty by default.
  void set_join_hook_for_testing(std::function<void()> hook) { join_hook_ = std::move(hook); }
  // Tests only: wakes a driving caller asleep on workers that it waits for in vain (a hang the
  // test detected), so that the test can end.
  void notify_caller_for_testing();

 private:
  void worker_loop(int self);
  // parallel_for's body: [0, n) in at most max_chunks chunks of at least `grain` items.
  void run_job(int64_t n, int64_t grain, int64_t max_chunks, const std::function<void(int64_t, int64_t)>& fn);
  // Takes part in job `ticket` if it is still open; false when it closed first.
  bool join(uint64_t ticket, int self);
  // Runs the chunks of share `self`, then steals from the other shares until none is left.
  void run_chunks(int self);
  void run_chunk(int64_t chunk);
  // Restricts the workers to the allowed CPUs but `cpu` (the caller's) when that changed.
  void keep_workers_off(int cpu);

  // Spins until the ticket moves on from `seen` (true) or, once no run is in progress, for
  // `spin_for` (false; also false at once without spinning).
  bool spin_for_job(uint64_t seen, uint64_t& ticket, std::chrono::microseconds spin_for);
  // A run starts: counts it and wakes sleeping workers, unless workers are to sleep anyway.
  bool begin_run();
  void end_run(bool counted, uint64_t ticket_at_begin);

  static int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

  int num_threads_;
  const bool allow_spinning_;
  std::vector<std::thread> workers_;
  std::mutex drive_mu_;  // held by the caller currently using the workers
  std::vector<int> allowed_cpus_;  // the process's CPU mask when the pool was made
  int kept_off_cpu_ = -1;          // the caller's CPU the workers were last kept off

  // ticket_ = 2 * job number + 1 while that job takes helpers, + 0 once the caller closed it.
  std::atomic<uint64_t> ticket_{0};
  std::atomic<int> active_{0};    // workers inside the open (or closing) job
  std::atomic<int> sleepers_{0};  // workers blocked on wake_
  std::atomic<int> runs_{0};      // session runs in progress (RunScope)
  std::atomic<bool> runs_use_workers_{true};  // the last run to end opened a job
  std::atomic<bool> stop_{false};
  std::atomic<bool> caller_sleeping_{false};  // the driving caller waits on done_
  std::mutex mu_;                 // guards sleeping (with wake_ and done_) and error_
  std::condition_variable wake_, done_;

  // The job in progress (written by the driving caller before it opens the ticket).
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0, chunk_ = 1;
  // One share of chunk numbers per thread, [front, back) packed as front | back << 32: its owner
  // takes from the front, others from the back (one CAS each). A line each: no false sharing.
  struct alignas(64) Share {
    std::atomic<uint64_t> range{0};
  };
  std::unique_ptr<Share[]> shares_;
  std::atomic<bool> failed_{false};  // a chunk threw: hand out no more
  std::exception_ptr error_;  // first exception thrown by a chunk, rethrown to the caller
  std::function<void()> join_hook_;  // tests only
};

}  // namespace runnx
