// Removes nodes none of whose outputs is read (by a node, a subgraph or as a graph output), and
// then whatever only they read, plus initializers nothing reads (their bytes are released).
#include <string_view>
#include <unordered_set>

#include "passes/graph_index.h"
#include "passes/pass.h"

namespace runnx {

namespace {

// A first look that costs little (the pass runs on every creation and mostly finds nothing):
// `nodes` when a node none of whose outputs is read may go (a graph with subgraphs, which may
// read outer values, always gets the full pass), `initializers` when one nothing reads may.
// `read` gets the names nodes and graph outputs read (viewed in place).
struct FirstLook {
  bool nodes = false, initializers = false;
};
FirstLook first_look(const Graph& g, std::unordered_set<std::string_view>& read) {
  FirstLook look;
  for (const Node& n : g.nodes) {
    for (const Attribute& a : n.attrs)
      if (a.g || !a.graphs.empty()) look.nodes = true;
    for (const std::string& i : n.inputs)
      if (!i.empty()) read.insert(i);
  }
  if (look.nodes) return look;
  for (const ValueInfo& o : g.outputs) read.insert(o.name);
  for (const Node& n : g.nodes) {
    bool unread = true;
    for (const std::string& o : n.outputs) unread &= o.empty() || !read.count(o);
    if (unread) {
      look.nodes = true;
      return look;
    }
  }
  std::unordered_set<std::string_view> inputs;
  for (const ValueInfo& vi : g.inputs) inputs.insert(vi.name);
  for (const auto& init : g.initializers)
    look.initializers |= !read.count(init.first) && !inputs.count(init.first);
  return look;
}

// Drops the initializers nothing reads (not graph inputs: a feed may name those).
template <typename IsRead>
void drop_unread_initializers(Graph& g, const IsRead& is_read) {
  std::vector<std::pair<std::string, Tensor>> kept;
  kept.reserve(g.initializers.size());
  for (auto& init : g.initializers)
    if (is_read(init.first)) kept.push_back(std::move(init));
  g.initializers = std::move(kept);
}

}  // namespace

int pass_dead_node_elimination(Model& model) {
  Graph& g = model.graph;
  std::unordered_set<std::string_view> read;
  const FirstLook look = first_look(g, read);
  if (!look.nodes) {
    // No node to remove: unread initializers (folded weights' originals) go by the first look's
    // names, without indexing the graph.
    if (look.initializers) {
      std::unordered_set<std::string> inputs;
      for (const ValueInfo& vi : g.inputs) inputs.insert(vi.name);
      drop_unread_initializers(g, [&](const std::string& name) { return read.count(name) || inputs.count(name); });
    }
    return 0;
  }
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
  // Unread initializers are not counted as rewrites.
  GraphIndex after(g);
  drop_unread_initializers(g, [&](const std::string& name) { return after.uses(name) > 0 || after.is_graph_input(name); });
  return removed;
}

}  // namespace runnx
