// Dynamic batching for one model. Producers (any thread) submit requests into a bounded lock-free
// ring; `instance_count` worker threads take turns as the leader that drains the ring into a
// priority-ordered pending set, answers expired requests, and forms the next batch from compatible
// requests (same inputs, dtypes, non-batch dims and requested outputs) up to max_batch_size,
// waiting at most max_queue_delay_us for more and dispatching at once when a preferred size is
// reached. The leader then runs the batch itself (concatenate along dim 0, Session::run, split the
// outputs into zero-copy views) while the next idle worker becomes the leader. Idle workers sleep.
// Finished requests go to their CompletionChannel.
//
// Closed-loop clients (each sends its next request when the previous is answered) come back
// just after their batch: a worker that dispatched whatever had arrived by then would split them
// into a full batch and a small one, forever. So, with a queue delay, a group waits (at most the
// delay, counted from when a free worker first saw its request) while fewer rows are in flight
// than were at the busiest moment between the last two batch completions, and goes at once
// when all of them are back. That longer wait never makes a request expire that the delay
// counted from its arrival would have sent: the group then leaves just before the deadline.
//
// A lone request may skip the queue: run_inline() runs it on the caller's thread when nothing is
// queued, a worker slot is free and recent batches were cheap (at most max_inline_us), saving the
// two thread hand-offs (producer -> worker -> consumer) that cost more than a small model's
// compute. Producers that submit several requests at once (one event-loop pass) can defer the
// wake-up to one notify() for all of them.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/session.h"
#include "serving/completion_channel.h"
#include "serving/mpmc_queue.h"
#include "serving/pending_requests.h"
#include "serving/request.h"
#include "serving/wake_signal.h"

namespace runnx {

struct BatcherOptions {
  int64_t max_batch_size = 8;  // 0: the model has no batch dim; every request runs alone
  int64_t max_queue_delay_us = 500;
  std::vector<int64_t> preferred_batch_sizes;
  int64_t max_queue_size = 1024;  // requests queued (not yet running); beyond it submit refuses
  int instance_count = 1;
  // run_inline() runs a request only while batches take at most this long (0: never inline).
  int64_t max_inline_us = 1000;
};

struct BatcherStats {
  int64_t requests_ok = 0, requests_failed = 0, requests_rejected = 0, requests_expired = 0;
  int64_t batches = 0;
  int64_t inline_runs = 0;  // requests run_inline ran
  int64_t queue_us = 0, compute_us = 0;  // summed over answered requests
  std::vector<int64_t> batch_sizes;     // batches run, by rows (index = rows)
};

enum class SubmitResult { kAccepted, kQueueFull, kClosed };

class Batcher {
 public:
  using Clock = std::chrono::steady_clock;

  // `session` must outlive the batcher. Throws InvalidArgument on bad options or a model whose
  // inputs have no batch dim to batch along.
  Batcher(Session& session, BatcherOptions options);
  ~Batcher();  // close(false), then joins the workers
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  const BatcherOptions& options() const { return opt_; }

  // Checks the feeds against the model (names, dtypes, ranks, fixed dims, batch size), puts them
  // in the model's input order and computes the request's rows and compatibility key; its queue
  // time and timeout count from here. Throws InvalidArgument. Call before submit, on the
  // producer's thread.
  void prepare(Request& r) const;

  // Queues a prepared request. On kAccepted the batcher owns `r` until it reaches r->channel;
  // otherwise the caller keeps it. Lock-free; never blocks. wake=false leaves waking the
  // leader to a later notify() (one wake-up for a group of submits).
  SubmitResult submit(Request* r, bool wake = true);
  // Wakes the leader if the requests submitted with wake=false since may change its decision.
  void notify();

  // Runs a prepared request now on the calling thread (as a batch of its own rows)
  // when the batcher is idle (nothing queued, fewer than instance_count batches running) and
  // recent batches took at most max_inline_us; returns true with `r` answered in place (its
  // channel is not used; the caller keeps `r`). False: nothing happened, submit it instead.
  bool run_inline(Request& r);
  // The same for several prepared requests at once, run together as one batch: they must share
  // one compatibility key and fit in max_batch_size (false otherwise, nothing happened).
  bool run_inline(Request* const* reqs, size_t count);

  // Stops accepting. drain: run everything queued (delays no longer wait), else answer it with
  // Outcome::kClosed. timeout_s >= 0 bounds the drain; queued requests still waiting then are
  // answered kClosed. Batches already running always finish. Idempotent; returns when the
  // workers have exited.
  void close(bool drain, double timeout_s);
  bool closed() const { return closed_.load(); }

  int64_t queue_depth() const { return queued_.load(std::memory_order_relaxed); }
  BatcherStats stats() const;
  // A request that ran fine but whose result could not be delivered (e.g. an output numpy cannot
  // hold) moves from the ok count to the failed one.
  void recount_ok_as_failed() {
    ok_.fetch_sub(1, std::memory_order_relaxed);
    failed_.fetch_add(1, std::memory_order_relaxed);
  }

