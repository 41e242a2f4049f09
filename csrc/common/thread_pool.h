// A small fork-join pool. Workers spin briefly after a job (a model runs many short kernels back to
// back) and then sleep on a condition variable, so an idle session burns no core.
// The caller takes chunks like any worker and does not wait for workers that have not joined by
// the time the chunks run out: a sleeping worker costs a tiny job nothing but its own wake-up.
// parallel_for may be called from many threads at once: only one caller drives the workers at a
// time; the others run their range inline rather than queue behind it.
#pragma once
#include <atomic>
#include <condition_variable>
#include <exception>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace runnx {

class ThreadPool {
 public:
  explicit ThreadPool(int num_threads);  // total threads including the caller; <= 0 means default
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // Calls fn(begin, end) over [0, n) in chunks of at least `grain` items.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

  // Cores this process may use: the affinity mask, capped by a cgroup CPU quota.
  static int default_num_threads();

 private:
  void worker_loop();
  // Takes part in job `ticket` if it is still open; false when it closed first.
  bool join(uint64_t ticket);
  void run_chunks();

  int num_threads_;
  std::vector<std::thread> workers_;
  std::mutex drive_mu_;  // held by the caller currently using the workers

  // ticket_ = 2 * job number + 1 while that job takes helpers, + 0 once the caller closed it.
  std::atomic<uint64_t> ticket_{0};
  std::atomic<int> active_{0};    // workers inside the open (or closing) job
  std::atomic<int> sleepers_{0};  // workers blocked on wake_
  std::atomic<bool> stop_{false};
  std::atomic<bool> caller_sleeping_{false};  // the driving caller waits on done_
  std::mutex mu_;                 // guards sleeping (with wake_ and done_) and error_
  std::condition_variable wake_, done_;

  // The job in progress (written by the driving caller before it opens the ticket).
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0, chunk_ = 1;
  std::atomic<int64_t> next_{0};
  std::exception_ptr error_;  // first exception thrown by a chunk, rethrown to the caller
};

}  // namespace runnx
