#include "serving/pending_requests.h"

namespace runnx {

void PendingRequests::add(Request* r) {
  if (count_ == 0 && key_ids_.size() > 4096) {  // bound the key table under shape churn
    key_ids_.clear();
    queues_.clear();
  }
  auto [it, fresh] = key_ids_.try_emplace(r->key, static_cast<int>(queues_.size()));
  if (fresh) queues_.emplace_back();
  r->key_id = it->second;
  queues_[r->key_id].insert(r);
  if (r->deadline != Clock::time_point::max()) by_deadline_.insert(r);
  ++count_;
  rows_ += r->rows;
}

void PendingRequests::remove(Request* r) {
  queues_[r->key_id].erase(r);
  if (r->deadline != Clock::time_point::max()) by_deadline_.erase(r);
  --count_;
  rows_ -= r->rows;
}

void PendingRequests::take_expired(Clock::time_point now, std::vector<Request*>& out) {
  while (!by_deadline_.empty() && (*by_deadline_.begin())->deadline <= now) {
    Request* r = *by_deadline_.begin();
    by_deadline_.erase(by_deadline_.begin());
    queues_[r->key_id].erase(r);
    --count_;
    rows_ -= r->rows;
    out.push_back(r);
  }
}

std::vector<Request*> PendingRequests::take_all() {
  std::vector<Request*> all;
  all.reserve(count_);
  for (Queue& q : queues_) {
    all.insert(all.end(), q.begin(), q.end());
    q.clear();
  }
  by_deadline_.clear();
  count_ = 0;
  rows_ = 0;
  return all;
}

}  // namespace runnx
