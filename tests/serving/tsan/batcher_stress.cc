// Stress test of the Batcher with a real Session, meant for a ThreadSanitizer build (not CI):
//   ninja -C build/tsan serving_batcher_stress && build/tsan/serving_batcher_stress tests/models/mlp_tiny.onnx
// Producers submit requests of 1..3 rows with random priorities and some tiny timeouts, retrying
// on QueueFull; two consumers wait on their channels' eventfds. Every accepted request must be
// answered exactly once, with outputs equal to its own Session::run. Round 2 closes the batcher
// (without drain) while producers are still submitting.
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <random>
#include <thread>
#include <vector>

#include "onnx/model_reader.h"
#include "serving/batcher.h"

using namespace runnx;

namespace {

struct Expected {
  std::vector<Tensor> outputs;
  int64_t timeout_us = 0;
  std::atomic<int> answers{0};
};

std::atomic<int> failures{0};

void expect(bool ok, const char* what) {
  if (!ok && failures.fetch_add(1) < 20) std::fprintf(stderr, "FAIL: %s\n", what);
}

bool same(const Tensor& a, const Tensor& b) {
  if (a.shape != b.shape || a.dtype != DType::kF32) return false;
  for (int64_t i = 0; i < a.numel(); ++i)
    if (std::fabs(a.ptr<float>()[i] - b.ptr<float>()[i]) > 1e-4f * (1 + std::fabs(b.ptr<float>()[i]))) return false;
  return true;
}

void round(Session& s, bool close_early) {
  const ValueInfo& in = s.inputs()[0];
  const int64_t features = in.dims[1].value;
  BatcherOptions o;
  o.max_batch_size = 8;
  o.max_queue_delay_us = close_early ? 1000000 : 200;  // round 2: partial batches wait, so close discards
  o.preferred_batch_sizes = {4};
  o.max_queue_size = 64;
  o.instance_count = 3;
  Batcher b(s, o);
  CompletionChannel channels[2] = {CompletionChannel(false), CompletionChannel(false)};
  const int producers = 6, per_producer = 400;
  std::vector<Expected> expected(producers * per_producer);
  std::atomic<int> accepted{0}, answered{0}, rejected{0};
  std::atomic<bool> producers_done{false};

  std::vector<std::thread> consumers;
  for (int c = 0; c < 2; ++c)
    consumers.emplace_back([&, c] {
      for (;;) {
        if (producers_done.load() && answered.load() == accepted.load()) return;
        uint64_t n;
        if (read(channels[c].fd(), &n, sizeof n) < 0) continue;
        for (Request* r : channels[c].take_all()) {
          auto* e = static_cast<Expected*>(r->user);
          expect(e->answers.fetch_add(1) == 0, "answered once");
          if (r->outcome == Outcome::kOk) {
            expect(r->outputs.size() == e->outputs.size(), "output count");
            for (size_t k = 0; k < r->outputs.size(); ++k) expect(same(r->outputs[k], e->outputs[k]), "outputs match");
            expect(r->batch_size >= r->rows && r->batch_size <= 8, "batch size in range");
          } else if (r->outcome == Outcome::kDeadlineExceeded) {
            expect(e->timeout_us > 0, "only requests with a timeout expire");
          } else {
            expect(close_early && r->outcome == Outcome::kClosed, "no failures");
          }
          delete r;
          answered.fetch_add(1);
        }
      }
    });

  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p)
    threads.emplace_back([&, p] {
      std::mt19937 rng(p);
      for (int i = 0; i < per_producer; ++i) {
        Expected& e = expected[p * per_producer + i];
        int64_t rows = 1 + rng() % 3;
        Tensor x = Tensor::empty(DType::kF32, {rows, features});
        for (int64_t k = 0; k < x.numel(); ++k) x.ptr<float>()[k] = static_cast<float>(rng() % 1000) / 500.f - 1.f;
        x.ptr<float>()[0] = static_cast<float>(p * per_producer + i);
        e.outputs = s.run({in.name}, {x}, {});
        e.timeout_us = rng() % 10 == 0 ? 1 + rng() % 100 : 0;
        auto* r = new Request;
        r->feed_names = {in.name};
        r->feeds = {x};
        r->priority = static_cast<int>(rng() % 4);
        r->timeout_us = e.timeout_us;
        r->channel = &channels[p % 2];
        r->user = &e;
        b.prepare(*r);
        for (;;) {
          accepted.fetch_add(1);  // counted before the push: a consumer may answer it at once
          SubmitResult res = b.submit(r);
          if (res == SubmitResult::kAccepted) break;
          accepted.fetch_sub(1);
          if (res == SubmitResult::kClosed) {
            delete r;
            return;
          }
          rejected.fetch_add(1);
          std::this_thread::yield();
        }
        if (close_early && p == 0 && i == per_producer / 4) b.close(false, -1);
      }
    });
  for (auto& t : threads) t.join();
  b.close(true, -1);
  producers_done.store(true);
  for (auto& ch : channels) ch.poke();
  for (auto& t : consumers) t.join();
  BatcherStats st = b.stats();
  expect(answered.load() == accepted.load(), "every accepted request answered");
  expect(st.requests_ok + st.requests_expired + st.requests_failed == accepted.load(), "stats add up");
  std::printf("round %s: %d accepted, %lld ok, %lld expired, %lld closed, %d queue-full retries, %lld batches\n",
              close_early ? "close-early" : "drain", accepted.load(), (long long)st.requests_ok,
              (long long)st.requests_expired, (long long)st.requests_failed, rejected.load(), (long long)st.batches);
}

}  // namespace

int main(int argc, char** argv) {
  alarm(600);
  SessionOptions so;
  so.intra_op_num_threads = 2;
  Session s(load_model_from_file(argc > 1 ? argv[1] : "tests/models/mlp_tiny.onnx"), so);
  round(s, false);
  round(s, true);
  std::printf(failures ? "serving_batcher_stress: %d failures\n" : "serving_batcher_stress: ok\n", failures.load());
  return failures ? 1 : 0;
}
