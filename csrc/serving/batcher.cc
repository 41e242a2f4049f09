#include "serving/batcher.h"

#include <algorithm>
#include <cstring>
#include <limits>

namespace runnx {

namespace {

constexpr int64_t kMaxWaitUs = int64_t{1000000} * 1000000;

int64_t micros(Batcher::Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

std::string dims_str(const ValueInfo& vi) {
  std::string s = "[";
  for (size_t i = 0; i < vi.dims.size(); ++i) {
    if (i) s += ", ";
    const Dim& d = vi.dims[i];
    s += d.known() ? std::to_string(d.value) : (d.param.empty() ? "?" : d.param);
  }
  return s + "]";
}

// A group kept waiting past a deadline leaves this long before it: 5% of the request's timeout,
// 1-50 ms, so a wake-up that comes late on a loaded host still finds it unexpired.
Batcher::Clock::duration leave_margin(int64_t timeout_us) {
  return std::chrono::microseconds(std::clamp<int64_t>(timeout_us / 20, 1000, 50000));
}

}  // namespace

Batcher::Batcher(Session& session, BatcherOptions options)
    : session_(session),
      opt_(std::move(options)),
      ring_(static_cast<size_t>(std::max<int64_t>(opt_.max_queue_size, 1))) {
  RUNNX_CHECK(opt_.max_batch_size >= 0, kInvalidArgument, "max_batch_size must be >= 0, got ",
              opt_.max_batch_size);
  RUNNX_CHECK(opt_.max_queue_delay_us >= 0 && opt_.max_queue_delay_us <= kMaxWaitUs, kInvalidArgument,
              "max_queue_delay_us must be in [0, ", kMaxWaitUs, "], got ", opt_.max_queue_delay_us);
  RUNNX_CHECK(opt_.max_queue_size >= 1 && opt_.max_queue_size <= (int64_t{1} << 24), kInvalidArgument,
              "max_queue_size must be in [1, 16777216], got ", opt_.max_queue_size);
  RUNNX_CHECK(opt_.instance_count >= 1 && opt_.instance_count <= 256, kInvalidArgument,
              "instance_count must be in [1, 256], got ", opt_.instance_count);
  RUNNX_CHECK(opt_.max_inline_us >= 0, kInvalidArgument, "max_inline_us must be >= 0, got ", opt_.max_inline_us);
  for (int64_t p : opt_.preferred_batch_sizes)
    RUNNX_CHECK(p >= 1 && p <= opt_.max_batch_size, kInvalidArgument, "preferred batch size ", p,
                " must be in [1, max_batch_size=", opt_.max_batch_size, "]");
  for (const ValueInfo& vi : session_.inputs()) {
    input_names_.push_back(vi.name);
    if (opt_.max_batch_size == 0 || !vi.has_shape) continue;
    // Batching concatenates along dim 0; a model whose first dim is fixed cannot take batches.
    RUNNX_CHECK(!vi.dims.empty(), kInvalidArgument, "input '", vi.name,
                "' is a scalar: it has no batch dimension; use max_batch_size=0 for this model");
    RUNNX_CHECK(!vi.dims[0].known(), kInvalidArgument, "input '", vi.name, "' has the fixed shape ",
                dims_str(vi), ": its first dim is not a batch dim; use max_batch_size=0 for this model");
  }
  batch_sizes_.reset(new std::atomic<int64_t>[opt_.max_batch_size + 2]());
  // Until a batch has finished nothing is known of the clients: no group goes early.
  expected_rows_.store(std::numeric_limits<int64_t>::max());
  live_workers_ = opt_.instance_count;
  for (int i = 0; i < opt_.instance_count; ++i) workers_.emplace_back([this] { worker_main(); });
  reaper_ = std::thread([this] { reaper_main(); });
}

Batcher::~Batcher() { close(false, -1); }

void Batcher::prepare(Request& r) const {
  const std::vector<ValueInfo>& ins = session_.inputs();
  RUNNX_CHECK(r.feed_names.size() == r.feeds.size(), kInvalidArgument, "feed names and tensors differ in count");
  std::vector<Tensor> ordered(ins.size());
  std::vector<bool> given(ins.size(), false);
  for (size_t i = 0; i < r.feeds.size(); ++i) {
    size_t j = 0;
    while (j < ins.size() && ins[j].name != r.feed_names[i]) ++j;
    if (j == ins.size()) {
      std::string known;
      for (const ValueInfo& vi : ins) known += (known.empty() ? "'" : ", '") + vi.name + "'";
      fail(ErrorKind::kInvalidArgument, "unknown input '", r.feed_names[i], "'; the model's inputs are ", known);
    }
    RUNNX_CHECK(!given[j], kInvalidArgument, "input '", r.feed_names[i], "' is given twice");
    given[j] = true;
    ordered[j] = r.feeds[i];
  }
  const bool batching = opt_.max_batch_size > 0;
  int64_t rows = batching ? -1 : 1;
  std::string key;
  for (size_t j = 0; j < ins.size(); ++j) {
    const ValueInfo& vi = ins[j];
    const Tensor& t = ordered[j];
    RUNNX_CHECK(given[j], kInvalidArgument, "missing input '", vi.name, "'");
    RUNNX_CHECK(t.dtype == vi.dtype, kInvalidArgument, "input '", vi.name, "' has dtype ", dtype_name(t.dtype),
                "; the model expects ", dtype_name(vi.dtype));
    if (vi.has_shape)
      RUNNX_CHECK(t.rank() == static_cast<int64_t>(vi.dims.size()), kInvalidArgument, "input '", vi.name,
                  "' has shape ", shape_str(t.shape), "; the model expects rank ", vi.dims.size(), " ",
                  dims_str(vi));
    if (batching) {
      RUNNX_CHECK(t.rank() >= 1, kInvalidArgument, "input '", vi.name, "' has no batch dimension");
      int64_t n = t.shape[0];
      RUNNX_CHECK(n >= 1, kInvalidArgument, "input '", vi.name, "' has batch size 0");
      RUNNX_CHECK(n <= opt_.max_batch_size, kInvalidArgument, "input '", vi.name, "' has batch size ", n,
                  ", more than max_batch_size=", opt_.max_batch_size);
      RUNNX_CHECK(rows < 0 || n == rows, kInvalidArgument, "inputs disagree on the batch size: '", vi.name,
                  "' has ", n, ", an earlier input ", rows);
      rows = n;
    }
    for (int64_t d = batching ? 1 : 0; d < t.rank(); ++d) {
      if (vi.has_shape && vi.dims[d].known())
        RUNNX_CHECK(t.shape[d] == vi.dims[d].value, kInvalidArgument, "input '", vi.name, "' has shape ",
                    shape_str(t.shape), "; the model expects ", dims_str(vi));
    }
    // The key: dtype and every non-batch dim of every input, then the outputs asked for.
    key += std::to_string(static_cast<int>(t.dtype));
    for (int64_t d = batching ? 1 : 0; d < t.rank(); ++d) key += ',' + std::to_string(t.shape[d]);
    key += ';';
  }
  if (r.output_names.empty()) {
    for (const ValueInfo& vi : session_.outputs()) r.output_names.push_back(vi.name);
  } else {
    for (const std::string& name : r.output_names) {
      bool found = false;
      for (const ValueInfo& vi : session_.outputs()) found = found || vi.name == name;
      RUNNX_CHECK(found, kInvalidArgument, "unknown output '", name, "'");
    }
  }
  for (const std::string& name : r.output_names) key += '|' + name;
  r.feed_names = input_names_;
  r.feeds = std::move(ordered);
  r.rows = rows;
  r.key = std::move(key);
  r.enqueued = Clock::now();  // queue time counts from here: a request may wait to be handed over
}

SubmitResult Batcher::submit(Request* r, bool wake) {
  // close() waits until no submit is between its closed check and its push.
  submitting_.fetch_add(1, std::memory_order_seq_cst);
  SubmitResult res = enqueue(r, wake);
  submitting_.fetch_sub(1, std::memory_order_seq_cst);
  return res;
}

void Batcher::notify() {
  const bool deadline = deadline_since_notify_.exchange(false, std::memory_order_seq_cst);
  if (deadline || arrived_rows_.load(std::memory_order_seq_cst) >= wake_at_rows_.load(std::memory_order_seq_cst))
    wake_.notify_all();
  if (deadline) reaper_wake_.notify_all();
}

bool Batcher::run_inline(Request& r) {
  Request* one = &r;
  return run_inline(&one, 1);
}

bool Batcher::run_inline(Request* const* reqs, size_t count) {
  const int64_t recent = recent_compute_us_.load(std::memory_order_relaxed);
  // 0 means never, even for batches that took under a microsecond (recent rounds to 0 then).
  if (count == 0 || opt_.max_inline_us <= 0 || recent < 0 || recent > opt_.max_inline_us ||
      queued_.load(std::memory_order_seq_cst) != 0)
    return false;
  int64_t rows = 0;
  const Clock::time_point now = Clock::now();
  for (size_t i = 0; i < count; ++i) {
    const Request& r = *reqs[i];
    if (i > 0 && (opt_.max_batch_size == 0 || r.key != reqs[0]->key)) return false;
    rows += r.rows;
    // A timeout that passed while the request waited to be handed over: the queue expires it.
    if (r.timeout_us > 0 && r.timeout_us <= kMaxWaitUs && now - r.enqueued >= std::chrono::microseconds(r.timeout_us))
      return false;
  }
  if (count > 1 && rows > opt_.max_batch_size) return false;
  // Counted as a submit: close() returns only after this run has finished.
  submitting_.fetch_add(1, std::memory_order_seq_cst);
  bool ran = false;
  if (!closed_.load(std::memory_order_seq_cst)) {
    // A worker may start a batch meanwhile: instance_count bounds the runs loosely (at most one over).
    if (running_.fetch_add(1, std::memory_order_seq_cst) < opt_.instance_count) {
      Batch batch;
      const Clock::time_point start = Clock::now();
      for (size_t i = 0; i < count; ++i) {
        Request* r = reqs[i];
        r->seq = next_seq_.fetch_add(1, std::memory_order_relaxed);
        r->queue_us = micros(start - r->enqueued);
        batch.reqs.push_back(r);
      }
      batch.rows = rows;
      add_in_flight(rows);
      running_rows_.fetch_add(rows, std::memory_order_seq_cst);
      inline_runs_.fetch_add(static_cast<int64_t>(count), std::memory_order_relaxed);
      run_batch(batch, false);  // frees the slot
      ran = true;
    } else {
      running_.fetch_sub(1, std::memory_order_seq_cst);
    }
  }
  submitting_.fetch_sub(1, std::memory_order_seq_cst);
  return ran;
}

SubmitResult Batcher::enqueue(Request* r, bool wake) {
  if (closed_.load(std::memory_order_seq_cst)) return SubmitResult::kClosed;
  if (queued_.fetch_add(1, std::memory_order_relaxed) >= opt_.max_queue_size) {
    queued_.fetch_sub(1, std::memory_order_relaxed);
    rejected_.fetch_add(1, std::memory_order_relaxed);
    return SubmitResult::kQueueFull;
  }
  r->seq = next_seq_.fetch_add(1, std::memory_order_relaxed);
  r->seen = Clock::time_point{};
  // Timeouts beyond kMaxWaitUs (about 11 days) mean none: the sum must not overflow the clock.
  r->deadline = r->timeout_us > 0 && r->timeout_us <= kMaxWaitUs
                    ? r->enqueued + std::chrono::microseconds(r->timeout_us)
                    : Clock::time_point::max();
  const int64_t rows = r->rows;
  const bool has_deadline = r->deadline != Clock::time_point::max();
  // Counted before the push: a leader that sees the request also sees it in flight.
  add_in_flight(rows);
  // The ring holds at least max_queue_size cells and queued_ counts every request in the ring,
  // so this push has room; the check is a guard, not a path.
  if (!ring_.try_push(r)) {
    in_flight_rows_.fetch_sub(rows, std::memory_order_seq_cst);
    queued_.fetch_sub(1, std::memory_order_relaxed);
    rejected_.fetch_add(1, std::memory_order_relaxed);
    return SubmitResult::kQueueFull;
  }
  // From here `r` may already be answered and freed by its consumer: do not touch it.
  // A deadline always wakes the leader: it may have to expire this request before its timer.
  const int64_t total = arrived_rows_.fetch_add(rows, std::memory_order_seq_cst) + rows;
  if (!wake) {
    if (has_deadline) deadline_since_notify_.store(true, std::memory_order_seq_cst);
    return SubmitResult::kAccepted;
  }
  if (has_deadline || total >= wake_at_rows_.load(std::memory_order_seq_cst)) wake_.notify_all();
  if (has_deadline) reaper_wake_.notify_all();
  return SubmitResult::kAccepted;
}

void Batcher::add_in_flight(int64_t rows) {
  const int64_t now = in_flight_rows_.fetch_add(rows, std::memory_order_seq_cst) + rows;
  int64_t peak = in_flight_peak_.load(std::memory_order_relaxed);
  while (peak < now && !in_flight_peak_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

void Batcher::end_period() {
  const int64_t peak = in_flight_peak_.exchange(in_flight_rows_.load(std::memory_order_seq_cst),
                                                std::memory_order_relaxed);
  // Fewer expected rows may be all the waiting leader needs (another worker leads meanwhile).
  if (expected_rows_.exchange(peak, std::memory_order_seq_cst) > peak) wake_.notify_all();
}

void Batcher::worker_main() {
  Batch batch;
  for (;;) {
    {
      std::lock_guard<std::mutex> lead_lock(sched_mu_);
      if (!lead(batch)) break;
      running_.fetch_add(1, std::memory_order_seq_cst);
      running_rows_.fetch_add(batch.rows, std::memory_order_seq_cst);
    }
    run_batch(batch);  // frees the slot
    batch.reqs.clear();
    batch.rows = 0;
  }
  std::lock_guard<std::mutex> lk(close_mu_);
  --live_workers_;
  workers_exited_.notify_all();
}

void Batcher::reaper_main() {
  std::vector<Request*> expired;
  while (!reaper_stop_.load(std::memory_order_seq_cst)) {
    uint32_t epoch = reaper_wake_.prepare();
    Clock::time_point next = Clock::time_point::max();
    // A held mutex means a worker leads and watches the deadlines itself; when it leaves to run
    // a batch with deadlines still pending, it wakes us.
    if (sched_mu_.try_lock()) {
      drain_ring();
      expired.clear();
      pending_.take_expired(Clock::now(), expired);
      queued_.fetch_sub(static_cast<int64_t>(expired.size()), std::memory_order_relaxed);
      for (Request* r : expired)
        answer(r, Outcome::kDeadlineExceeded, ErrorKind::kRuntime,
               str_cat("the request's timeout of ", r->timeout_us, " us passed while it was queued"));
      next = pending_.next_deadline();
      sched_mu_.unlock();
    }
    if (!reaper_stop_.load(std::memory_order_seq_cst)) reaper_wake_.wait(epoch, next);
    reaper_wake_.done();
  }
}

bool Batcher::lead(Batch& batch) {
  const Clock::time_point term_start = Clock::now();
  for (;;) {
    // Rows counted from here on are either drained below or seen by the check before sleeping.
    const int64_t base_rows = arrived_rows_.load(std::memory_order_seq_cst);
    uint32_t epoch = wake_.prepare();
    // Read before draining: once stopping_ is set no submit is in flight, so a drain after this
    // read sees every request there will ever be.
    bool stopping = stopping_.load(std::memory_order_seq_cst);
    drain_ring();
    if (discard_.load(std::memory_order_seq_cst) && !pending_.empty()) {
      std::vector<Request*> dropped = pending_.take_all();
      queued_.fetch_sub(static_cast<int64_t>(dropped.size()), std::memory_order_relaxed);
      for (Request* r : dropped)
        answer(r, Outcome::kClosed, ErrorKind::kRuntime, "the batcher was closed before this request ran");
    }
    Clock::time_point wake_at = Clock::time_point::max();
    int64_t need_rows = 1;
    bool found = choose(Clock::now(), term_start, stopping, batch, wake_at, need_rows);
    if (found || (stopping && pending_.empty())) {
      wake_.done();
      // Leaving to run a batch: the deadlines still pending are the reaper's while no one leads.
      if (found && pending_.next_deadline() != Clock::time_point::max()) reaper_wake_.notify_all();
      return found;
    }
    // Producers wake us once need_rows more rows arrived (or on a deadline / close); the
    // timer covers the rest. Publish the threshold, then re-check what arrived meanwhile.
    wake_at_rows_.store(base_rows + need_rows, std::memory_order_seq_cst);
    if (arrived_rows_.load(std::memory_order_seq_cst) < base_rows + need_rows) wake_.wait(epoch, wake_at);
    wake_.done();
  }
}

void Batcher::drain_ring() {
  Request* r;
  while (ring_.try_pop(r)) pending_.add(r);
}

// need_rows: how many newly arrived rows could change the decision when none is ready now. Idle:
// 1 (a first request starts a timer). Else the fewest rows that fill a waiting group (a group
// fills only when an arrival brings at least that many rows; a new key's group needs
// max_batch_size, and its timer runs later than the waiting ones'). With preferred sizes, 1: an
// arrival of higher priority can change the prefix sums. Or the rows still missing from the
// expected in flight.
bool Batcher::choose(Clock::time_point now, Clock::time_point term_start, bool stopping, Batch& batch,
                     Clock::time_point& wake_at, int64_t& need_rows) {
  const int64_t max_rows = opt_.max_batch_size;
  const auto delay = std::chrono::microseconds(opt_.max_queue_delay_us);
  expired_scratch_.clear();
  pending_.take_expired(now, expired_scratch_);
  if (!expired_scratch_.empty()) {
    queued_.fetch_sub(static_cast<int64_t>(expired_scratch_.size()), std::memory_order_relaxed);
    for (Request* r : expired_scratch_)
      answer(r, Outcome::kDeadlineExceeded, ErrorKind::kRuntime,
             str_cat("the request's timeout of ", r->timeout_us, " us passed while it was queued"));
  }
  wake_at = std::min(wake_at, pending_.next_deadline());

  // Each key's candidates: its requests in service order while they fit. Stop at the first that
  // does not fit: taking a later, smaller one would overtake it.
  size_t used = 0;
  pending_.for_each_queue([&](const PendingRequests::Queue& q) {
    if (used == groups_.size()) groups_.emplace_back();
    Group& g = groups_[used++];
    g.reqs.clear();
    g.rows = 0;
    g.full = false;
    g.oldest = Clock::time_point::max();
    g.first_deadline = g.first_enqueued = Clock::time_point::max();
    g.deadline_margin = {};
    for (Request* r : q) {
      if (max_rows > 0 && g.rows + r->rows > max_rows) {
        g.full = true;
        break;
      }
      // A request that came while every worker was busy waits from the moment one is free.
      if (r->seen == Clock::time_point{}) r->seen = std::max(r->enqueued, term_start);
      g.reqs.push_back(r);
      g.rows += r->rows;
      g.oldest = std::min(g.oldest, r->seen);
      if (r->deadline < g.first_deadline) {
        g.first_deadline = r->deadline;
        g.deadline_margin = leave_margin(r->timeout_us);
      }
      g.first_enqueued = std::min(g.first_enqueued, r->enqueued);
      if (max_rows == 0 || g.rows == max_rows) {  // no batch dim: every request runs alone
        g.full = true;
        break;
      }
    }
  });
  // Keys are served in the order of their first request.
  group_order_.resize(used);
  for (size_t i = 0; i < used; ++i) group_order_[i] = static_cast<int>(i);
  std::sort(group_order_.begin(), group_order_.end(),
            [&](int a, int b) { return ServiceOrder()(groups_[a].reqs.front(), groups_[b].reqs.front()); });

  need_rows = pending_.empty() || !opt_.preferred_batch_sizes.empty() ? 1 : std::max<int64_t>(max_rows, 1);
  // Every row expected in flight is here (queued or running): nobody else is coming soon. Here
  // means seen, not counted in flight: a producer counts its request before pushing it, so a
  // request drained a moment too late would otherwise pass for here, its group would go without
  // it, and it would then wait out the whole delay alone (4 one-row requests went as 3 and 1).
  const int64_t missing = expected_rows_.load(std::memory_order_seq_cst) -
                          (running_rows_.load(std::memory_order_seq_cst) + pending_.rows());
  if (!pending_.empty() && missing > 0) need_rows = std::min(need_rows, missing);
  // Counting the delay from `seen` must not let a request expire where counting it from its
  // arrival would have sent it: such a group leaves shortly before its first deadline. (A timeout
  // shorter than the delay from arrival still expires while queued, as in Triton.)
  for (int gi : group_order_) {
    Group& g = groups_[gi];
    Clock::time_point go_at = g.oldest + delay;
    if (g.first_deadline != Clock::time_point::max())
      go_at = std::min(go_at, std::max(g.first_enqueued + delay, g.first_deadline - g.deadline_margin));
    size_t count = 0;
    if (g.full || stopping || delay.count() == 0 || missing <= 0 || now >= go_at) {
      count = g.reqs.size();
    } else if (!opt_.preferred_batch_sizes.empty()) {
      // The largest preferred size that a prefix of the candidates fills exactly goes now.
      const auto& pref = opt_.preferred_batch_sizes;
      int64_t rows = 0;
      for (size_t i = 0; i < g.reqs.size(); ++i) {
        rows += g.reqs[i]->rows;
        if (std::find(pref.begin(), pref.end(), rows) != pref.end()) count = i + 1;
      }
    }
    if (count == 0) {
      wake_at = std::min(wake_at, go_at);
      need_rows = std::min(need_rows, std::max<int64_t>(max_rows - g.rows, 1));
      continue;
    }
    take(g, count, now, batch);
    return true;
  }
  return false;
}

void Batcher::take(Group& g, size_t count, Clock::time_point now, Batch& batch) {
  for (size_t i = 0; i < count; ++i) {
    Request* r = g.reqs[i];
    pending_.remove(r);
    r->queue_us = micros(now - r->enqueued);
    batch.reqs.push_back(r);
    batch.rows += r->rows;
  }
  queued_.fetch_sub(static_cast<int64_t>(count), std::memory_order_relaxed);
}

void Batcher::run_batch(Batch& batch, bool deliver) {
  const Clock::time_point start = Clock::now();
  Request* first = batch.reqs.front();
  const bool split = opt_.max_batch_size > 0;
  Outcome outcome = Outcome::kOk;
  ErrorKind kind = ErrorKind::kRuntime;
  std::string error;
  try {
    std::vector<Tensor> feeds;
    if (batch.reqs.size() == 1) {
      feeds = first->feeds;  // runs on the request's own buffers
    } else {
      for (size_t j = 0; j < first->feeds.size(); ++j) {
        Shape shape = first->feeds[j].shape;
        shape[0] = batch.rows;
        Tensor t = Tensor::empty(first->feeds[j].dtype, shape);
        auto* dst = static_cast<uint8_t*>(t.data);
        for (Request* r : batch.reqs) {
          size_t n = r->feeds[j].nbytes();
          if (n) std::memcpy(dst, r->feeds[j].data, n);
          dst += n;
        }
        feeds.push_back(std::move(t));
      }
    }
    std::vector<Tensor> outs = session_.run(first->feed_names, feeds, first->output_names);
    if (!split) {
      first->outputs = std::move(outs);
    } else {
      for (size_t k = 0; k < outs.size(); ++k) {
        Tensor& o = outs[k];
        RUNNX_CHECK(o.rank() >= 1 && o.shape[0] == batch.rows, kRuntime, "output '", first->output_names[k],
                    "' has shape ", shape_str(o.shape), ", not the batch size ", batch.rows,
                    " first: with max_batch_size > 0 every output must carry the batch dim first");
        if (!o.owner) o = Tensor::clone(o);  // views below must keep the bytes alive
      }
      for (Request* r : batch.reqs) r->outputs.reserve(outs.size());
      for (const Tensor& o : outs) {
        const size_t row_bytes = o.nbytes() / static_cast<size_t>(batch.rows);
        int64_t row = 0;
        for (Request* r : batch.reqs) {
          Tensor v;
          v.dtype = o.dtype;
          v.shape = o.shape;
          v.shape[0] = r->rows;
          v.data = static_cast<uint8_t*>(o.data) + row * row_bytes;
          v.owner = o.owner;
          r->outputs.push_back(std::move(v));
          row += r->rows;
        }
      }
    }
  } catch (const Error& e) {
    outcome = Outcome::kFailed;
    kind = e.kind();
    error = e.what();
  } catch (const std::exception& e) {
    outcome = Outcome::kFailed;
    error = e.what();
  }
  const int64_t compute_us = micros(Clock::now() - start);
  // Falls at once (a cold first run must not keep requests off the inline path), rises by a
  // quarter of the gap (one slow moment must not either).
  const int64_t recent = recent_compute_us_.load(std::memory_order_relaxed);
  recent_compute_us_.store(recent < 0 || compute_us < recent ? compute_us : (3 * recent + compute_us) / 4,
                           std::memory_order_relaxed);
  batches_.fetch_add(1, std::memory_order_relaxed);
  batch_sizes_[std::min<int64_t>(batch.rows, opt_.max_batch_size + 1)].fetch_add(1, std::memory_order_relaxed);
  // Free the slot before answering: a lone request that the answer sets off may then run inline.
  running_.fetch_sub(1, std::memory_order_seq_cst);
  for (Request* r : batch.reqs) {
    r->compute_us = compute_us;
    r->batch_size = batch.rows;
    if (outcome != Outcome::kOk) r->outputs.clear();
    running_rows_.fetch_sub(r->rows, std::memory_order_seq_cst);
    if (deliver)
      answer(r, outcome, kind, error);
    else
      settle(r, outcome, kind, error);
  }
  end_period();
}

void Batcher::answer(Request* r, Outcome outcome, ErrorKind kind, std::string msg) {
  settle(r, outcome, kind, std::move(msg));
  r->channel->push(r);  // the consumer owns `r` from here on
}

void Batcher::settle(Request* r, Outcome outcome, ErrorKind kind, std::string msg) {
  in_flight_rows_.fetch_sub(r->rows, std::memory_order_seq_cst);
  r->outcome = outcome;
  r->error_kind = kind;
  r->error = std::move(msg);
  switch (outcome) {
    case Outcome::kOk: ok_.fetch_add(1, std::memory_order_relaxed); break;
    case Outcome::kDeadlineExceeded: expired_.fetch_add(1, std::memory_order_relaxed); break;
    default: failed_.fetch_add(1, std::memory_order_relaxed); break;
  }
  if (outcome == Outcome::kOk || outcome == Outcome::kFailed) {
    queue_us_.fetch_add(r->queue_us, std::memory_order_relaxed);
    compute_us_.fetch_add(r->compute_us, std::memory_order_relaxed);
  }
}

void Batcher::close(bool drain, double timeout_s) {
  std::lock_guard<std::mutex> one_at_a_time(close_call_mu_);
  if (!closed_.exchange(true, std::memory_order_seq_cst)) {
    while (submitting_.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
  }
  if (!drain) discard_.store(true, std::memory_order_seq_cst);
  stopping_.store(true, std::memory_order_seq_cst);
  wake_.notify_all();
  {
    std::unique_lock<std::mutex> lk(close_mu_);
    auto exited = [this] { return live_workers_ == 0; };
    if (timeout_s >= 0 &&
        !workers_exited_.wait_for(lk, std::chrono::duration<double>(timeout_s), exited)) {
      discard_.store(true, std::memory_order_seq_cst);  // give up on what is still queued
      wake_.notify_all();
    }
    workers_exited_.wait(lk, exited);
  }
  for (std::thread& t : workers_)
    if (t.joinable()) t.join();
  reaper_stop_.store(true, std::memory_order_seq_cst);
  reaper_wake_.notify_all();
  if (reaper_.joinable()) reaper_.join();
}

BatcherStats Batcher::stats() const {
  BatcherStats s;
  s.requests_ok = ok_.load();
  s.requests_failed = failed_.load();
  s.requests_rejected = rejected_.load();
  s.requests_expired = expired_.load();
  s.batches = batches_.load();
  s.inline_runs = inline_runs_.load();
  s.queue_us = queue_us_.load();
  s.compute_us = compute_us_.load();
  for (int64_t i = 0; i <= std::max<int64_t>(opt_.max_batch_size, 1); ++i) s.batch_sizes.push_back(batch_sizes_[i].load());
  return s;
}

}  // namespace runnx
