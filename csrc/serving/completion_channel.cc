#include "serving/completion_channel.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace runnx {

CompletionChannel::CompletionChannel(bool nonblocking) : nonblocking_(nonblocking) {
  fd_ = eventfd(0, EFD_CLOEXEC | (nonblocking ? EFD_NONBLOCK : 0));
  RUNNX_CHECK(fd_ >= 0, kResourceExhausted, "eventfd: ", std::strerror(errno));
}

CompletionChannel::~CompletionChannel() {
  if (fd_ >= 0) close(fd_);
}

void CompletionChannel::poke() {
  uint64_t one = 1;
  // Cannot fail short of a counter overflow (2^64 - 1 unread pokes); EINTR is retried.
  while (write(fd_, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

void CompletionChannel::push(Request* r) {
  Request* old = head_.load(std::memory_order_relaxed);
  do {
    r->next_done = old;
  } while (!head_.compare_exchange_weak(old, r, std::memory_order_release, std::memory_order_relaxed));
  // Only the push onto an empty stack signals: the consumer clears the fd before it takes the
  // stack, so anything pushed onto a non-empty stack is taken by a take_all still to come.
  if (old == nullptr) poke();
}

std::vector<Request*> CompletionChannel::take_all() {
  if (nonblocking_) {
    uint64_t count;
    while (read(fd_, &count, sizeof count) < 0 && errno == EINTR) {
    }
  }
  Request* r = head_.exchange(nullptr, std::memory_order_acquire);
  std::vector<Request*> out;
  for (; r; r = r->next_done) out.push_back(r);
  std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace runnx
