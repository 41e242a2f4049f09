// Removes nodes none of whose outputs is read (by a node, a subgraph or as a graph output), and
// then whatever only they read, plus initializers nothing reads (their bytes are released).
#include <string_view>
#include <unordered_set>

#include "passes/graph_index.h"
#include "passes/pass.h"

namespace runnx {

namespace {

// A first look that costs little (the pass runs on every creation and mostly finds nothing): a
// node none of whose outputs is read, or an unread initializer. A graph with subgraphs (which may
// read outer values) always gets the full pass.
bool may_remove(const Graph& g) {
  std::unordered_set<std::string_view> read;
  for (const Node& n : g.nodes) {
    for (const Attribute& a : n.attrs)
      if (a.g || !a.graphs.empty()) return true;
    for (const std::string& i : n.inputs)
      if (!i.empty()) read.insert(i);
  }
  for (const ValueInfo& o : g.outputs) read.insert(o.name);
  for (const Node& n : g.nodes) {
    bool unread = true;
    for (const std::string& o : n.outputs) unread &= o.empty() || !read.count(o);
    if (unread) return true;
  }
  std::unordered_set<std::string_view> inputs;
  for (const ValueInfo& vi : g.inputs) inputs.insert(vi.name);
  for (const auto& init : g.initializers)
    if (!read.count(init.first) && !inputs.count(init.first)) return true;
  return false;
}

}  // namespace

int pass_dead_node_elimination(Model& model) {
  Graph& g = model.graph;
  if (!may_remove(g)) return 0;
  GraphIndex idx(g);
  std::map<std::string, int> uses;
  auto unused = [&](int k) {
    for (const std::string& o : g.nodes[k].outputs)
      if (!o.empty() && uses[o] > 0) return false;
    return true;
  };
  for (const Node& n : g.nodes)
    for (const std::string& o : n.outputs)
      if (!o.empty()) uses[o] = idx.uses(o);
  std::vector<bool> dead(g.nodes.size(), false);
  std::vector<int> work;
  for (int k = 0; k < static_cast<int>(g.nodes.size()); ++k)
    if (unused(k)) work.push_back(k);
  int removed = 0;
  while (!work.empty()) {
    int k = work.back();
    work.pop_back();
    if (dead[k]) continue;
    dead[k] = true;
    ++removed;
    for (const std::string& i : g.nodes[k].inputs) {
      int p = i.empty() ? -1 : idx.producer(i);
      if (p < 0) continue;
      --uses[i];
      if (!dead[p] && unused(p)) work.push_back(p);
    }
  }
  if (removed) erase_nodes(g, dead);
  // Unread initializers (not graph inputs: a feed may name those) are not counted as rewrites.
  GraphIndex after(g);
  std::vector<std::pair<std::string, Tensor>> kept;
  for (auto& init : g.initializers)
    if (after.uses(init.first) > 0 || after.is_graph_input(init.first)) kept.push_back(std::move(init));
  g.initializers = std::move(kept);
  return removed;
}

}  // namespace runnx
