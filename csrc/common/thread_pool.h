// A small fork-join pool. Workers spin briefly after a job (a model runs many short kernels back to
// back) and then sleep on a condition variable, so an idle session burns no core.
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
  void worker_loop(int index);
  void run_chunks();

  int num_threads_;
  std::vector<std::thread> workers_;
  std::mutex drive_mu_;  // held by the caller currently using the workers

  std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable done_cv_;
  uint64_t generation_ = 0;
  bool stop_ = false;

  // The job in progress.
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0, chunk_ = 1;
  std::atomic<int64_t> next_{0};
  std::atomic<int> active_{0};
  std::exception_ptr error_;  // first exception thrown by a chunk, rethrown to the caller
};

}  // namespace runnx
