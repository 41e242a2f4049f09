#include "runtime/output_buffers.h"

#include <cstdlib>

#include "common/status.h"

namespace runnx {

Tensor OutputBuffers::take(DType dtype, Shape shape) {
  Tensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  const int64_t want = t.numel() * static_cast<int64_t>(dtype_size(dtype));
  if (want < kMinBytes || want > kMaxIdleBytes) return Tensor::empty(dtype, std::move(t.shape));
  int64_t bytes = (want + 63) / 64 * 64;
  void* p = nullptr;
  std::vector<void*> stale;
  {
    std::lock_guard<std::mutex> lk(mu_);
    ++takes_;
    size_t best = idle_.size();
    for (size_t i = 0; i < idle_.size(); ++i)
      if (idle_[i].bytes >= bytes && idle_[i].bytes <= 2 * bytes &&
          (best == idle_.size() || idle_[i].bytes < idle_[best].bytes))
        best = i;
    if (best < idle_.size()) {
      p = idle_[best].data;
      bytes = idle_[best].bytes;
      idle_bytes_ -= bytes;
      idle_.erase(idle_.begin() + static_cast<std::ptrdiff_t>(best));
      ++reused_;
    }
    size_t kept = 0;
    for (const Idle& b : idle_) {
      if (takes_ - b.since > kMaxIdleTakes) {
        stale.push_back(b.data);
        idle_bytes_ -= b.bytes;
      } else {
        idle_[kept++] = b;
      }
    }
    idle_.resize(kept);
  }
  for (void* q : stale) std::free(q);
  if (!p) p = std::aligned_alloc(64, static_cast<size_t>(bytes));
  RUNNX_CHECK(p, kResourceExhausted, "out of memory allocating ", want, " bytes");
  std::weak_ptr<OutputBuffers> home = weak_from_this();
  t.owner = std::shared_ptr<void>(p, [home, bytes](void* q) {
    if (std::shared_ptr<OutputBuffers> cache = home.lock()) cache->give_back(q, bytes);
    else std::free(q);
  });
  t.data = p;
  return t;
}

void OutputBuffers::give_back(void* data, int64_t bytes) {
  std::vector<void*> drop;
  {
    std::lock_guard<std::mutex> lk(mu_);
    idle_.push_back({bytes, data, takes_});
    idle_bytes_ += bytes;
    size_t oldest = 0;
    while (idle_.size() - oldest > kMaxIdle || idle_bytes_ > kMaxIdleBytes) {
      drop.push_back(idle_[oldest].data);
      idle_bytes_ -= idle_[oldest].bytes;
      ++oldest;
    }
    idle_.erase(idle_.begin(), idle_.begin() + static_cast<std::ptrdiff_t>(oldest));
  }
  for (void* p : drop) std::free(p);
}

int64_t OutputBuffers::reused() const {
  std::lock_guard<std::mutex> lk(mu_);
  return reused_;
}

int64_t OutputBuffers::idle_bytes() const {
  std::lock_guard<std::mutex> lk(mu_);
  return idle_bytes_;
}

OutputBuffers::~OutputBuffers() {
  for (const Idle& b : idle_) std::free(b.data);
}

}  // namespace runnx
