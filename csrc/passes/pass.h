// Graph passes: rewrites of the loaded graph run once at session creation, before validation and
// topological sorting. Each pass lives in its own file, is listed in passes.inc with the lowest
// graph_optimization_level at which it runs (onnxruntime's: 1 basic, 2 extended, 99 all), and
// returns how many times it rewrote something. A pass must leave the graph valid: every value
// produced once, graph outputs still produced under their names, no dangling inputs.
#pragma once
#include <string>
#include <vector>

#include "ir/graph.h"

namespace runnx {

// Domain of runnx's own fused ops; a pass that adds one calls ensure_runnx_domain(model).
inline constexpr const char* kRunnxDomain = "com.runnx";

using PassFn = int (*)(Model& model);

struct GraphPass {
  const char* name;
  int min_level;
  PassFn run;
  bool cpu_only;  // makes ops only the CPU runs; skipped when a device provider is asked for
  // Op types (space-separated) every match holds one of; the pass is skipped while the graph has
  // none. "" : always run.
  const char* triggers;
};

// Times a pass rewrote the graph, summed over rounds; only passes that fired are listed.
struct PassFired {
  std::string name;
  int count = 0;
  int first_round = 0;  // the driver's round (from 0) in which it first fired
};

// The passes in the order they run (passes.inc).
const std::vector<GraphPass>& graph_passes();

// Runs every pass whose min_level <= level, in rounds until none fires (at most a few rounds);
// with `device_asked` (a session that may place nodes on a GPU) the CPU-only passes are left out.
// A graph that is not well formed (a value produced twice, an undefined input, a cycle) is left
// alone so validation reports it as written.
std::vector<PassFired> run_graph_passes(Model& model, int level, bool device_asked = false);

}  // namespace runnx
