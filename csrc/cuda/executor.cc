// The CUDA executor: runs a session's steps in order, device steps through their CUDA kernels on
// one stream per run, CPU steps through the session's CPU kernels, copying a value across only
// when a reader on the other side needs it (host copies go through pinned staging). Device memory
// is planned like the CPU arena: the first run of an input signature observes (cudaMalloc per
// value), later runs take one cudaMalloc'd arena per concurrent run. With enable_cuda_graph, a
// signature whose every step is on the device is captured once and replayed.
#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <shared_mutex>

#include "cuda/cuda_kernel.h"
#include "cuda/device.h"
#include "cuda/device_memory.h"
#include "cuda/session_hooks.h"
#include "runtime/plan.h"
#include "runtime/session.h"

namespace runnx::cuda {
namespace {

bool option_flag(const std::map<std::string, std::string>& o, const std::string& key) {
  auto it = o.find(key);
  if (it == o.end()) return false;
  const std::string& v = it->second;
  if (v == "1" || v == "true" || v == "True") return true;
  if (v == "0" || v == "false" || v == "False") return false;
  fail(ErrorKind::kInvalidArgument, "CUDAExecutionProvider option ", key, "='", v, "' must be 0 or 1");
}

// What one run needs from the device besides the plan: a stream, staging and scratch.
struct RunSlot {
  cudaStream_t stream = nullptr;
  PinnedStaging staging;
  DeviceBuffer scratch;
  // Device copies of host values (boundary copies): one region, sized by the largest run so far
  // (a run that outgrows it takes cudaMalloc for the rest and the next run gets a larger one).
  DeviceBuffer uploads;
  size_t uploads_used = 0, uploads_wanted = 0;
  DeviceBuffer flags;  // one int per step for CudaContext::error_flag
  ~RunSlot() {
    if (stream) cudaStreamDestroy(stream);
  }
};

// A captured CUDA graph for one signature: fixed buffers for its inputs, outputs, arena, scratch.
struct CapturedGraph {
  std::mutex mu;  // one replay at a time: the buffers are shared
  cudaGraphExec_t exec = nullptr;
  std::vector<Tensor> inputs;   // per fed value id (undefined when not fed)
  std::vector<Tensor> outputs;  // per value id: the graph outputs' fixed buffers
  std::vector<std::pair<int, Tensor>> results;  // graph outputs as the captured run left them
  DeviceBuffer arena, scratch;
  ~CapturedGraph() {
    if (exec) cudaGraphExecDestroy(exec);
  }
};

struct DevicePlan {
  std::unique_ptr<MemoryPlan> plan;  // offsets into a device arena
  std::vector<int64_t> observed_bytes;  // per value id: bytes allocated in the observed run
  size_t max_scratch = 0;
  std::mutex mu;
  std::vector<DeviceBuffer> free_arenas;
  int planned_runs = 0;
  bool capture_failed = false;
  std::shared_ptr<CapturedGraph> graph;
};

class CudaExecutor : public DeviceExecutor {
 public:
  CudaExecutor(const Session& s, const ProviderRequest& req);
  std::vector<PlacedTensor> run(const std::vector<const PlacedTensor*>& fed, const std::vector<int>& wanted,
                                const std::vector<DeviceKind>& want_on) override;
  std::string describe_step(int s) const override { return kernels_[s] ? kernels_[s]->describe() : ""; }
  std::map<std::string, std::string> options() const override { return options_; }
  std::map<std::string, int64_t> stats() const override {
    std::lock_guard<std::mutex> lk(stats_mu_);
    return stats_;
  }

 private:
  struct Run;
  std::unique_ptr<RunSlot> take_slot();
  void give_back(std::unique_ptr<RunSlot> slot);
  void execute(Run& r) const;
  bool try_capture(Run& r, DevicePlan& dp, const std::vector<const PlacedTensor*>& fed) const;
  void replay(Run& r, CapturedGraph& g, const std::vector<const PlacedTensor*>& fed) const;

