// Where finished requests wait for their consumer (a Python event loop or a resolver thread).
// Workers push onto a lock-free stack and, when it was empty, write an eventfd; the consumer
// watches the fd (loop.add_reader, or a blocking read with the GIL released) and takes every
// finished request in one exchange. No worker ever needs the consumer's locks or the GIL.
#pragma once
#include <atomic>
#include <vector>

#include "serving/request.h"

namespace runnx {

class CompletionChannel {
 public:
  // `nonblocking`: the fd is for an event loop (reads never block); otherwise for a thread.
  explicit CompletionChannel(bool nonblocking);
  ~CompletionChannel();
  CompletionChannel(const CompletionChannel&) = delete;
  CompletionChannel& operator=(const CompletionChannel&) = delete;

  int fd() const { return fd_; }
  // Worker side: hands a finished request over (ownership passes to the consumer).
  void push(Request* r);
  // Consumer side: takes everything finished so far, oldest first. The consumer must clear the
  // fd's count first: a non-blocking channel does it here, a blocking one's reader did it while
  // waiting (a read here could block).
  std::vector<Request*> take_all();
  // Wakes the consumer without a request (shutdown).
  void poke();

 private:
  std::atomic<Request*> head_{nullptr};
  int fd_ = -1;
  bool nonblocking_;
};

}  // namespace runnx
