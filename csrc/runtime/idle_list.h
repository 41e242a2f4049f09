// Objects a finished run hands back for the next one (run states, arenas): one waits in a slot
// taken without a lock (the usual case: one call at a time), a few more behind a mutex when calls
// overlap; beyond that they are freed.
#pragma once
#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

namespace runnx {

template <typename T, typename Deleter = std::default_delete<T>>
class IdleList {
 public:
  using Ptr = std::unique_ptr<T, Deleter>;

  explicit IdleList(Deleter d = Deleter()) : deleter_(d) {}
  IdleList(const IdleList&) = delete;
  IdleList& operator=(const IdleList&) = delete;
  ~IdleList() {
    if (T* p = spare_.load()) deleter_(p);
  }

  // An idle object, or an empty pointer (the caller makes a new one).
  Ptr take() {
    if (T* p = spare_.exchange(nullptr, std::memory_order_acquire)) return Ptr(p, deleter_);
    std::lock_guard<std::mutex> lk(mu_);
    if (more_.empty()) return Ptr(nullptr, deleter_);
    Ptr p = std::move(more_.back());
    more_.pop_back();
    return p;
  }

  void give_back(Ptr p) {
    T* none = nullptr;
    if (spare_.compare_exchange_strong(none, p.get(), std::memory_order_release)) {
      p.release();
      return;
    }
    std::lock_guard<std::mutex> lk(mu_);
    if (more_.size() < kMaxMore) more_.push_back(std::move(p));
  }

 private:
  static constexpr size_t kMaxMore = 8;
  Deleter deleter_;
  std::atomic<T*> spare_{nullptr};
  std::mutex mu_;
  std::vector<Ptr> more_;
};

}  // namespace runnx