  const Session& s_;
  int device_id_ = 0;
  bool cuda_graph_ = false, sync_each_ = false;
  std::map<std::string, std::string> options_;
  std::vector<std::unique_ptr<CudaKernel>> kernels_;  // per step; null for CPU steps
  std::vector<std::vector<bool>> packed_;             // per step, per input: the kernel packed it
  std::vector<Tensor> device_constants_;              // per value id: uploaded for device readers
  bool graphable_ = true;                             // every step on the device, no host reads

  std::mutex slots_mu_;
  std::vector<std::unique_ptr<RunSlot>> slots_;
  mutable std::shared_mutex plans_mu_;
  std::map<std::string, std::shared_ptr<DevicePlan>> plans_;
  mutable std::mutex stats_mu_;
  mutable std::map<std::string, int64_t> stats_{{"device_arena_bytes", 0}, {"device_plans", 0}, {"cuda_graphs", 0},
                                                {"graph_replays", 0}};
};

// One run: where each value is, on each side.
struct CudaExecutor::Run {
  RunSlot* slot = nullptr;
  DevicePlan* plan = nullptr;     // null: observing run
  uint8_t* arena = nullptr;
  CapturedGraph* capture = nullptr;  // set while capturing: fixed output buffers and scratch
  std::vector<Tensor> host, dev;  // per value id
  std::vector<ValueRecord> records;
  std::vector<Tensor> keep;       // observing runs: device allocations alive until the end
  size_t scratch_used = 0;
  std::vector<int> flagged_steps;  // steps that asked for an error flag
};

CudaExecutor::CudaExecutor(const Session& s, const ProviderRequest& req) : s_(s) {
  for (auto& [k, v] : req.options) {
    static const std::set<std::string> known = {"device_id", "enable_cuda_graph", "gpu_mem_limit",
                                                "arena_extend_strategy", "cudnn_conv_algo_search",
                                                "do_copy_in_default_stream", "use_tf32", "prefer_nhwc"};
    RUNNX_CHECK(known.count(k), kInvalidArgument, "unknown CUDAExecutionProvider option '", k,
                "'; runnx knows device_id, enable_cuda_graph (and accepts onnxruntime's gpu_mem_limit, "
                "arena_extend_strategy, cudnn_conv_algo_search, do_copy_in_default_stream, use_tf32, prefer_nhwc)");
  }
  auto id = req.options.find("device_id");
  if (id != req.options.end()) {
    char* end = nullptr;
    long v = std::strtol(id->second.c_str(), &end, 10);
    RUNNX_CHECK(end && *end == 0 && !id->second.empty(), kInvalidArgument,
                "CUDAExecutionProvider option device_id='", id->second, "' is not an integer");
    device_id_ = static_cast<int>(v);
  }
  RUNNX_CHECK(device_id_ >= 0 && device_id_ < device_count(), kInvalidArgument, "CUDA device_id ", device_id_,
              " does not exist (", device_count(), " device(s) answer",
              device_count() ? "" : ": " + unavailable_reason(), ")");
  cuda_graph_ = option_flag(req.options, "enable_cuda_graph");
  const char* sync = std::getenv("RUNNX_CUDA_SYNC");
  sync_each_ = sync && std::string(sync) == "1";
  options_ = req.options;
  options_["device_id"] = std::to_string(device_id_);
  options_["enable_cuda_graph"] = cuda_graph_ ? "1" : "0";
  check_cuda(cudaSetDevice(device_id_), "cudaSetDevice(" + std::to_string(device_id_) + ")");

  const auto& steps = s.steps();
  const auto& placement = s.placement();
  const auto& types = s.value_types();
  kernels_.resize(steps.size());
  packed_.resize(steps.size());
  device_constants_.resize(s.value_names().size());
  cudaStream_t upload_stream = nullptr;
  check_cuda(cudaStreamCreateWithFlags(&upload_stream, cudaStreamNonBlocking), "cudaStreamCreate");
  std::unique_ptr<CUstream_st, void (*)(cudaStream_t)> stream_guard(upload_stream,
                                                                     [](cudaStream_t st) { cudaStreamDestroy(st); });
  std::set<std::string> overridable;
  for (const ValueInfo& vi : s.overridable_initializers()) overridable.insert(vi.name);
  for (size_t i = 0; i < steps.size(); ++i) {
    const Session::Step& st = steps[i];
    const NodePlacement& p = placement[i];
    if (p.device != DeviceKind::kCUDA) {
      graphable_ = false;
      continue;
    }
    if (p.host_outputs) graphable_ = false;
    const Node& n = *st.node;
    const CudaOpSchema* schema = CudaOpRegistry::global().find(n.domain, n.op_type, s.model().opset(n.domain));
    std::vector<const InferredType*> ins, outs;
    for (int v : st.inputs) ins.push_back(v < 0 ? nullptr : &types[v]);
    for (int v : st.outputs) outs.push_back(v < 0 ? nullptr : &types[v]);
    auto constant = [&](int k) -> const Tensor* {  // as placement saw it: feeds may replace overridables
      if (k >= (int)st.inputs.size() || st.inputs[k] < 0) return nullptr;
      return overridable.count(s.value_names()[st.inputs[k]]) ? nullptr : s.constant(st.inputs[k]);
    };
    CudaNodeInfo info{n, s.model().opset(n.domain), ins, outs, [&](int k) { return constant(k) != nullptr; }, constant};
    try {
      kernels_[i] = schema->make(info);
    } catch (const Error& e) {
      std::string what = e.what();
      if (what.find(n.label()) == std::string::npos) what = n.label() + ": " + what;
      throw Error(e.kind() == ErrorKind::kInvalidArgument ? ErrorKind::kInvalidModel : e.kind(), what);
    }
    packed_[i].assign(st.inputs.size(), false);
    for (int k : schema->packed_inputs)
      if (k < (int)st.inputs.size()) packed_[i][k] = true;
    for (size_t k = 0; k < st.inputs.size(); ++k) {
      int v = st.inputs[k];
      bool host_read = std::count(p.host_inputs.begin(), p.host_inputs.end(), (int)k) ||
                       std::count(p.shape_only_inputs.begin(), p.shape_only_inputs.end(), (int)k);
      if (v >= 0 && !s.constant(v) && host_read &&
          !std::count(p.shape_only_inputs.begin(), p.shape_only_inputs.end(), (int)k))
        graphable_ = false;  // a shape read from a run-time value: it syncs, so no capture
      if (v < 0 || host_read || packed_[i][k] || !s.constant(v) || device_constants_[v].dtype != DType::kUndefined)
        continue;
      device_constants_[v] = upload(*s.constant(v), upload_stream);
    }
  }
  check_cuda(cudaStreamSynchronize(upload_stream), "uploading constants to CUDA device " + std::to_string(device_id_));
}

std::unique_ptr<RunSlot> CudaExecutor::take_slot() {
  {
    std::lock_guard<std::mutex> lk(slots_mu_);
    if (!slots_.empty()) {
      auto s = std::move(slots_.back());
      slots_.pop_back();
      return s;
    }
  }
  auto s = std::make_unique<RunSlot>();
  check_cuda(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking), "cudaStreamCreate");
  return s;
}

// The slot's stream is idle here (give_back synchronised it): resize and reset per-run regions.
void prepare_slot(RunSlot& slot) {
  if (slot.uploads_wanted > slot.uploads.bytes()) {
    slot.uploads = DeviceBuffer();
    slot.uploads = DeviceBuffer(slot.uploads_wanted);
  }
  slot.uploads_used = slot.uploads_wanted = 0;
  slot.staging.reset();
}

void CudaExecutor::give_back(std::unique_ptr<RunSlot> slot) {
  // Whatever happened, nothing of this run may still be queued when the slot is reused.
  if (cudaStreamSynchronize(slot->stream) != cudaSuccess) {
    cudaError_t err = cudaGetLastError();
    if (is_sticky(err)) return;  // the context is gone; drop the slot
  }
  slot->staging.reset();
  std::lock_guard<std::mutex> lk(slots_mu_);
  slots_.push_back(std::move(slot));
}

void CudaExecutor::execute(Run& r) const {
  const auto& steps = s_.steps();
  const auto& placement = s_.placement();
  const auto& names = s_.value_names();
  cudaStream_t stream = r.slot->stream;
  MemoryPlan* plan = r.plan ? r.plan->plan.get() : nullptr;

  auto to_device = [&](int v) -> const Tensor* {
    if (r.dev[v].dtype != DType::kUndefined) return &r.dev[v];
    const Tensor& h = r.host[v];
    RunSlot& slot = *r.slot;
    const size_t need = (h.nbytes() + 255) / 256 * 256;
    slot.uploads_wanted += need;
    Tensor d;
    if (slot.uploads_used + need <= slot.uploads.bytes()) {
      d.dtype = h.dtype;
      d.shape = h.shape;
      d.data = static_cast<uint8_t*>(slot.uploads.data()) + slot.uploads_used;
      slot.uploads_used += need;
    } else {
      d = device_tensor(h.dtype, h.shape);
    }
    if (size_t n = h.nbytes()) {
      void* staged = r.slot->staging.take(n, stream);
      std::memcpy(staged, h.data, n);
      check_cuda(cudaMemcpyAsync(d.data, staged, n, cudaMemcpyHostToDevice, stream), "copying '" + names[v] + "' to the device");
    }
    r.dev[v] = std::move(d);
    return &r.dev[v];
  };
  auto to_host = [&](int v) -> const Tensor* {
    if (r.host[v].dtype != DType::kUndefined) return &r.host[v];
    const Tensor& d = r.dev[v];
    Tensor h = Tensor::empty(d.dtype, d.shape);
    if (size_t n = d.nbytes()) {
      void* staged = r.slot->staging.take(n, stream);
      check_cuda(cudaMemcpyAsync(staged, d.data, n, cudaMemcpyDeviceToHost, stream), "copying '" + names[v] + "' to the host");
      check_cuda(cudaStreamSynchronize(stream), "device work before '" + names[v] + "' was read on the host");
      std::memcpy(h.data, staged, n);
    }
    r.host[v] = std::move(h);
    return &r.host[v];
  };
  auto device_alloc = [&](int v, DType dtype, Shape shape) -> Tensor {
    int64_t bytes = shape_numel(shape) * static_cast<int64_t>(dtype_size(dtype));
    if (r.capture && v >= 0 && r.capture->outputs[v].dtype != DType::kUndefined) {
      const Tensor& fixed = r.capture->outputs[v];
      RUNNX_CHECK(static_cast<int64_t>(fixed.nbytes()) == bytes, kRuntime, "capture: output size changed");
      Tensor t = fixed;
      t.dtype = dtype;
      t.shape = std::move(shape);
      return t;
    }
    if (plan && v >= 0 && plan->offset[v] >= 0 && plan->nbytes[v] == bytes) {
      Tensor t;
      t.dtype = dtype;
      t.shape = std::move(shape);
      t.data = r.arena + plan->offset[v];
      return t;
    }
    RUNNX_CHECK(!r.capture, kRuntime, "capture: an unplanned device allocation");
    Tensor t = device_tensor(dtype, std::move(shape));
    if (!plan && v >= 0) {
      r.records[v].nbytes = bytes;
      r.keep.push_back(t);  // freed after the run (cudaFree would synchronise mid-run)
    }
    return t;
  };
  auto scratch = [&](size_t bytes) -> void* {
    if (r.capture) {
      RUNNX_CHECK(bytes <= r.capture->scratch.bytes(), kRuntime, "capture: scratch grew");
      return r.capture->scratch.data();
    }
    r.scratch_used = std::max(r.scratch_used, bytes);
    if (bytes > r.slot->scratch.bytes()) {
      check_cuda(cudaStreamSynchronize(stream), "growing the scratch buffer");
      r.slot->scratch = DeviceBuffer();
      r.slot->scratch = DeviceBuffer(std::max(bytes, r.slot->scratch.bytes() * 2));
    }
    return r.slot->scratch.data();
  };

  std::vector<const Tensor*> ins;
  for (int s = 0; s < static_cast<int>(steps.size()); ++s) {
    const Session::Step& st = steps[s];
    const NodePlacement& p = placement[s];
    const bool on_device = p.device == DeviceKind::kCUDA;
    ins.clear();
    for (size_t k = 0; k < st.inputs.size(); ++k) {
      int v = st.inputs[k];
      if (v < 0 || (on_device && packed_[s][k])) {
        ins.push_back(nullptr);
      } else if (on_device && std::count(p.shape_only_inputs.begin(), p.shape_only_inputs.end(), (int)k)) {
        ins.push_back(r.dev[v].dtype != DType::kUndefined ? &r.dev[v] : &r.host[v]);
      } else if (!on_device || std::count(p.host_inputs.begin(), p.host_inputs.end(), (int)k)) {
        ins.push_back(to_host(v));
      } else {
        ins.push_back(to_device(v));
      }
    }
    std::vector<Tensor> outs(st.outputs.size());
    std::vector<bool> allocated(st.outputs.size(), false);
    if (on_device) {
      CudaContext ctx(*st.node, ins, outs, stream,
                      [&](int i, DType dt, Shape shape) {
                        allocated[i] = true;
                        return p.host_outputs ? Tensor::empty(dt, std::move(shape))
                                              : device_alloc(st.outputs[i], dt, std::move(shape));
                      },
                      scratch, [&r, s]() -> int* {
                        if (r.capture) return nullptr;
                        r.flagged_steps.push_back(s);
                        return static_cast<int*>(r.slot->flags.data()) + s;
                      });
      try {
        kernels_[s]->run(ctx);
      } catch (const Error& e) {
        std::string what = e.what();
        if (what.find(st.node->label()) == std::string::npos) what = st.node->label() + " (CUDA): " + what;
        throw Error(e.kind(), what);
      }
      check_cuda(cudaGetLastError(), st.node->label() + " (CUDA kernel launch)");
      if (sync_each_ && !r.capture) check_cuda(cudaStreamSynchronize(stream), st.node->label() + " (CUDA kernel)");
    } else {
      s_.run_cpu_step(s, ins, outs, [&](int i, DType dt, Shape shape) {
        allocated[i] = true;
        return Tensor::empty(dt, std::move(shape));
      });
    }
    const bool outputs_on_device = on_device && !p.host_outputs;
    for (size_t i = 0; i < outs.size(); ++i) {
      int v = st.outputs[i];
      if (v < 0) continue;
      Tensor& t = outs[i];
      RUNNX_CHECK(t.dtype != DType::kUndefined, kRuntime, st.node->label(), ": output ", i, " was not produced");
      if (!allocated[i] && !r.plan && outputs_on_device) {
        auto* q = static_cast<const uint8_t*>(t.data);
        for (size_t k = 0; k < ins.size() && q; ++k) {
          auto* b = ins[k] ? static_cast<const uint8_t*>(ins[k]->data) : nullptr;
          if (b && q >= b && q < b + std::max<size_t>(ins[k]->nbytes(), 1)) r.records[v].alias_of = st.inputs[k];
        }
      }
      (outputs_on_device ? r.dev : r.host)[v] = std::move(t);
    }
    // Host values die at their last reader; device ones stay (arena slots, or kept until the end).
    for (int v : st.inputs)
      if (v >= 0 && s_.last_use(v) == s) r.host[v] = Tensor{};
  }
}

bool CudaExecutor::try_capture(Run& r, DevicePlan& dp, const std::vector<const PlacedTensor*>& fed) const {
  auto g = std::make_shared<CapturedGraph>();
  const size_t nv = s_.value_names().size();
  g->inputs.resize(nv);
  g->outputs.resize(nv);
  for (size_t v = 0; v < nv; ++v) {
    if (fed[v]) g->inputs[v] = device_tensor(fed[v]->tensor.dtype, fed[v]->tensor.shape);
  }
  for (int v : s_.graph_output_ids())
    if (dp.observed_bytes[v] >= 0 && g->outputs[v].dtype == DType::kUndefined)
      g->outputs[v] = device_tensor(DType::kU8, {dp.observed_bytes[v]});
  g->arena = DeviceBuffer(std::max<int64_t>(dp.plan->arena_bytes, 1));
  g->scratch = DeviceBuffer(dp.max_scratch);
  r.arena = static_cast<uint8_t*>(g->arena.data());
  r.capture = g.get();
  for (size_t v = 0; v < nv; ++v)
    if (fed[v]) r.dev[v] = g->inputs[v];
  cudaStream_t stream = r.slot->stream;
  cudaGraph_t graph = nullptr;
  bool ok = cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal) == cudaSuccess;
  if (ok) {
    try {
      execute(r);
    } catch (const Error&) {
      ok = false;
    }
    ok = cudaStreamEndCapture(stream, &graph) == cudaSuccess && ok;
  }
  if (ok) ok = cudaGraphInstantiate(&g->exec, graph, 0) == cudaSuccess;
  for (int v : s_.graph_output_ids()) {
    const Tensor& t = r.dev[v];
    ok = ok && t.dtype != DType::kUndefined;  // host outputs are never captured (graphable_)
    if (ok) g->results.emplace_back(v, t);
  }
  if (graph) cudaGraphDestroy(graph);
  cudaGetLastError();
  r.capture = nullptr;
  if (!ok) return false;
  {
    std::lock_guard<std::mutex> lk(dp.mu);
    dp.graph = g;
  }
  std::lock_guard<std::mutex> lk(stats_mu_);
  stats_["cuda_graphs"]++;
  return true;
}

