#include "runtime/session.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <optional>
#include <set>
#include <system_error>
#include <thread>

#include "common/load_memory.h"
#include "common/spread.h"
#include "common/status.h"
#include "ir/load_profile.h"
#include "onnx/file_page_drops.h"
#include "onnx/mapped_file.h"
#include "onnx/model_reader.h"
#include "runtime/graph_prep.h"
#include "runtime/shape_inference.h"

#ifdef RUNNX_WITH_CUDA
#include "cuda/session_hooks.h"
#endif

namespace runnx {

namespace {

constexpr int64_t kMinOpset = 1;  // per-op `since` values refuse the old forms we lack

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string dims_str(const ValueInfo& vi) {
  std::string s = "[";
  for (size_t i = 0; i < vi.dims.size(); ++i) {
    const Dim& d = vi.dims[i];
    s += (i ? "," : "") + (d.known() ? std::to_string(d.value) : (d.param.empty() ? "?" : d.param));
  }
  return s + "]";
}

// A graph output's declaration, completed by inference where the model leaves it open.
ValueInfo with_inferred(ValueInfo vi, const InferredType& t) {
  if (vi.dtype == DType::kUndefined) vi.dtype = t.dtype;
  if (!vi.has_shape && t.has_shape) {
    vi.has_shape = true;
    for (const SymDim& d : t.dims) {
      Dim dim;
      if (d.is_const())
        dim.value = d.value();
      else if (!d.is_unknown())
        dim.param = d.str();
      vi.dims.push_back(dim);
    }
  }
  return vi;
}

// Maps a model file's pages in (Model::map_whole: 2-32 MiB): on a thread of its own, while the
// graph passes run, when the session has more than one; else at once. Joined by wait() or at the
// end of the scope, so creating a session leaves no thread behind. Until then the model's page
// drops hold back large ranges too (the mapping-in would undo them); wait() lets them go.
class WholeFileMapping {
 public:
  WholeFileMapping(const Model& m, int threads) {
    if (!m.map_whole || !m.mapped_data) return;
    drops_ = m.page_drops.get();
    auto work = [p = m.mapped_data, n = m.mapped_size, profile = LoadProfile::current()] {
      LoadProfile::Join join(profile);
      LoadPhase phase("file populate");
      populate_mapping(p, n);
    };
    if (threads > 1 && std::thread::hardware_concurrency() > 1) {
      try {
        thread_ = std::thread(work);
        return;
      } catch (const std::system_error&) {
        // no thread to be had: map them here
      }
    }
    work();
  }
  ~WholeFileMapping() { wait(); }
  WholeFileMapping(const WholeFileMapping&) = delete;
  void wait() {
    if (thread_.joinable()) thread_.join();
    if (drops_) {  // the file is in: what was held back sticks now
      drops_->hold_large(false);
      drops_->flush();
      drops_ = nullptr;
    }
  }

 private:
  std::thread thread_;
  FilePageDrops* drops_ = nullptr;
};

}  // namespace

bool CpuProvider::supports(const Node& node, int64_t opset) const {
  return OpRegistry::global().find(node.domain, node.op_type, opset) != nullptr;
}

// Per-run state: the tensors this run produced, what the first run of a signature observes, and
// scratch kept between runs. Sessions keep idle ones (one per concurrent run) so that a steady
// stream of calls allocates nothing here.
struct Session::RunState {
  std::vector<Tensor> values;
  std::vector<const Tensor*> slot;    // where value v is read from (run value or constant)
  std::vector<char> fed;              // per value id: fed this run
  std::vector<int> feed_ids, wanted;  // value ids of the feeds (feed order) and of the outputs
  std::vector<int64_t> key;           // the input-shape signature
  std::shared_ptr<MemoryPlan> plan;   // null: every output on the heap
  uint8_t* arena = nullptr;
  // The first run of a signature observes (sizes, views, inferred types checked), on a plan made
  // from static shapes when they are known, else on the heap.
  bool observing = false;
  std::vector<ValueRecord> records;   // filled by observing runs
  SymBindings bindings;               // observing runs: input symbols, to check inference
  // The step being run: its inputs and outputs, and which outputs went through `alloc`.
  const std::vector<int>* step_outputs = nullptr;
  std::vector<const Tensor*> ins;
  std::vector<Tensor> outs;
  std::vector<char> allocated;
  KernelContext::OutputAllocator alloc;  // made once; reads the fields above
  // The session's: graph outputs (pinned values) off the arena come from its buffer cache.
  const std::vector<bool>* pinned = nullptr;
  OutputBuffers* output_buffers = nullptr;

  RunState() {
    alloc = [this](int i, DType dtype, Shape shape) { return allocate(i, dtype, std::move(shape)); };
  }
  RunState(const RunState&) = delete;

  Tensor allocate(int i, DType dtype, Shape shape) {
    const int v = (*step_outputs)[i];
    allocated[i] = 1;
    const int64_t bytes = shape_numel(shape) * static_cast<int64_t>(dtype_size(dtype));
    if (observing && v >= 0) records[v].nbytes = bytes;
    if (plan && v >= 0 && plan->offset[v] >= 0 && plan->nbytes[v] == bytes) {
      Tensor t;
      t.dtype = dtype;
      t.shape = std::move(shape);
      t.data = arena + plan->offset[v];
      return t;
    }
    if (v >= 0 && output_buffers && (*pinned)[v]) return output_buffers->take(dtype, std::move(shape));
    return Tensor::empty(dtype, std::move(shape));
  }

