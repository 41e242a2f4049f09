// A loaded model ready to run: validated graph, one kernel per node, a thread pool, and memory
// plans cached per input-shape signature. run() is safe to call from many threads at once.
#pragma once
#include <climits>
#include <map>
#include <memory>
#include <set>
#include <shared_mutex>
#include <string>
#include <vector>

#include "common/thread_pool.h"
#include "infer/infer.h"
#include "ir/graph.h"
#include "ops/kernel.h"
#include "passes/pass.h"
#include "runtime/idle_list.h"
#include "runtime/output_buffers.h"
#include "runtime/plan.h"
#include "runtime/provider.h"

namespace runnx {

struct SessionOptions {
  int intra_op_num_threads = 0;       // 0: the cores this process may use
  int graph_optimization_level = 99;  // onnxruntime's levels: 0 off, 1 basic, 2 extended, 99 all
  bool enable_mem_pattern = true;     // arena plans per shape signature
  bool enable_profiling = false;
  // onnxruntime's session.intra_op.allow_spinning: false makes the pool's threads sleep as soon
  // as they wait (no spinning between kernels), for hosts shared with other busy processes.
  bool allow_spinning = true;
  // Providers in priority order (empty: CPU only). CUDA takes the nodes it has kernels for.
  std::vector<ProviderRequest> providers;
  // Compute the device placement without a device and run every node on the CPU (tests and
  // `runnx inspect` on machines without a GPU).
  bool placement_only = false;
};

struct ProfileEvent {
  std::string name, op_type;
  int64_t start_us = 0, dur_us = 0;
  int64_t thread = 0;
};

struct SessionStats {
  int64_t arena_bytes = 0;        // arena size of the most recently built plan
  int64_t unplanned_bytes = 0;    // bytes that plan leaves on the heap (graph outputs)
  int64_t inplace_nodes = 0;
  int64_t plans = 0;              // distinct shape signatures planned
  // Values whose run-time dtype/shape contradicted static inference (a bug in an inference
  // function; checked on the first run of each shape signature), and the first such message.
  int64_t inference_mismatches = 0;
  std::string first_inference_mismatch;
  // Weight bytes copied to the heap at load because they were misaligned in the file.
  int64_t realigned_weight_bytes = 0;
  // Plans made from static shapes before a signature's first run (no observing run on the heap).
  int64_t static_plans = 0;
  // Static plans their first run confirmed (it saw exactly the sizes and views they foresaw).
  int64_t static_plans_kept = 0;
  // Threads that built the kernels at creation (1, or up to intra_op_num_threads for models with
  // megabytes of weights to pack).
  int64_t kernel_build_threads = 1;
  // Folded weights computed just before their kernel was built (Model::deferred), and those of
  // them freed at load because every reader packed its own copy.
  int64_t deferred_constants = 0;
  int64_t deferred_constants_freed = 0;
  // Graph outputs that reused a buffer an earlier run's caller had dropped (OutputBuffers).
  int64_t output_buffers_reused = 0;
};

class Session {
 public:
  Session(Model model, const SessionOptions& options);
  ~Session();

  const Model& model() const { return model_; }
  // Graph inputs that are not initializers, and the graph outputs, as declared.
  const std::vector<ValueInfo>& inputs() const { return inputs_; }
  // What the model leaves undeclared (dtype, shape) is filled in from static inference.
  const std::vector<ValueInfo>& outputs() const { return outputs_; }
  // Initializers that are also graph inputs (a feed may replace them).
  const std::vector<ValueInfo>& overridable_initializers() const { return overridable_; }
  const std::vector<std::string>& providers() const { return provider_names_; }
  // Options per provider in effect, by provider name.
  std::map<std::string, std::map<std::string, std::string>> provider_options() const;

  // Runs the graph. Outputs come back in the order of `output_names` (all graph outputs if empty).
  std::vector<Tensor> run(const std::vector<std::string>& feed_names, const std::vector<Tensor>& feeds,
                          const std::vector<std::string>& output_names);
  // The same with feeds that may live on a device; each output is returned on `output_devices[k]`
  // (empty: all on the CPU). A CPU-only session accepts host tensors only.
  std::vector<PlacedTensor> run_placed(const std::vector<std::string>& feed_names,
                                       const std::vector<PlacedTensor>& feeds,
                                       const std::vector<std::string>& output_names,
                                       const std::vector<DeviceKind>& output_devices);

  // Per step (execution order): where it runs and why. All CPU when no device provider is asked.
  const std::vector<NodePlacement>& placement() const { return placement_; }
  // Copies across the provider boundary for host feeds, as planned at load.
  const std::vector<ValueCopy>& boundary_copies() const { return copies_; }

  SessionStats stats() const;
  // Bytes of dropped output buffers the session keeps for later runs (OutputBuffers).
  int64_t output_buffers_idle_bytes() const { return output_buffers_->idle_bytes(); }
  // The device executor's counters (device arena bytes, plans, CUDA graphs); empty on the CPU.
  std::map<std::string, int64_t> device_stats() const { return device_ ? device_->stats() : std::map<std::string, int64_t>{}; }
  // Statically inferred dtype and shape of every value (graph inputs, initializers, node
  // outputs), by name, in topological order of definition.
  std::vector<std::pair<std::string, InferredType>> inferred_types() const;
  // Graph passes that rewrote the model at load, with how many times each fired.
  const std::vector<PassFired>& passes_fired() const { return passes_fired_; }
  // The executed nodes in order, each with its kernel's description of the path it chose.
  std::vector<std::pair<const Node*, std::string>> kernel_choices() const;
  std::vector<ProfileEvent> take_profile();
  int num_threads() const { return num_threads_; }