void CudaExecutor::replay(Run& r, CapturedGraph& g, const std::vector<const PlacedTensor*>& fed) const {
  cudaStream_t stream = r.slot->stream;
  for (size_t v = 0; v < fed.size(); ++v) {
    if (!fed[v]) continue;
    const PlacedTensor& f = *fed[v];
    size_t n = f.tensor.nbytes();
    if (!n) continue;
    if (f.device == DeviceKind::kCUDA) {
      check_cuda(cudaMemcpyAsync(g.inputs[v].data, f.tensor.data, n, cudaMemcpyDeviceToDevice, stream), "graph input copy");
    } else {
      void* staged = r.slot->staging.take(n, stream);
      std::memcpy(staged, f.tensor.data, n);
      check_cuda(cudaMemcpyAsync(g.inputs[v].data, staged, n, cudaMemcpyHostToDevice, stream), "graph input copy");
    }
  }
  check_cuda(cudaGraphLaunch(g.exec, stream), "cudaGraphLaunch");
  for (auto& [v, t] : g.results) r.dev[v] = t;
  std::lock_guard<std::mutex> lk(stats_mu_);
  stats_["graph_replays"]++;
}

std::vector<PlacedTensor> CudaExecutor::run(const std::vector<const PlacedTensor*>& fed, const std::vector<int>& wanted,
                                            const std::vector<DeviceKind>& want_on) {
  check_cuda(cudaSetDevice(device_id_), "cudaSetDevice");
  const size_t nv = s_.value_names().size();
  std::string key;
  for (size_t v = 0; v < nv; ++v) {
    if (!fed[v]) continue;
    const PlacedTensor& f = *fed[v];
    RUNNX_CHECK(f.device == DeviceKind::kCPU || f.device_id == device_id_, kInvalidArgument, "input '",
                s_.value_names()[v], "' is on CUDA device ", f.device_id, " but the session runs on device ", device_id_);
    key += std::to_string(v) + ':' + std::to_string(static_cast<int>(f.tensor.dtype)) + shape_str(f.tensor.shape) + ';';
  }
  Run r;
  // Constants on both sides (the host one borrowed: the session outlives the run), feeds on theirs.
  auto start_values = [&] {
    r.host.assign(nv, Tensor{});
    r.dev.assign(nv, Tensor{});
    for (size_t v = 0; v < nv; ++v) {
      if (const Tensor* c = s_.constant(v)) {
        r.host[v] = *c;
        r.host[v].owner = nullptr;
        r.dev[v] = device_constants_[v];
      }
      if (fed[v]) (fed[v]->device == DeviceKind::kCUDA ? r.dev : r.host)[v] = fed[v]->tensor;
      if (fed[v]) (fed[v]->device == DeviceKind::kCUDA ? r.host : r.dev)[v] = Tensor{};
    }
  };
  start_values();

  std::shared_ptr<DevicePlan> dp;
  if (s_.options().enable_mem_pattern) {
    std::shared_lock<std::shared_mutex> lk(plans_mu_);
    auto it = plans_.find(key);
    if (it != plans_.end()) dp = it->second;
  }
  // Declared before the guard so they outlive the stream's last work (the guard synchronises).
  DeviceBuffer arena;
  std::unique_lock<std::mutex> graph_lock;
  CapturedGraph* graph = nullptr;
  std::unique_ptr<RunSlot> slot = take_slot();
  prepare_slot(*slot);
  r.slot = slot.get();
  if (!slot->flags.data()) slot->flags = DeviceBuffer(std::max<size_t>(s_.steps().size(), 1) * sizeof(int));
  check_cuda(cudaMemsetAsync(slot->flags.data(), 0, slot->flags.bytes(), slot->stream), "clearing error flags");
  struct SlotGuard {
    CudaExecutor* ex;
    std::unique_ptr<RunSlot>& slot;
    ~SlotGuard() { ex->give_back(std::move(slot)); }
  } guard{this, slot};

  if (dp) {
    r.plan = dp.get();
    bool capture = false;
    {
      std::lock_guard<std::mutex> lk(dp->mu);
      if (cuda_graph_ && graphable_ && !dp->graph && !dp->capture_failed && dp->planned_runs >= 1) {
        capture = true;
        dp->capture_failed = true;  // one attempt per signature (set back to false below on success)
      }
      dp->planned_runs++;
      if (!capture && !dp->graph && !dp->free_arenas.empty()) {
        arena = std::move(dp->free_arenas.back());
        dp->free_arenas.pop_back();
      }
    }
    if (capture) {
      bool captured = try_capture(r, *dp, fed);
      start_values();  // a failed capture leaves nothing behind; a good one is replayed now
      std::lock_guard<std::mutex> lk(dp->mu);
      dp->capture_failed = !captured;
    }
    std::shared_ptr<CapturedGraph> captured;
    {
      std::lock_guard<std::mutex> lk(dp->mu);
      captured = dp->graph;
    }
    if (captured) {
      graph = captured.get();
      graph_lock = std::unique_lock<std::mutex>(graph->mu);
      replay(r, *graph, fed);
    } else {
      if (!arena.data()) arena = DeviceBuffer(std::max<int64_t>(dp->plan->arena_bytes, 1));
      r.arena = static_cast<uint8_t*>(arena.data());
      execute(r);
    }
  } else {
    r.records.assign(nv, ValueRecord{});
    execute(r);
  }

  std::vector<PlacedTensor> out;
  cudaStream_t stream = r.slot->stream;
  for (size_t k = 0; k < wanted.size(); ++k) {
    int v = wanted[k];
    bool on_dev = r.dev[v].dtype != DType::kUndefined;
    const Tensor& src = on_dev ? r.dev[v] : r.host[v];
    if (want_on[k] == DeviceKind::kCPU) {
      if (!on_dev) {
        out.push_back({src.owner ? src : Tensor::clone(src), DeviceKind::kCPU, 0});
        continue;
      }
      Tensor h = Tensor::empty(src.dtype, src.shape);
      if (size_t n = src.nbytes()) {
        void* staged = r.slot->staging.take(n, stream);
        check_cuda(cudaMemcpyAsync(staged, src.data, n, cudaMemcpyDeviceToHost, stream), "copying output '" + s_.value_names()[v] + "' to the host");
        check_cuda(cudaStreamSynchronize(stream), "running the graph on CUDA device " + std::to_string(device_id_) +
                                                       (sync_each_ ? "" : " (set RUNNX_CUDA_SYNC=1 to find the node)"));
        std::memcpy(h.data, staged, n);
      }
      out.push_back({std::move(h), DeviceKind::kCPU, 0});
    } else {
      // Device outputs get their own allocation: arena slots and graph buffers are reused.
      Tensor d = device_tensor(src.dtype, src.shape);
      if (size_t n = src.nbytes())
        check_cuda(cudaMemcpyAsync(d.data, src.data, n, on_dev ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice, stream),
                   "copying output '" + s_.value_names()[v] + "'");
      out.push_back({std::move(d), DeviceKind::kCUDA, device_id_});
    }
  }
  std::vector<int> flags(s_.steps().size(), 0);
  if (!r.flagged_steps.empty())
    check_cuda(cudaMemcpyAsync(flags.data(), r.slot->flags.data(), flags.size() * sizeof(int), cudaMemcpyDeviceToHost,
                               stream),
               "reading error flags");
  check_cuda(cudaStreamSynchronize(stream), "running the graph on CUDA device " + std::to_string(device_id_) +
                                                (sync_each_ ? "" : " (set RUNNX_CUDA_SYNC=1 to find the node)"));
  for (int s : r.flagged_steps)
    RUNNX_CHECK(flags[s] == 0, kInvalidArgument, s_.steps()[s].node->label(),
                ": an index is out of range (found on the device; the output is not valid)");
  if (dp && !graph) {
    std::lock_guard<std::mutex> lk(dp->mu);
    dp->max_scratch = std::max(dp->max_scratch, r.scratch_used);
    if (dp->free_arenas.size() < 8) dp->free_arenas.push_back(std::move(arena));
  } else if (!dp && s_.options().enable_mem_pattern) {
    std::vector<StepInfo> infos;
    std::vector<bool> pinned(nv, false);
    for (const Session::Step& st : s_.steps()) infos.push_back({st.inputs, st.outputs, -1});
    // Graph outputs live in the arena until a last pseudo-step that reads them all: run() copies
    // every output out before the arena is reused.
    infos.push_back({s_.graph_output_ids(), {}, -1});
    for (size_t v = 0; v < nv; ++v)
      if (fed[v]) pinned[v] = true;
    auto p = std::make_shared<DevicePlan>();
    p->plan = build_memory_plan(infos, r.records, pinned);
    p->observed_bytes.resize(nv);
    for (size_t v = 0; v < nv; ++v) p->observed_bytes[v] = r.records[v].nbytes;
    p->max_scratch = r.scratch_used;
    {
      std::unique_lock<std::shared_mutex> lk(plans_mu_);
      if (plans_.size() >= 64) plans_.clear();
      plans_.emplace(key, p);
    }
    std::lock_guard<std::mutex> lk(stats_mu_);
    stats_["device_arena_bytes"] = p->plan->arena_bytes;
    stats_["device_plans"]++;
  }
  return out;
}

}  // namespace

std::unique_ptr<DeviceExecutor> make_executor(const Session& session, const ProviderRequest& request) {
  return std::make_unique<CudaExecutor>(session, request);
}

}  // namespace runnx::cuda
