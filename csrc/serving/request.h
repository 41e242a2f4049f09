// One inference request as it travels through the batcher: its feeds, what it asks for, its
// scheduling attributes, and, once answered, its outputs or error and its own timings.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "ir/tensor.h"

namespace runnx {

class CompletionChannel;

// How a request ended. kFailed carries an ErrorKind (bad feeds found at run time, a kernel error).
enum class Outcome { kPending, kOk, kFailed, kDeadlineExceeded, kClosed };

struct Request {
  using Clock = std::chrono::steady_clock;

  // Filled by the caller before Batcher::prepare: feeds by name, requested outputs (empty: all).
  std::vector<std::string> feed_names;
  std::vector<Tensor> feeds;
  std::vector<std::string> output_names;
  int priority = 0;                // lower is served first
  int64_t timeout_us = 0;          // 0: no deadline
  CompletionChannel* channel = nullptr;  // where the answer goes
  void* user = nullptr;            // opaque to the batcher (the bindings keep a Python reference)

  // Filled by Batcher::prepare / submit: feeds in the session's input order, the batch rows this
  // request brings, and the compatibility key (requests batch together only with equal keys).
  int64_t rows = 1;
  std::string key;
  int key_id = -1;                 // the key interned by the scheduler
  uint64_t seq = 0;                // arrival order, FIFO within a priority
  Clock::time_point enqueued{}, deadline = Clock::time_point::max();
  Clock::time_point seen{};        // when a free worker (the leader) first saw it; {}: not yet

  // The answer.
  Outcome outcome = Outcome::kPending;
  ErrorKind error_kind = ErrorKind::kRuntime;  // when kFailed
  std::string error;
  std::vector<Tensor> outputs;     // in output_names order; views into the batch's outputs
  int64_t queue_us = 0, compute_us = 0, batch_size = 0;

  Request* next_done = nullptr;    // link in the completion channel's stack
};

}  // namespace runnx
