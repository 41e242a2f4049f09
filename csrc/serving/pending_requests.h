// The requests a batcher's leader holds between the ring and a batch: one queue per
// compatibility key, each in service order (priority, then arrival), plus an index by deadline.
// Forming a batch then costs O(keys x max_batch_size) and expiring O(log n) per request, however
// many requests wait. Used by the leader only (no locking inside).
#pragma once
#include <chrono>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "serving/request.h"

namespace runnx {

struct ServiceOrder {
  bool operator()(const Request* a, const Request* b) const {
    return a->priority != b->priority ? a->priority < b->priority : a->seq < b->seq;
  }
};

class PendingRequests {
 public:
  using Clock = std::chrono::steady_clock;
  using Queue = std::set<Request*, ServiceOrder>;

  void add(Request* r);
  void remove(Request* r);
  size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  int64_t rows() const { return rows_; }  // the requests' rows, summed

  // Moves requests whose deadline is at or before `now` into `out`.
  void take_expired(Clock::time_point now, std::vector<Request*>& out);
  Clock::time_point next_deadline() const {
    return by_deadline_.empty() ? Clock::time_point::max() : (*by_deadline_.begin())->deadline;
  }
  // Everything, emptied.
  std::vector<Request*> take_all();

  // The non-empty per-key queues (read-only; remove() through this class).
  template <typename F>
  void for_each_queue(F&& f) const {
    for (const Queue& q : queues_)
      if (!q.empty()) f(q);
  }

 private:
  struct ByDeadline {
    bool operator()(const Request* a, const Request* b) const {
      return a->deadline != b->deadline ? a->deadline < b->deadline : a->seq < b->seq;
    }
  };
  std::unordered_map<std::string, int> key_ids_;
  std::vector<Queue> queues_;  // by key id
  std::set<Request*, ByDeadline> by_deadline_;  // requests with a deadline
  size_t count_ = 0;
  int64_t rows_ = 0;
};

}  // namespace runnx