  // Drops this run's tensors (heap outputs and views) so that nothing outlives the call.
  void finish() {
    for (Tensor& t : values)
      if (t.data || t.owner) t = Tensor{};
    for (Tensor& t : outs) t = Tensor{};
    plan.reset();
    arena = nullptr;
    observing = false;
  }
};

Session::Session(Model model, const SessionOptions& options) : model_(std::move(model)), options_(options) {
  num_threads_ = options.intra_op_num_threads > 0 ? options.intra_op_num_threads : ThreadPool::default_num_threads();
  const char* strict = std::getenv("RUNNX_CHECK_INFERENCE");
  strict_inference_ = strict && std::string(strict) == "1";
  bool cpu_asked = options.providers.empty();
  for (const ProviderRequest& p : options.providers) {
    if (p.name == kCpuProviderName) {
      cpu_asked = true;
      continue;
    }
    RUNNX_CHECK(p.name == kCudaProviderName, kInvalidArgument, "unknown execution provider '", p.name,
                "'; runnx has CUDAExecutionProvider and CPUExecutionProvider");
#ifndef RUNNX_WITH_CUDA
    RUNNX_CHECK(options.placement_only, kInvalidArgument,
                "CUDAExecutionProvider was asked for, but runnx was built without CUDA");
#endif
  }
  (void)cpu_asked;  // the CPU provider always backs a device provider (per-node fallback)
  build(options);
  if (device_) provider_names_.push_back(kCudaProviderName);
  provider_names_.push_back(kCpuProviderName);
}

Session::~Session() = default;

ThreadPool& Session::pool() const {
  std::call_once(pool_once_,
                 [this] { pool_ = std::make_unique<ThreadPool>(num_threads_, options_.allow_spinning); });
  return *pool_;
}

int Session::value_id(const std::string& name) const {
  auto it = ids_.find(name);
  return it == ids_.end() ? -1 : it->second;
}

void Session::build(const SessionOptions& options) {
  Graph& g = model_.graph;
  int64_t opset = model_.opset("");
  if (opset != 0 && (opset < kMinOpset || opset > kMaxOpset))
    fail(ErrorKind::kUnsupportedOp, "the model imports ai.onnx opset ", opset, "; runnx supports opsets ",
         kMinOpset, " to ", kMaxOpset);

  bool device_asked = false;
  for (const ProviderRequest& p : options.providers) device_asked |= p.name != kCpuProviderName;
  LoadMemoryScope load_memory;  // weights packed or folded here are load blocks
  model_.load_threads = num_threads_;
  WholeFileMapping file_pages(model_, num_threads_);
  // Drops of a file mapped whole wait until it is mapped in (see build_kernels), else it would
  // map them back; a failed creation makes them when the model ends.
  FilePageDrops::Join join_drops(model_.page_drops.get());
  passes_fired_ = prepare_graph(model_, options.graph_optimization_level, device_asked);
  std::optional<LoadPhase> phase;
  phase.emplace("validate and sort");

  auto define = [&](const std::string& name) -> int {
    auto [it, added] = ids_.emplace(name, static_cast<int>(names_.size()));
    if (added) names_.push_back(name);
    return it->second;
  };
  std::set<std::string> initializer_names;
  for (auto& [name, t] : g.initializers) {
    RUNNX_CHECK(initializer_names.insert(name).second, kInvalidModel, "initializer '", name,
                "' is defined twice");
    define(name);
  }
  std::set<std::string> input_names;
  for (const ValueInfo& vi : g.inputs) {
    RUNNX_CHECK(!vi.name.empty(), kInvalidModel, "a graph input has an empty name");
    RUNNX_CHECK(input_names.insert(vi.name).second, kInvalidModel, "graph input '", vi.name,
                "' is declared twice");
    define(vi.name);
    if (initializer_names.count(vi.name))
      overridable_.push_back(vi);
    else
      inputs_.push_back(vi);
  }

  // Producers: every value is defined once, by a graph input, an initializer or one node output.
  std::map<std::string, const Node*> producer;
  for (const Node& n : g.nodes)
    for (const std::string& o : n.outputs) {
      if (o.empty()) continue;
      RUNNX_CHECK(!input_names.count(o) && !initializer_names.count(o), kInvalidModel, n.label(),
                  ": output '", o, "' redefines a graph input or initializer");
      auto [it, added] = producer.emplace(o, &n);
      RUNNX_CHECK(added, kInvalidModel, "value '", o, "' is produced by both ", it->second->label(),
                  " and ", n.label());
    }
  for (const Node& n : g.nodes)
    for (const std::string& i : n.inputs)
      RUNNX_CHECK(i.empty() || producer.count(i) || input_names.count(i) || initializer_names.count(i),
                  kInvalidModel, n.label(), ": input '", i, "' is not defined by any node, graph input or initializer");
  for (const ValueInfo& o : g.outputs)
    RUNNX_CHECK(producer.count(o.name) || input_names.count(o.name) || initializer_names.count(o.name),
                kInvalidModel, "graph output '", o.name, "' is not produced by any node");

  // Topological order (Kahn). Nodes left over sit on a cycle.
  std::map<const Node*, int> pending;
  std::map<std::string, std::vector<const Node*>> consumers;
  for (const Node& n : g.nodes) {
    int deps = 0;
    for (const std::string& i : n.inputs)
      if (!i.empty() && producer.count(i)) {
        ++deps;
        consumers[i].push_back(&n);
      }
    pending[&n] = deps;
  }
  std::vector<const Node*> order, ready;
  for (const Node& n : g.nodes)
    if (pending[&n] == 0) ready.push_back(&n);
  for (size_t k = 0; k < ready.size(); ++k) {
    const Node* n = ready[k];
    order.push_back(n);
    for (const std::string& o : n->outputs)
      for (const Node* c : consumers[o])
        if (--pending[c] == 0) ready.push_back(c);
  }
  if (order.size() != g.nodes.size()) {
    std::string cyc;
    int shown = 0;
    for (const Node& n : g.nodes)
      if (pending[&n] > 0 && shown++ < 5) cyc += (cyc.empty() ? "" : ", ") + n.label();
    fail(ErrorKind::kInvalidModel, "the graph has a cycle through ", cyc);
  }

  phase.emplace("supported ops");
  // Every unsupported op, reported at once.
  std::map<std::string, std::vector<std::string>> unsupported;
  CpuProvider cpu;
  for (const Node* n : order) {
    int64_t op_opset = model_.opset(n->domain);
    if (op_opset == 0 || !cpu.supports(*n, op_opset)) {
      std::string key = (n->domain.empty() ? "" : n->domain + ".") + n->op_type;
      if (op_opset == 0) key += " (domain not imported)";
      else key += " (opset " + std::to_string(op_opset) + ")";
      unsupported[key].push_back(n->name.empty() ? "<unnamed>" : n->name);
    }
  }
  if (!unsupported.empty()) {
    std::string msg = "the model uses " + std::to_string(unsupported.size()) + " unsupported op type(s): ";
    bool first = true;
    for (auto& [op, nodes] : unsupported) {
      msg += (first ? "" : "; ") + op + " at node(s) ";
      first = false;
      for (size_t k = 0; k < nodes.size() && k < 8; ++k) msg += (k ? ", '" : "'") + nodes[k] + "'";
      if (nodes.size() > 8) msg += ", ... (" + std::to_string(nodes.size()) + " in all)";
    }
    fail(ErrorKind::kUnsupportedOp, msg);
  }

  phase.emplace("value ids");
  for (const Node* n : order)
    for (const std::string& o : n->outputs)
      if (!o.empty()) define(o);
  const int nv = static_cast<int>(names_.size());
  constants_.assign(nv, nullptr);
  for (auto& [name, t] : g.initializers) constants_[ids_[name]] = &t;

  last_use_.assign(nv, -1);
  pinned_.assign(nv, false);
  for (const ValueInfo& o : g.outputs) {
    int v = ids_[o.name];
    graph_output_ids_.push_back(v);
    last_use_[v] = INT_MAX;
    pinned_[v] = true;
  }
  for (const ValueInfo& i : g.inputs) {
    pinned_[ids_[i.name]] = true;
    graph_input_ids_.push_back(ids_[i.name]);
  }

  phase.emplace("shape inference");
  // Static dtype and shape inference. Overridable initializers are typed by their declaration.
  std::vector<const Tensor*> fixed = constants_;
  std::vector<const ValueInfo*> declared(nv, nullptr);
  for (const ValueInfo& i : g.inputs) {
    fixed[ids_[i.name]] = nullptr;
    declared[ids_[i.name]] = &i;
  }
  types_ = infer_value_types({&model_, &order, [this](const std::string& n) { return value_id(n); }, nv, &fixed,
                              &declared});
  for (const ValueInfo& o : g.outputs) outputs_.push_back(with_inferred(o, types_[ids_[o.name]]));

  phase.emplace("placement");
  place_nodes(order);
  phase.reset();
  const bool on_device = !options.placement_only &&
                         std::any_of(placement_.begin(), placement_.end(),
                                     [](const NodePlacement& p) { return p.device != DeviceKind::kCPU; });
  // Constant reads per value (node input slots), and how many of them a kernel released because it
  // packed its own copy.
  std::vector<int> constant_reads(nv, 0), constant_releases(nv, 0);
  for (const Node* n : order)
    for (const std::string& i : n->inputs)
      if (!i.empty() && constants_[ids_[i]]) constant_reads[ids_[i]]++;
  std::vector<int> host_steps;  // steps whose CPU kernel is to be built
  for (const Node* n : order) {
    Step st;
    st.node = n;
    for (const std::string& i : n->inputs) st.inputs.push_back(i.empty() ? -1 : ids_[i]);
    for (const std::string& o : n->outputs) st.outputs.push_back(o.empty() ? -1 : ids_[o]);
    int step_index = static_cast<int>(steps_.size());
    for (int v : st.inputs)
      if (v >= 0 && last_use_[v] != INT_MAX) last_use_[v] = std::max(last_use_[v], step_index);
    // Misaligned weights are left in the file only for readers that take them in place (see
    // graph_prep); any other reader, or one on the device, gets the aligned copy before it looks.
    const bool host_step = !on_device || placement_[step_index].device == DeviceKind::kCPU;
    for (size_t k = 0; k < st.inputs.size(); ++k)
      if (st.inputs[k] >= 0 && constants_[st.inputs[k]] && !(host_step && reads_misaligned_in_place(*n, k)))
        realign_weight(model_, *const_cast<Tensor*>(constants_[st.inputs[k]]));
    if (host_step) host_steps.push_back(step_index);  // else the device executor makes its kernel
    steps_.push_back(std::move(st));
  }
  deferred_.assign(nv, 0);
  for (const auto& [name, d] : model_.deferred) {
    auto it = ids_.find(name);
    if (it != ids_.end() && constants_[it->second]) deferred_[it->second] = 1;
  }
  file_pages.wait();
  build_kernels(host_steps, input_names, constant_reads, constant_releases);
  // Deferred constants no host kernel asked for (device steps) are computed now.
  for (int v = 0; v < nv; ++v)
    if (deferred_[v]) {
      materialize_constant(model_, names_[v], *const_cast<Tensor*>(constants_[v]));
      stats_.deferred_constants++;
    }
  // A GEMM that kept reading its misaligned B at run time (it did not pack it) reads a copy;
  // Gather's data stays in place (it copies rows bytewise).
  std::vector<int> gather_reads(nv, 0);
  for (const Step& st : steps_)
    if (st.kernel && st.node->op_type == "Gather" && reads_misaligned_in_place(*st.node, 0) && st.inputs[0] >= 0)
      gather_reads[st.inputs[0]]++;
  for (int v = 0; v < nv; ++v)
    if (constants_[v] && constant_reads[v] - constant_releases[v] - gather_reads[v] > 0)
      realign_weight(model_, *const_cast<Tensor*>(constants_[v]));
  if (model_.page_drops) model_.page_drops->flush();  // realigned copies made just above
#ifdef RUNNX_WITH_CUDA
  if (on_device)
    for (const ProviderRequest& p : options.providers)
      if (p.name == kCudaProviderName) device_ = cuda::make_executor(*this, p);
#endif
}

// One kernel per host step. Constructors parse attributes and pack constant weights; with more
// than one thread and enough weight bytes to pack they run side by side (each constructor reads
// only its node and its constants; releases, which count readers across nodes, take a lock).
// A constructor's error names its node; with several, the first in execution order is raised.
void Session::build_kernels(const std::vector<int>& host_steps, const std::set<std::string>& overridable,
                            const std::vector<int>& reads, std::vector<int>& releases) {
  std::vector<size_t> step_bytes(host_steps.size(), 0);
  size_t weight_bytes = 0;
  for (size_t j = 0; j < host_steps.size(); ++j) {
    for (int v : steps_[host_steps[j]].inputs)
      if (v >= 0 && constants_[v]) step_bytes[j] += constants_[v]->nbytes();
    weight_bytes += step_bytes[j];
  }
  const int threads =
      weight_bytes >= kSpreadFromBytes ? std::max(1, std::min<int>(num_threads_, host_steps.size())) : 1;
  // Several threads take the steps with the most weight bytes first, so that no big pack (a
  // classifier's weight, last in execution order) starts when the other threads are done.
  std::vector<size_t> build_order(host_steps.size());
  for (size_t j = 0; j < build_order.size(); ++j) build_order[j] = j;
  if (threads > 1)
    std::stable_sort(build_order.begin(), build_order.end(),
                     [&](size_t a, size_t b) { return step_bytes[a] > step_bytes[b]; });
  // A file of at most 32 MiB is resident before the kernels are built: dropping its pages weight
  // by weight lowers no peak (MobileNetV2), and each drop interrupts the other build threads.
  // They are dropped together once the kernels are built (Model::page_drops). A larger file's
  // pages become resident only as they are read, so each weight's go once it is packed.
  FilePageDrops* drops = model_.page_drops.get();
  std::mutex release_mu;
  std::vector<std::exception_ptr> errors(host_steps.size());
  LoadProfile* profile = LoadProfile::current();
  auto make = [&](size_t taken) {
    const size_t j = build_order[taken];
    LoadProfile::Join join(profile);
    FilePageDrops::Join join_drops(drops);
    LoadMemoryScope load_memory;
    Step& st = steps_[host_steps[j]];
    const Node& n = *st.node;
    const std::vector<int>& in_ids = st.inputs;
    try {
      // Inputs that are initializers and not overridable are the kernel's compile-time constants.
      KernelInfo info{n, model_.opset(n.domain),
                      [&](int k) -> const Tensor* {
                        if (k < 0 || k >= (int)in_ids.size() || in_ids[k] < 0) return nullptr;
                        if (overridable.count(names_[in_ids[k]])) return nullptr;
                        return constants_[in_ids[k]];
                      },
                      num_threads_};
      info.input_dims = [&](int k) {
        std::vector<int64_t> dims;
        if (k < 0 || k >= (int)in_ids.size() || in_ids[k] < 0 || !types_[in_ids[k]].has_shape) return dims;
        for (const SymDim& d : types_[in_ids[k]].dims) dims.push_back(d.is_const() ? d.value() : -1);
        return dims;
      };
      std::vector<bool> released(in_ids.size(), false);
      info.release_constant = [&](int k) {
        const Tensor* t = info.constant_input(k);
        if (!t || released[k]) return;
        released[k] = true;
        LoadPhase release_phase("weight release");
        release_mapped_weight(model_, *t);  // its own file pages: no lock needed
        UnreadWeight unread;
        {
          std::lock_guard<std::mutex> lk(release_mu);
          releases[in_ids[k]]++;
          unread = release_if_unread(in_ids[k], reads, releases);
        }
        // The system calls and the free outside the lock (a deferred fold waits on it).
        if (unread.bytes.data) release_unread_weight(unread.bytes);
      };
      for (int v : in_ids)
        if (v >= 0 && deferred_[v]) {
          LoadPhase fold_phase("deferred constants");
          materialize_constant(model_, names_[v], *const_cast<Tensor*>(constants_[v]), &release_mu);
        }
      LoadPhase kernel_phase("kernel ", &n.op_type);
      st.kernel = OpRegistry::global().find(n.domain, n.op_type, info.opset)->make(info);
    } catch (const Error& e) {
      std::string what = e.what();
      if (what.find(n.label()) == std::string::npos) what = n.label() + ": " + what;
      errors[j] = std::make_exception_ptr(
          Error(e.kind() == ErrorKind::kInvalidArgument ? ErrorKind::kInvalidModel : e.kind(), what));
    } catch (const std::bad_alloc&) {
      errors[j] = std::make_exception_ptr(
          Error(ErrorKind::kResourceExhausted, n.label() + ": out of memory while building its kernel"));
    } catch (const std::exception& e) {
      errors[j] = std::make_exception_ptr(Error(ErrorKind::kRuntime, n.label() + ": " + e.what()));
    } catch (...) {
      errors[j] = std::current_exception();
    }
    if (errors[j] && threads == 1) std::rethrow_exception(errors[j]);  // alone: stop at the first
  };
  stats_.kernel_build_threads = run_spread(host_steps.size(), threads, make);
  if (drops) {
    LoadPhase release_phase("weight release, gathered");
    drops->flush();
  }
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
}

// A weight that every reader packed into its own copy: its bytes (a heap copy of a misaligned
// tensor, a model parsed from bytes, file pages) are never read again, so its pages go back to the
// system as soon as the last reader is built. Graph inputs (overridable) and outputs are read by
// run(); a weight whose bytes overlap one still read (a folded view) stays. Called under the
// build's release lock; the caller drops the pages (or frees the block) after unlocking.
Session::UnreadWeight Session::release_if_unread(int v, const std::vector<int>& reads,
                                                 const std::vector<int>& releases) const {
  UnreadWeight out;
  const Tensor* t = constants_[v];
  if (!t || !t->data || !t->nbytes() || pinned_[v] || reads[v] == 0 || releases[v] < reads[v]) return out;
  auto* lo = static_cast<const uint8_t*>(t->data);
  auto* hi = lo + t->nbytes();
  for (size_t u = 0; u < constants_.size(); ++u) {
    const Tensor* o = constants_[u];
    if (!o || o == t || !o->data || (!pinned_[u] && releases[u] == reads[u])) continue;
    auto* a = static_cast<const uint8_t*>(o->data);
    if (a < hi && lo < a + o->nbytes()) return out;
  }
  Tensor& mt = *const_cast<Tensor*>(t);
  if (deferred_[v] && t->owner.use_count() == 1) {
    // A deferred fold's block, computed for its readers alone: back to malloc, whose next
    // block (the next fold, a pack) reuses its pages while they are warm.
    out.block = std::move(mt.owner);
    mt.data = nullptr;
    stats_.deferred_constants_freed++;
    return out;
  }
  out.bytes.dtype = t->dtype;
  out.bytes.shape = t->shape;
  out.bytes.data = t->data;
  return out;
}

// Placement: the first device provider asked for takes each node it has a kernel for; values
// cross between host and device only where a reader sits on the other side.
void Session::place_nodes(const std::vector<const Node*>& order) {
  placement_.assign(order.size(), NodePlacement{});
  copies_.clear();
  bool cuda_asked = false;
  for (const ProviderRequest& p : options_.providers) cuda_asked |= p.name == kCudaProviderName;
  if (!cuda_asked) return;
  // Initializers no feed can replace: a device kernel gets them uploaded once, at load.
  std::set<std::string> graph_inputs;
  for (const ValueInfo& vi : model_.graph.inputs) graph_inputs.insert(vi.name);
  auto fixed_constant = [&](const std::string& name) {
    return !name.empty() && constants_[ids_.at(name)] && !graph_inputs.count(name);
  };
#ifdef RUNNX_WITH_CUDA
  for (size_t s = 0; s < order.size(); ++s) {
    const Node* n = order[s];
    std::vector<const InferredType*> ins, outs;
    for (const std::string& i : n->inputs) ins.push_back(i.empty() ? nullptr : &types_[ids_.at(i)]);
    for (const std::string& o : n->outputs) outs.push_back(o.empty() ? nullptr : &types_[ids_.at(o)]);
    auto is_constant = [&](int k) { return k < (int)n->inputs.size() && fixed_constant(n->inputs[k]); };
    placement_[s] = cuda::place_node(*n, model_.opset(n->domain), ins, outs, is_constant);
  }
  // Small integer arithmetic on host values (Shape -> Gather -> Concat -> Reshape chains) stays
  // on the host: on the device it would cost a copy up and another down for a few int64s.
  std::set<std::string> on_host;
  for (const ValueInfo& vi : model_.graph.inputs) on_host.insert(vi.name);
  for (size_t s = 0; s < order.size(); ++s) {
    const Node* n = order[s];
    NodePlacement& p = placement_[s];
    if (p.device != DeviceKind::kCPU && !p.host_outputs) {
      bool host_inputs_only = true, integer_outputs = true;
      for (const std::string& i : n->inputs)
        if (!i.empty() && !fixed_constant(i) && !on_host.count(i)) host_inputs_only = false;
      for (const std::string& o : n->outputs) {
        if (o.empty()) continue;
        const InferredType& t = types_[ids_.at(o)];
        SymDim numel = t.has_shape ? t.numel() : SymDim();
        bool small = t.has_values || (numel.is_const() && numel.value() <= 64);
        if ((t.dtype != DType::kI64 && t.dtype != DType::kI32) || !small) integer_outputs = false;
      }
      if (host_inputs_only && integer_outputs)
        p = NodePlacement{DeviceKind::kCPU, "integer shape arithmetic on host values stays on the CPU", {}, {}, false};
    }
    if (p.device == DeviceKind::kCPU || p.host_outputs)
      for (const std::string& o : n->outputs) on_host.insert(o);
  }
#else
  for (NodePlacement& p : placement_) p.reason = "runnx was built without CUDA";
  return;
#endif
  // Where each value is written (graph inputs: the host), and the copies readers need.
  std::map<std::string, DeviceKind> where;
  std::set<std::pair<std::string, DeviceKind>> copied;
  for (size_t s = 0; s < order.size(); ++s) {
    const Node* n = order[s];
    const NodePlacement& p = placement_[s];
    for (size_t k = 0; k < n->inputs.size(); ++k) {
      const std::string& name = n->inputs[k];
      if (name.empty() || fixed_constant(name)) continue;
      bool host_read = p.device == DeviceKind::kCPU ||
                       std::find(p.host_inputs.begin(), p.host_inputs.end(), (int)k) != p.host_inputs.end();
      DeviceKind need = host_read ? DeviceKind::kCPU : p.device;
      auto it = where.find(name);
      DeviceKind have = it == where.end() ? DeviceKind::kCPU : it->second;
      if (have != need && copied.insert({name, need}).second)
        copies_.push_back({name, need, static_cast<int>(s)});
    }
    for (const std::string& o : n->outputs)
      if (!o.empty()) where[o] = p.host_outputs ? DeviceKind::kCPU : p.device;
  }
  for (const ValueInfo& o : model_.graph.outputs) {
    auto it = where.find(o.name);
    if (it != where.end() && it->second != DeviceKind::kCPU) copies_.push_back({o.name, DeviceKind::kCPU, -1});
  }
}

std::map<std::string, std::map<std::string, std::string>> Session::provider_options() const {
  std::map<std::string, std::map<std::string, std::string>> out;
  if (device_) out[kCudaProviderName] = device_->options();
  out[kCpuProviderName] = {};
  return out;
}

std::vector<std::pair<const Node*, std::string>> Session::kernel_choices() const {
  std::vector<std::pair<const Node*, std::string>> out;
  for (size_t s = 0; s < steps_.size(); ++s) {
    const Step& st = steps_[s];
    out.emplace_back(st.node, st.kernel ? st.kernel->describe() : device_->describe_step(static_cast<int>(s)));
  }
  return out;
}

void Session::run_cpu_step(int s, const std::vector<const Tensor*>& ins, std::vector<Tensor>& outs,
                           const KernelContext::OutputAllocator& alloc) const {
  run_step(s, &ins, outs, &alloc);
}

void Session::run_step(int s, const std::vector<const Tensor*>* ins, std::vector<Tensor>& outs,
                       const KernelContext::OutputAllocator* alloc) const {
  const Step& st = steps_[s];
  KernelContext ctx(*st.node, ins, outs, pool(), alloc);
  try {
    st.kernel->run(ctx);
  } catch (const Error& e) {
    std::string what = e.what();
    if (what.find(st.node->label()) == std::string::npos) what = st.node->label() + ": " + what;
    throw Error(e.kind(), what);
  } catch (const std::exception& e) {
    throw Error(ErrorKind::kRuntime, st.node->label() + ": " + e.what());
  }
}

void Session::check_feed(const ValueInfo& info, const Tensor& t) const {
  if (info.dtype != DType::kUndefined && info.dtype != t.dtype)
    fail(ErrorKind::kInvalidArgument, "input '", info.name, "': expected tensor(", dtype_name(info.dtype),
         "), got tensor(", dtype_name(t.dtype), ")");
  if (!info.has_shape) return;
  if (info.dims.size() != t.shape.size())
    fail(ErrorKind::kInvalidArgument, "input '", info.name, "': expected rank ", info.dims.size(),
         " (shape ", dims_str(info), "), got rank ", t.shape.size(), " (shape ", shape_str(t.shape), ")");
  for (size_t d = 0; d < t.shape.size(); ++d)
    if (info.dims[d].known() && info.dims[d].value != t.shape[d])
      fail(ErrorKind::kInvalidArgument, "input '", info.name, "': dimension ", d, " must be ",
           info.dims[d].value, ", got ", t.shape[d], " (expected shape ", dims_str(info), ", got ",
           shape_str(t.shape), ")");
}

std::shared_ptr<MemoryPlan> Session::find_plan(const std::vector<int64_t>& key) const {
  std::shared_lock<std::shared_mutex> lk(plans_mu_);
  auto it = plans_.find(key);
  return it == plans_.end() ? nullptr : it->second;
}

void Session::check_feeds(const std::vector<std::string>& feed_names, const std::vector<const Tensor*>& feeds,
                          std::vector<int>& ids, std::vector<char>& fed) const {
  // Known names, right dtype and rank, each fed once, every required input present.
  RUNNX_CHECK(feed_names.size() == feeds.size(), kInvalidArgument, "feed names and feeds differ in count");
  ids.clear();
  fed.assign(names_.size(), 0);
  const std::vector<ValueInfo>& declared = model_.graph.inputs;
  for (size_t k = 0; k < feeds.size(); ++k) {
    const std::string& name = feed_names[k];
    size_t j = 0;
    while (j < declared.size() && declared[j].name != name) ++j;
    if (j == declared.size()) {
      std::string known;
      for (const ValueInfo& vi : inputs_) known += (known.empty() ? "" : ", ") + vi.name;
      fail(ErrorKind::kInvalidArgument, "invalid input name '", name, "'; the model's inputs are: ", known);
    }
    check_feed(declared[j], *feeds[k]);
    const int v = graph_input_ids_[j];
    RUNNX_CHECK(!fed[v], kInvalidArgument, "input '", name, "' is fed twice");
    fed[v] = 1;
    ids.push_back(v);
  }
  for (size_t j = 0; j < declared.size(); ++j) {
    const ValueInfo& vi = declared[j];
    RUNNX_CHECK(fed[graph_input_ids_[j]] || constants_[graph_input_ids_[j]], kInvalidArgument, "required input '",
                vi.name, "' (tensor(", dtype_name(vi.dtype), "), shape ", dims_str(vi), ") is missing from the feeds");
  }
}

std::vector<int> Session::feed_ids(const std::vector<std::string>& feed_names,
                                   const std::vector<const Tensor*>& feeds) const {
  std::vector<int> ids;
  std::vector<char> fed;
  check_feeds(feed_names, feeds, ids, fed);
  return ids;
}

void Session::find_outputs(const std::vector<std::string>& output_names, std::vector<int>& wanted) const {
  if (output_names.empty()) {
    wanted = graph_output_ids_;
    return;
  }
  wanted.clear();
  for (const std::string& name : output_names) {
    int v = -1;
    for (int o : graph_output_ids_)
      if (names_[o] == name) v = o;
    RUNNX_CHECK(v >= 0, kInvalidArgument, "invalid output name '", name, "'");
    wanted.push_back(v);
  }
}

std::vector<int> Session::wanted_ids(const std::vector<std::string>& output_names) const {
  std::vector<int> wanted;
  find_outputs(output_names, wanted);
  return wanted;
}

std::unique_ptr<Session::RunState> Session::take_run_state() {
  if (auto rs = idle_run_states_.take()) return rs;
  auto rs = std::make_unique<RunState>();
  rs->pinned = &pinned_;
  rs->output_buffers = output_buffers_.get();
  return rs;
}

void Session::give_back_run_state(std::unique_ptr<RunState> rs) {
  rs->finish();
  idle_run_states_.give_back(std::move(rs));
}

std::vector<PlacedTensor> Session::run_placed(const std::vector<std::string>& feed_names,
                                              const std::vector<PlacedTensor>& feeds,
                                              const std::vector<std::string>& output_names,
                                              const std::vector<DeviceKind>& output_devices) {
  std::vector<const Tensor*> tensors;
  for (const PlacedTensor& p : feeds) tensors.push_back(&p.tensor);
  if (!device_) {
    for (size_t k = 0; k < feeds.size(); ++k)
      RUNNX_CHECK(feeds[k].device == DeviceKind::kCPU, kInvalidArgument, "input '", feed_names[k], "' is in ",
                  device_kind_name(feeds[k].device), " memory, but this session runs on CPUExecutionProvider only");
    for (DeviceKind d : output_devices)
      RUNNX_CHECK(d == DeviceKind::kCPU, kInvalidArgument,
                  "an output was bound to ", device_kind_name(d), " memory, but this session runs on CPUExecutionProvider only");
    std::vector<Tensor> host;
    for (const PlacedTensor& p : feeds) host.push_back(p.tensor);
    std::vector<PlacedTensor> out;
    for (Tensor& t : run(feed_names, host, output_names)) out.push_back({std::move(t), DeviceKind::kCPU, 0});
    return out;
  }
  std::vector<int> ids = feed_ids(feed_names, tensors);
  std::vector<const PlacedTensor*> fed(names_.size(), nullptr);
  for (size_t k = 0; k < ids.size(); ++k) fed[ids[k]] = &feeds[k];
  std::vector<int> wanted = wanted_ids(output_names);
  std::vector<DeviceKind> want_on = output_devices;
  if (want_on.empty()) want_on.assign(wanted.size(), DeviceKind::kCPU);
  RUNNX_CHECK(want_on.size() == wanted.size(), kInvalidArgument, "output_devices has ", want_on.size(),
              " entries for ", wanted.size(), " outputs");
  return device_->run(fed, wanted, want_on);
}

std::vector<Tensor> Session::run(const std::vector<std::string>& feed_names, const std::vector<Tensor>& feeds,
                                 const std::vector<std::string>& output_names) {
  if (device_) {
    std::vector<PlacedTensor> placed;
    for (const Tensor& t : feeds) placed.push_back({t, DeviceKind::kCPU, 0});
    std::vector<Tensor> out;
    for (PlacedTensor& p : run_placed(feed_names, placed, output_names, {})) out.push_back(std::move(p.tensor));
    return out;
  }
  // The run state goes back to the session when the call ends, thrown or not (its tensors are
  // dropped first; an arena taken from a plan is freed by its own guard on a throw).
  struct StateGuard {
    Session* s;
    std::unique_ptr<RunState> rs;
    ~StateGuard() { s->give_back_run_state(std::move(rs)); }
  } guard{this, take_run_state()};
  ThreadPool::RunScope pool_ready(pool());  // workers wake now, while the feeds are checked
  RunState& rs = *guard.rs;
  rs.slot = constants_;
  rs.ins.clear();
  for (const Tensor& t : feeds) rs.ins.push_back(&t);
  check_feeds(feed_names, rs.ins, rs.feed_ids, rs.fed);
  for (size_t k = 0; k < rs.feed_ids.size(); ++k) rs.slot[rs.feed_ids[k]] = &feeds[k];
  find_outputs(output_names, rs.wanted);
  // The plan key: dtype and shape of every fed value, in graph-input order (feed order varies).
  rs.key.clear();
  for (size_t j = 0; j < graph_input_ids_.size(); ++j) {
    const int v = graph_input_ids_[j];
    if (!rs.fed[v]) continue;
    const Tensor& t = *rs.slot[v];
    rs.key.push_back(static_cast<int64_t>(j));
    rs.key.push_back(static_cast<int64_t>(t.dtype));
    rs.key.push_back(t.rank());
    rs.key.insert(rs.key.end(), t.shape.begin(), t.shape.end());
  }

  if (options_.enable_mem_pattern) rs.plan = find_plan(rs.key);
  if (!rs.plan) {
    rs.observing = true;
    rs.records.assign(names_.size(), ValueRecord{});
    rs.bindings.clear();
    std::vector<std::string> conflicted;
    for (size_t j = 0; j < graph_input_ids_.size(); ++j) {
      const int v = graph_input_ids_[j];
      if (rs.fed[v]) bind_symbols(types_[v], *rs.slot[v], rs.bindings, conflicted);
    }
    if (options_.enable_mem_pattern) rs.plan = static_plan(rs.bindings);
  }
  std::unique_ptr<uint8_t, void (*)(void*)> arena(nullptr, std::free);
  if (rs.plan) {
    arena = rs.plan->take_arena();
    rs.arena = arena.get();
  }
  if (rs.values.size() != names_.size()) rs.values.resize(names_.size());

  execute(rs);

  std::vector<Tensor> out;
  out.reserve(rs.wanted.size());
  for (size_t k = 0; k < rs.wanted.size(); ++k) {
    const int v = rs.wanted[k];
    const Tensor* t = rs.slot[v];
    RUNNX_CHECK(t && (t->data || t->numel() == 0), kRuntime, "output '", names_[v], "' was not produced");
    // Return the buffer itself only when nothing else owns it: a heap block of this run, handed
    // out once (a second request of the same output, or a view of another output, is a copy).
    bool borrowed = !t->owner || constants_[v] || rs.fed[v] || t != &rs.values[v];
    if (!borrowed)
      for (const Tensor* c : constants_)
        if (c && c->owner == t->owner) borrowed = true;
    for (const Tensor& o : out)
      if ((o.data == t->data && t->nbytes()) || (o.owner && o.owner == t->owner)) borrowed = true;
    out.push_back(borrowed ? Tensor::clone(*t) : std::move(rs.values[v]));
    if (!borrowed) rs.slot[v] = &out.back();  // a later request of v sees the moved tensor
  }
  if (!rs.observing || !options_.enable_mem_pattern) {
    if (rs.plan) rs.plan->give_back(std::move(arena));
  } else {
    // The plan the observation gives (views share their source's buffer, sizes as produced);
    // the static plan this run used is kept when it foresaw exactly that. Otherwise its arena
    // serves the new plan when big enough, so the next run faults in no fresh pages.
    const bool keep_static = rs.plan && rs.plan->records == rs.records;
    std::shared_ptr<MemoryPlan> plan =
        keep_static ? rs.plan : std::shared_ptr<MemoryPlan>(build_memory_plan(step_infos(), rs.records, pinned_));
    if (arena) (rs.plan->arena_bytes >= plan->arena_bytes ? plan : rs.plan)->give_back(std::move(arena));
    plan->records.clear();
    plan->records.shrink_to_fit();
    std::unique_lock<std::shared_mutex> lk(plans_mu_);
    if (plans_.size() >= 64) plans_.clear();  // bound the cache under a stream of new shapes
    plans_.emplace(rs.key, plan);
    stats_.arena_bytes = plan->arena_bytes;
    stats_.unplanned_bytes = plan->heap_bytes_unplanned;
    stats_.inplace_nodes = plan->inplace_count;
    stats_.plans++;
    stats_.static_plans_kept += keep_static;
  }
  return out;
}

std::vector<StepInfo> Session::step_infos() const {
  std::vector<StepInfo> infos;
  infos.reserve(steps_.size());
  for (const Step& st : steps_) infos.push_back({st.inputs, st.outputs, st.kernel->inplace_input()});
  return infos;
}

// A plan for a signature's first run from static inference: every value whose shape the bound
// input symbols fix gets an arena slot, so that run never holds its intermediates on the heap
// (freed heap blocks stay in malloc's free lists, and the arena made after would come on top).
// Values of unknown size stay on the heap; views it did not foresee are copied out of the arena.
std::shared_ptr<MemoryPlan> Session::static_plan(const SymBindings& bindings) const {
  std::vector<ValueRecord> records(names_.size());
  bool any = false;
  for (const Step& st : steps_) {
    // A view shares its input's bytes, as the observing run will record it.
    // Only output 0 is the view (Dropout's mask is its own tensor).
    const int view = st.kernel->view_input();
    const bool first_is_view = view >= 0 && view < (int)st.inputs.size() && st.inputs[view] >= 0 &&
                               !st.outputs.empty() && st.outputs[0] >= 0;
    if (first_is_view) records[st.outputs[0]].alias_of = st.inputs[view];
    for (size_t o = first_is_view ? 1 : 0; o < st.outputs.size(); ++o) {
      const int v = st.outputs[o];
      const InferredType& t = v >= 0 ? types_[v] : InferredType{};
      const int64_t elem = v >= 0 && t.has_shape ? static_cast<int64_t>(dtype_size(t.dtype)) : 0;
      if (elem == 0 || t.dtype == DType::kString) continue;
      int64_t numel = 1;
      for (const SymDim& d : t.dims) {
        std::optional<int64_t> n = d.eval(bindings);
        if (!n || *n < 0 || (*n > 0 && numel > kMaxTensorBytes / elem / *n)) {
          numel = -1;
          break;
        }
        numel *= *n;
      }
      if (numel < 0) continue;
      records[v].nbytes = numel * elem;
      any = true;
    }
  }
  if (!any) return nullptr;
  std::shared_ptr<MemoryPlan> plan = build_memory_plan(step_infos(), records, pinned_);
  plan->records = std::move(records);
  std::unique_lock<std::shared_mutex> lk(plans_mu_);
  stats_.static_plans++;
  return plan;
}

void Session::execute(RunState& rs) {
  MemoryPlan* plan = rs.plan.get();
  uint8_t* arena_end = plan ? rs.arena + plan->arena_bytes : nullptr;
  const bool profiling = options_.enable_profiling;
  for (int s = 0; s < static_cast<int>(steps_.size()); ++s) {
    const Step& st = steps_[s];
    rs.ins.clear();
    for (int v : st.inputs) rs.ins.push_back(v >= 0 ? rs.slot[v] : nullptr);
    rs.outs.resize(st.outputs.size());
    rs.allocated.assign(st.outputs.size(), 0);
    rs.step_outputs = &st.outputs;
    int64_t t0 = profiling ? now_us() : 0;
    run_step(s, &rs.ins, rs.outs, &rs.alloc);
    if (profiling) {
      ProfileEvent ev{st.node->name, st.node->op_type, t0, now_us() - t0,
                      static_cast<int64_t>(std::hash<std::thread::id>()(std::this_thread::get_id()) % 100000)};
      std::lock_guard<std::mutex> lk(profile_mu_);
      profile_.push_back(std::move(ev));
    }
    for (size_t i = 0; i < rs.outs.size(); ++i) {
      int v = st.outputs[i];
      Tensor& t = rs.outs[i];
      if (v < 0) {
        t = Tensor{};
        continue;
      }
      RUNNX_CHECK(t.dtype != DType::kUndefined, kRuntime, st.node->label(), ": output ", i, " was not produced");
      if (!rs.allocated[i]) {
        // A view: find the input it points into, so the plan keeps that buffer alive.
        int alias = -1;
        auto* p = static_cast<const uint8_t*>(t.data);
        for (size_t k = 0; k < rs.ins.size() && p; ++k) {
          const Tensor* in = rs.ins[k];
          auto* b = in ? static_cast<const uint8_t*>(in->data) : nullptr;
          if (b && p >= b && p < b + std::max<size_t>(in->nbytes(), 1)) alias = st.inputs[k];
        }
        if (rs.observing) rs.records[v].alias_of = alias;
        if (plan && p && p >= rs.arena && p < arena_end && !plan->was_view[v]) {
          // A view into the arena that the plan did not foresee (data-dependent): copy it out.
          t = Tensor::clone(t);
        }
      }
      if (rs.observing) {
        std::string msg = check_inferred(types_[v], t, rs.bindings);
        if (!msg.empty()) note_inference_mismatch(st.node->label() + " output '" + names_[v] + "': " + msg);
      }
      rs.values[v] = std::move(t);
      rs.slot[v] = &rs.values[v];
    }
    // Free what no later step reads (heap values of observing runs; arena slots need nothing).
    for (int v : st.inputs)
      if (v >= 0 && last_use_[v] == s && !constants_[v] && rs.slot[v] == &rs.values[v]) rs.values[v] = Tensor{};
  }
}

void Session::note_inference_mismatch(const std::string& msg) const {
  if (strict_inference_) fail(ErrorKind::kRuntime, "static shape inference disagrees with the kernel: ", msg);
  std::unique_lock<std::shared_mutex> lk(plans_mu_);
  if (stats_.inference_mismatches++ == 0) stats_.first_inference_mismatch = msg;
}

std::vector<std::pair<std::string, InferredType>> Session::inferred_types() const {
  std::vector<std::pair<std::string, InferredType>> r;
  for (size_t v = 0; v < types_.size(); ++v) r.emplace_back(names_[v], types_[v]);
  return r;
}

SessionStats Session::stats() const {
  std::shared_lock<std::shared_mutex> lk(plans_mu_);
  SessionStats st = stats_;
  st.realigned_weight_bytes = model_.realigned_bytes;
  st.output_buffers_reused = output_buffers_->reused();
  return st;
}

std::vector<ProfileEvent> Session::take_profile() {
  std::lock_guard<std::mutex> lk(profile_mu_);
  return std::exchange(profile_, {});
}

}  // namespace runnx