  // What build() prepared, read by a device executor. A step placed on the device has no CPU
  // kernel (kernel == nullptr).
  struct Step {
    const Node* node;
    std::unique_ptr<Kernel> kernel;
    std::vector<int> inputs, outputs;  // value ids, -1 for omitted
  };
  const std::vector<Step>& steps() const { return steps_; }
  const std::vector<std::string>& value_names() const { return names_; }
  // Per value id: the initializer (nullptr for others and for overridable initializers' feeds).
  const Tensor* constant(int v) const { return constants_[v]; }
  int last_use(int v) const { return last_use_[v]; }
  const std::vector<int>& graph_output_ids() const { return graph_output_ids_; }
  const std::vector<InferredType>& value_types() const { return types_; }
  const SessionOptions& options() const { return options_; }
  // Started on first use: creating a session spawns no thread (its first run does).
  ThreadPool& pool() const;
  // Runs CPU step s with host tensors (the device executor's fallback), naming the node in errors.
  void run_cpu_step(int s, const std::vector<const Tensor*>& ins, std::vector<Tensor>& outs,
                    const KernelContext::OutputAllocator& alloc) const;

 private:
  struct RunState;

  void build(const SessionOptions& options);
  int value_id(const std::string& name) const;
  void check_feed(const ValueInfo& info, const Tensor& t) const;
  std::shared_ptr<MemoryPlan> find_plan(const std::vector<int64_t>& key) const;
  std::shared_ptr<MemoryPlan> static_plan(const SymBindings& bindings) const;
  std::vector<StepInfo> step_infos() const;
  void execute(RunState& rs);
  void run_step(int s, const std::vector<const Tensor*>* ins, std::vector<Tensor>& outs,
                const KernelContext::OutputAllocator* alloc) const;
  std::unique_ptr<RunState> take_run_state();
  void give_back_run_state(std::unique_ptr<RunState> rs);
  void check_feeds(const std::vector<std::string>& feed_names, const std::vector<const Tensor*>& feeds,
                   std::vector<int>& ids, std::vector<char>& fed) const;
  void find_outputs(const std::vector<std::string>& output_names, std::vector<int>& wanted) const;
  void note_inference_mismatch(const std::string& msg) const;
  void place_nodes(const std::vector<const Node*>& order);
  void build_kernels(const std::vector<int>& host_steps, const std::set<std::string>& overridable,
                     const std::vector<int>& reads, std::vector<int>& releases);
  // What release_if_unread leaves to its caller: bytes whose pages to drop, or a block to free.
  struct UnreadWeight {
    Tensor bytes;                  // data == nullptr: nothing to drop
    std::shared_ptr<void> block;  // freed when this goes
  };
  UnreadWeight release_if_unread(int v, const std::vector<int>& reads, const std::vector<int>& releases) const;
  std::vector<int> feed_ids(const std::vector<std::string>& feed_names, const std::vector<const Tensor*>& feeds) const;
  std::vector<int> wanted_ids(const std::vector<std::string>& output_names) const;

  Model model_;
  SessionOptions options_;
  int num_threads_ = 1;
  mutable std::once_flag pool_once_;
  mutable std::unique_ptr<ThreadPool> pool_;
  std::vector<std::string> provider_names_;
  std::vector<ValueInfo> inputs_, outputs_, overridable_;

  std::map<std::string, int> ids_;
  std::vector<std::string> names_;
  std::vector<const Tensor*> constants_;  // per value id: initializer or nullptr
  std::vector<char> deferred_;            // per value id: a Model::deferred constant
  std::vector<int> last_use_;             // per value id: last step reading it (INT_MAX: output)
  std::vector<bool> pinned_;              // per value id: must not live in the arena
  std::vector<Step> steps_;
  std::vector<int> graph_output_ids_;
  std::vector<int> graph_input_ids_;      // per model_.graph.inputs entry: its value id
  std::vector<InferredType> types_;       // per value id: static inference
  std::vector<NodePlacement> placement_;  // per step
  std::vector<ValueCopy> copies_;
  std::unique_ptr<DeviceExecutor> device_;  // set when a device provider takes nodes
  std::map<std::string, std::string> device_options_;
  bool strict_inference_ = false;         // RUNNX_CHECK_INFERENCE=1: a mismatch raises

  mutable std::shared_mutex plans_mu_;
  std::map<std::vector<int64_t>, std::shared_ptr<MemoryPlan>> plans_;  // by input-shape signature
  IdleList<RunState> idle_run_states_;
  std::shared_ptr<OutputBuffers> output_buffers_ = std::make_shared<OutputBuffers>();
  mutable SessionStats stats_;
  std::vector<PassFired> passes_fired_;

  std::mutex profile_mu_;
  std::vector<ProfileEvent> profile_;
};

}  // namespace runnx
