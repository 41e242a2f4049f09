// A loaded model ready to run: validated graph, one kernel per node, a thread pool, and memory
// plans cached per input-shape signature. run() is safe to call from many threads at once.
#pragma once
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <vector>

#include "common/thread_pool.h"
#include "infer/infer.h"
#include "ir/graph.h"
#include "ops/kernel.h"
#include "passes/pass.h"
#include "runtime/plan.h"
#include "runtime/provider.h"

namespace runnx {

struct SessionOptions {
  int intra_op_num_threads = 0;       // 0: the cores this process may use
  int graph_optimization_level = 99;  // onnxruntime's levels: 0 off, 1 basic, 2 extended, 99 all
  bool enable_mem_pattern = true;     // arena plans per shape signature
  bool enable_profiling = false;
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

  // Runs the graph. Outputs come back in the order of `output_names` (all graph outputs if empty).
  std::vector<Tensor> run(const std::vector<std::string>& feed_names, const std::vector<Tensor>& feeds,
                          const std::vector<std::string>& output_names);

  SessionStats stats() const;
  // Statically inferred dtype and shape of every value (graph inputs, initializers, node
  // outputs), by name, in topological order of definition.
  std::vector<std::pair<std::string, InferredType>> inferred_types() const;
  // Graph passes that rewrote the model at load, with how many times each fired.
  const std::vector<PassFired>& passes_fired() const { return passes_fired_; }
  // The executed nodes in order, each with its kernel's description of the path it chose.
  std::vector<std::pair<const Node*, std::string>> kernel_choices() const {
    std::vector<std::pair<const Node*, std::string>> out;
    for (const Step& st : steps_) out.emplace_back(st.node, st.kernel->describe());
    return out;
  }
  std::vector<ProfileEvent> take_profile();
  int num_threads() const { return pool_->num_threads(); }

 private:
  struct Step {
    const Node* node;
    std::unique_ptr<Kernel> kernel;
    std::vector<int> inputs, outputs;  // value ids, -1 for omitted
  };
  struct RunState;

  void build(const SessionOptions& options);
  int value_id(const std::string& name) const;
  void check_feed(const ValueInfo& info, const Tensor& t) const;
  std::shared_ptr<MemoryPlan> find_plan(const std::string& key) const;
  void execute(RunState& rs);
  void note_inference_mismatch(const std::string& msg) const;

  Model model_;
  SessionOptions options_;
  std::unique_ptr<ThreadPool> pool_;
  std::vector<std::string> provider_names_;
  std::vector<ValueInfo> inputs_, outputs_, overridable_;

  std::map<std::string, int> ids_;
  std::vector<std::string> names_;
  std::vector<const Tensor*> constants_;  // per value id: initializer or nullptr
  std::vector<int> last_use_;             // per value id: last step reading it (INT_MAX: output)
  std::vector<bool> pinned_;              // per value id: must not live in the arena
  std::vector<Step> steps_;
  std::vector<int> graph_output_ids_;
  std::vector<InferredType> types_;       // per value id: static inference
  bool strict_inference_ = false;         // RUNNX_CHECK_INFERENCE=1: a mismatch raises

  mutable std::shared_mutex plans_mu_;
  std::map<std::string, std::shared_ptr<MemoryPlan>> plans_;
  mutable SessionStats stats_;
  std::vector<PassFired> passes_fired_;

  std::mutex profile_mu_;
  std::vector<ProfileEvent> profile_;
};

}  // namespace runnx
