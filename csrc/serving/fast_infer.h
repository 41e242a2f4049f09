// The server's fast inference path: a complete `POST .../infer` request with the binary tensor
// extension goes from its raw bytes to the Batcher, and its answer back to the full HTTP response
// bytes, without building Python objects per request.
//
// It serves only what the Python path has already served: after answering a request, the Python
// path teaches (`learn`) the request's route and its JSON inference header, with everything it
// derived from them (inputs, outputs, priority, timeout, the response's JSON pieces). A later
// request whose route, header bytes and sizes match runs here; anything else (an unknown header,
// JSON tensor data, errors, unusual HTTP) goes to the Python path, so behaviour is unchanged.
// Failed requests are handed back to the Python side, which words the error as it always does.
//
// Not thread safe: one owner (the event loop's thread) calls it. The Batcher's workers only push
// finished requests into `channel()`.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "serving/batcher.h"
#include "serving/completion_channel.h"
#include "serving/request.h"

namespace runnx {

// Histograms and sums of answered requests, bucketed as the server's metrics are, to be taken
// (and reset) by the metrics reader.
struct FastStats {
  FastStats(std::vector<double> latency_bounds, std::vector<double> batch_bounds);
  void record(int64_t rows, int64_t queue_us, int64_t compute_us, int64_t batch_size, double e2e_s);

  struct Histogram {
    std::vector<double> bounds;
    std::vector<int64_t> counts;  // counts[i]: values in (bounds[i-1], bounds[i]]; last: above all
    double sum = 0;
    int64_t count = 0;
    void observe(double v);
    void reset();
  };
  Histogram queue, compute, e2e, batch;
  int64_t success = 0, success_ns = 0, queue_ns = 0, compute_ns = 0, inference_count = 0;
  int64_t last_inference_ms = 0;
  std::unordered_map<int64_t, std::pair<double, double>> batch_execs;  // batch -> (share, ns)
  void reset();
};

// What a learned request header stands for.
struct FastTemplate {
  struct Input {
    std::string name;
    DType dtype;
    Shape shape;
    size_t bytes;
  };
  std::vector<Input> inputs;             // in the order their bytes follow the header
  size_t binary_bytes = 0;
  std::vector<std::string> output_names;  // requested, in response order
  std::vector<std::string> output_heads;  // per output: `{"name":"<n>","datatype":"`
  std::vector<bool> output_binary;        // per output: binary data, else JSON "data"
  std::string response_prefix;           // `{"model_name":..,"model_version":..[,"id":..],"outputs":[`
  int priority = 0;
  int64_t timeout_us = 0;
  int64_t rows = 1;
};

// One served model version the fast path knows.
struct FastModel {
  Batcher* batcher = nullptr;
  void* owner = nullptr;  // the owner's handle on what keeps `batcher` alive (opaque here)
  std::unordered_map<std::string, std::shared_ptr<const FastTemplate>> templates;  // by header bytes
  std::shared_ptr<FastStats> stats;
};

struct FastRequest {
  Request req;
  std::shared_ptr<FastModel> model;
  std::shared_ptr<const FastTemplate> tmpl;
  std::shared_ptr<CompletionChannel> channel;  // outlives the request even if the path is gone
  void* user = nullptr;                        // the owner's connection handle
  std::chrono::steady_clock::time_point t0;
  uint64_t request_number = 0;                 // for the x-request-id
  std::string path;                            // the route, for the Python side's error logs
  SubmitResult refused = SubmitResult::kAccepted;
};

// An IEEE half as a double (JSON outputs of FP16 tensors).
double half_to_double(uint16_t h);

class FastInfer {
 public:
  FastInfer(std::string auth_header, int64_t max_body_bytes, std::string request_id_prefix);

  // Models by the owner's key (one per served model version).
  std::shared_ptr<FastModel> find_model(const void* key) const;
  void add_model(const void* key, std::shared_ptr<FastModel> m);
  void add_route(std::string path, std::shared_ptr<FastModel> m);
  void add_template(FastModel& m, std::string header, std::shared_ptr<const FastTemplate> t);
  bool has_template(std::string_view path, std::string_view header) const;
  // Forgets every route and model (the repository changed); requests in flight finish.
  std::vector<std::shared_ptr<FastModel>> clear();

  // Takes a complete request whose route and header were learned: checks it, copies its
  // tensors, prepares it with its Batcher and holds it for dispatch(). nullptr: not taken
  // (nothing happened; the caller's full path handles the bytes).
  FastRequest* take(std::string_view data, void* user);
  size_t prepared_count() const { return prepared_.size(); }
  std::vector<FastRequest*> take_prepared();
  // Queues requests (one notify per Batcher); appends those refused to `answered`.
  void submit_all(std::vector<FastRequest*>& reqs, std::vector<FastRequest*>& answered);

  CompletionChannel& channel() { return *channel_; }
  // Records an answered request in its model's stats; true when it succeeded.
  bool settle(FastRequest& f);
  // The full HTTP response of a succeeded request: its JSON part, the whole size, the bytes.
  std::string response_json(const FastRequest& f) const;
  size_t response_size(const FastRequest& f, const std::string& json) const;
  void render_response(const FastRequest& f, const std::string& json, char* out) const;
  std::string request_id(const FastRequest& f) const;

  void set_date_line(std::string line) { date_line_ = std::move(line); }
  uint64_t next_request_number() { return ++request_counter_; }
  int64_t taken() const { return taken_; }  // requests take() accepted, ever
  int64_t take_responses_ok() {
    int64_t n = responses_ok_;
    responses_ok_ = 0;
    return n;
  }

 private:
  std::string auth_header_;  // "Bearer <token>"; empty: no auth
  int64_t max_body_bytes_;
  std::string rid_prefix_;
  std::string date_line_;
  uint64_t request_counter_ = 0;
  int64_t responses_ok_ = 0;
  int64_t taken_ = 0;
  std::unordered_map<std::string, std::shared_ptr<FastModel>> routes_;
  std::unordered_map<const void*, std::shared_ptr<FastModel>> models_;
  std::shared_ptr<CompletionChannel> channel_;
  std::vector<FastRequest*> prepared_;
};

}  // namespace runnx
