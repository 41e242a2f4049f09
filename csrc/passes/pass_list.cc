#include <algorithm>
#include <map>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "passes/pass.h"
#include "ir/load_profile.h"

namespace runnx {

#define RUNNX_GRAPH_PASS(name, level, triggers) int pass_##name(Model& model);
#define RUNNX_CPU_GRAPH_PASS(name, level, triggers) int pass_##name(Model& model);
#include "passes/passes.inc"
#undef RUNNX_GRAPH_PASS
#undef RUNNX_CPU_GRAPH_PASS

const std::vector<GraphPass>& graph_passes() {
  static const std::vector<GraphPass> passes = {
#define RUNNX_GRAPH_PASS(name, level, triggers) {#name, level, &pass_##name, false, triggers},
#define RUNNX_CPU_GRAPH_PASS(name, level, triggers) {#name, level, &pass_##name, true, triggers},
#include "passes/passes.inc"
#undef RUNNX_GRAPH_PASS
#undef RUNNX_CPU_GRAPH_PASS
  };
  return passes;
}

namespace {

// Passes assume what validation will later check: each value defined once, every input defined,
// no cycle. On a graph that breaks this they do nothing, so the error names the model as written.
// Read-only: names are viewed in place, hashed (it runs on every creation).
bool well_formed(const Graph& g) {
  std::unordered_set<std::string_view> defined;
  for (const ValueInfo& vi : g.inputs)
    if (!defined.insert(vi.name).second) return false;
  for (const auto& [name, t] : g.initializers)
    if (!defined.insert(name).second && !std::any_of(g.inputs.begin(), g.inputs.end(),
                                                     [&](const ValueInfo& v) { return v.name == name; }))
      return false;
  std::unordered_map<std::string_view, int> producer;
  for (int k = 0; k < static_cast<int>(g.nodes.size()); ++k)
    for (const std::string& o : g.nodes[k].outputs)
      if (!o.empty() && (defined.count(o) || !producer.emplace(o, k).second)) return false;
  // Kahn's algorithm over node indices; also checks that every input is defined.
  std::vector<int> pending(g.nodes.size(), 0);
  std::unordered_map<std::string_view, std::vector<int>> readers;
  for (int k = 0; k < static_cast<int>(g.nodes.size()); ++k)
    for (const std::string& i : g.nodes[k].inputs) {
      if (i.empty()) continue;
      if (producer.count(i)) {
        pending[k]++;
        readers[i].push_back(k);
      } else if (!defined.count(i)) {
        return false;
      }
    }
  std::vector<int> ready;
  for (int k = 0; k < static_cast<int>(g.nodes.size()); ++k)
    if (pending[k] == 0) ready.push_back(k);
  for (size_t r = 0; r < ready.size(); ++r)
    for (const std::string& o : g.nodes[ready[r]].outputs) {
      auto it = o.empty() ? readers.end() : readers.find(o);
      if (it == readers.end()) continue;
      for (int c : it->second)
        if (--pending[c] == 0) ready.push_back(c);
    }
  if (ready.size() != g.nodes.size()) return false;
  for (const ValueInfo& o : g.outputs)
    if (!defined.count(o.name) && !producer.count(o.name)) return false;
  return true;
}

// True when the graph holds a node of one of `triggers`' op types (or `triggers` is empty).
bool has_trigger(const std::unordered_set<std::string>& op_types, std::string_view triggers) {
  if (triggers.empty()) return true;
  while (!triggers.empty()) {
    const size_t end = std::min(triggers.find(' '), triggers.size());
    if (end > 0 && op_types.count(std::string(triggers.substr(0, end)))) return true;
    triggers.remove_prefix(std::min(end + 1, triggers.size()));
  }
  return false;
}

}  // namespace

std::vector<PassFired> run_graph_passes(Model& model, int level, bool device_asked) {
  std::vector<PassFired> fired;
  if (level <= 0) return fired;
  {
    LoadPhase phase("passes: well-formed check");
    if (!well_formed(model.graph)) return fired;
  }
  std::map<std::string, int> counts, first_round;
  // A pass that found nothing is not run again until another pass has changed the graph (passes
  // are functions of the graph alone): a later round runs only what an edit may have fed.
  const std::vector<GraphPass>& passes = graph_passes();
  std::vector<int> idle_since(passes.size(), -1);  // the edit count when it last found nothing
  int edits = 0;
  // The op types the graph holds as of edit count `types_at` (rebuilt after every edit, before
  // the next pass looks: a fusion's new op may trigger a later pass of the same round).
  std::unordered_set<std::string> op_types;
  int types_at = -1;
  constexpr int kMaxRounds = 4;  // a fusion can expose another; more rounds never helped
  for (int round = 0; round < kMaxRounds; ++round) {
    bool changed = false;
    for (size_t i = 0; i < passes.size(); ++i) {
      const GraphPass& p = passes[i];
      if (p.min_level > level || (p.cpu_only && device_asked) || idle_since[i] == edits) continue;
      if (types_at != edits) {
        op_types.clear();
        for (const Node& node : model.graph.nodes) op_types.insert(node.op_type);
        types_at = edits;
      }
      if (!has_trigger(op_types, p.triggers)) {
        idle_since[i] = edits;  // as if it ran and found nothing
        continue;
      }
      int n;
      {
        const std::string name = p.name;
        LoadPhase phase("pass ", &name);
        n = p.run(model);
      }
      if (n > 0) {
        if (!counts.count(p.name)) first_round[p.name] = round;
        counts[p.name] += n;
        changed = true;
        ++edits;
      } else {
        idle_since[i] = edits;
      }
    }
    if (!changed) break;
  }
  for (const GraphPass& p : graph_passes())
    if (counts.count(p.name)) fired.push_back({p.name, counts[p.name], first_round[p.name]});
  return fired;
}

}  // namespace runnx
