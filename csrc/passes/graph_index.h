// A read-only index of a graph for pattern matching (who produces a value, who reads it, which
// values are constants or graph outputs) plus the small edits every pass needs. Build it, match,
// record the edits, then apply them; rebuild the index before matching again.
#pragma once
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ir/graph.h"

namespace runnx {

class GraphIndex {
 public:
  explicit GraphIndex(const Graph& g);

  // Index of the node producing `value`, or -1 (graph input, initializer, undefined).
  int producer(const std::string& value) const;
  // Nodes reading `value` (a node reading it twice appears twice).
  const std::vector<int>& consumers(const std::string& value) const;
  // Reads by nodes, plus one for a graph output and one for a use inside a subgraph.
  int uses(const std::string& value) const;
  bool is_graph_output(const std::string& value) const { return outputs_.count(value) > 0; }
  bool is_graph_input(const std::string& value) const { return inputs_.count(value) > 0; }
  // An initializer no feed can replace, or nullptr.
  const Tensor* constant(const std::string& value) const;
  // True when only node `reader` reads `value` and it is not a graph output: the value may vanish
  // when that node is fused away.
  bool only_read_by(const std::string& value, int reader) const;

  // True when the graph, as indexed, names a value or a node `name` (node names gathered on the
  // first call: most passes match nothing and never ask; the value tables are the index's own
  // copies).
  bool has_name(const std::string& name) const;

 private:
  // Hashed: every pass builds an index, most find nothing, so building it is the pass's cost.
  const Graph& graph_;
  std::unordered_map<std::string, int> producer_;
  std::unordered_map<std::string, std::vector<int>> consumers_;
  std::unordered_map<std::string, int> subgraph_uses_;
  std::unordered_set<std::string> outputs_, inputs_;
  mutable std::unordered_set<std::string> node_names_;
  mutable bool node_names_ready_ = false;
  std::unordered_map<std::string, const Tensor*> constants_;
};

// Names for the values and nodes a pass adds: base, base_1, base_2, ..., the first that neither
// the indexed graph (GraphIndex::has_name: looked up, not copied) nor this object has handed out.
class FreshNames {
 public:
  explicit FreshNames(const GraphIndex& idx) : idx_(idx) {}
  std::string operator()(const std::string& base);

 private:
  const GraphIndex& idx_;
  std::unordered_set<std::string> added_;
};

// Drops the nodes flagged in `dead` (same length as g.nodes), keeping the others in order.
void erase_nodes(Graph& g, const std::vector<bool>& dead);
// Rewrites node inputs (not graph outputs) through `rename`, following chains a->b->c.
void rename_inputs(Graph& g, const std::map<std::string, std::string>& rename);
// Attributes for the nodes a pass creates.
Attribute int_attr(const std::string& name, int64_t v);
Attribute float_attr(const std::string& name, float v);
Attribute string_attr(const std::string& name, const std::string& v);
Attribute floats_attr(const std::string& name, std::vector<float> v);
// Imports com.runnx (version 1) if the model does not yet.
void ensure_runnx_domain(Model& model);
// The end of a fusion pass: drops the `dead` nodes, appends the fused ones (a topological order
// is not needed: the session sorts), imports com.runnx when asked; returns how many were added.
int replace_with_fused(Model& model, const std::vector<bool>& dead, std::vector<Node> added, bool runnx_domain);
// True for ai.onnx ("" or "ai.onnx") nodes of the given type.
bool is_onnx_op(const Node& n, const char* op_type);
// A float scalar constant (any rank, one element, f32/f64/f16) read into `out`.
bool scalar_constant(const GraphIndex& idx, const std::string& value, double& out);
// True when `value` is such a scalar within a relative 1e-4 of `expected`.
bool scalar_near(const GraphIndex& idx, const std::string& value, double expected);
// The other input of a two-input node one of whose inputs is `value` ("" if neither or both are).
std::string other_input(const Node& n, const std::string& value);
// The single node reading `value` when exactly one node reads it once and it is no graph output
// (its value may then disappear into a fusion); -1 otherwise.
int sole_consumer(const GraphIndex& idx, const std::string& value);
// The element type of a value when a constant fixes it, else kUndefined.
DType constant_dtype(const GraphIndex& idx, const std::string& value);

}  // namespace runnx