 private:
  struct Batch {
    std::vector<Request*> reqs;
    int64_t rows = 0;
  };
  struct Group {  // the next batch candidates of one key, in service order
    std::vector<Request*> reqs;
    int64_t rows = 0;
    bool full = false;  // max_batch_size reached, or the next compatible request does not fit
    Clock::time_point oldest = Clock::time_point::max();  // earliest `seen` of its requests
    Clock::time_point first_deadline = Clock::time_point::max();  // earliest of its requests
    // How long before first_deadline it leaves when the delay would keep it past (a late wake-up).
    Clock::duration deadline_margin{};
    Clock::time_point first_enqueued = Clock::time_point::max();  // earliest arrival
  };

  void worker_main();
  void reaper_main();
  bool lead(Batch& batch);  // leader only: false when the batcher is stopping and empty
  void drain_ring();
  // term_start: when this leader took over (requests that arrived before were seen no earlier).
  bool choose(Clock::time_point now, Clock::time_point term_start, bool stopping, Batch& batch,
              Clock::time_point& wake_at, int64_t& need_rows);
  void take(Group& g, size_t count, Clock::time_point now, Batch& batch);
  // Runs a batch that holds a running_ slot, frees the slot, then answers (deliver: through
  // the channels; else in place).
  void run_batch(Batch& batch, bool deliver = true);
  SubmitResult enqueue(Request* r, bool wake);
  void add_in_flight(int64_t rows);
  // A batch finished: the peak in flight since the previous one becomes the rows to expect.
  void end_period();
  // Sets the outcome and counts it; answer() also hands `r` to its channel.
  void settle(Request* r, Outcome outcome, ErrorKind kind, std::string msg);
  void answer(Request* r, Outcome outcome, ErrorKind kind = ErrorKind::kRuntime, std::string msg = {});

  Session& session_;
  BatcherOptions opt_;
  std::vector<std::string> input_names_;

  MpmcQueue<Request*> ring_;
  WakeSignal wake_;
  alignas(64) std::atomic<int64_t> queued_{0};
  // Rows ever submitted, and the total at which a producer must wake the sleeping leader: fewer
  // new rows cannot change its decision (it sleeps on a timer meanwhile), so most arrivals under
  // load cost no syscall and no leader wake-up.
  alignas(64) std::atomic<int64_t> arrived_rows_{0};
  alignas(64) std::atomic<int64_t> wake_at_rows_{1};
  std::atomic<uint64_t> next_seq_{0};
  std::atomic<bool> deadline_since_notify_{false};
  // Batches running now (workers and inline runs), and the recent compute time of a batch
  // (moving average; -1 until one ran), which decide whether run_inline may run a request.
  alignas(64) std::atomic<int> running_{0};
  std::atomic<int64_t> recent_compute_us_{-1};
  std::atomic<int> submitting_{0};
  // Rows accepted and not yet answered (queued or running), their peak since the last batch
  // finished, and the previous such period's peak: the rows the leader expects to see in flight
  // (unbounded until a batch has finished: no group goes early before anything is known).
  alignas(64) std::atomic<int64_t> in_flight_rows_{0};
  std::atomic<int64_t> in_flight_peak_{0};
  std::atomic<int64_t> expected_rows_{0};
  // Rows of the batches running now, until each request is answered: with the queued rows, what
  // the leader can see of the rows in flight (a request counted in flight may still be on its way
  // into the ring).
  std::atomic<int64_t> running_rows_{0};
  std::atomic<bool> closed_{false};    // submit refuses
  std::atomic<bool> stopping_{false};  // workers exit once nothing is queued
  std::atomic<bool> discard_{false};   // queued requests are answered kClosed instead of run

  // The leader's state. Only the worker holding sched_mu_ touches it; producers never take it.
  std::mutex sched_mu_;
  PendingRequests pending_;
  std::vector<Group> groups_;  // scratch of choose(), kept to reuse its vectors
  std::vector<int> group_order_;
  std::vector<Request*> expired_scratch_;

  std::mutex close_call_mu_;  // one close() at a time
  std::mutex close_mu_;
  std::condition_variable workers_exited_;
  int live_workers_ = 0;
  std::vector<std::thread> workers_;
  // While every worker runs a batch nobody leads, so the reaper answers expired requests then.
  WakeSignal reaper_wake_;
  std::atomic<bool> reaper_stop_{false};
  std::thread reaper_;

  std::atomic<int64_t> ok_{0}, failed_{0}, rejected_{0}, expired_{0}, batches_{0}, inline_runs_{0};
  std::atomic<int64_t> queue_us_{0}, compute_us_{0};
  std::unique_ptr<std::atomic<int64_t>[]> batch_sizes_;
};

}  // namespace runnx
