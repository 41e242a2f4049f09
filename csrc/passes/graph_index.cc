#include "passes/graph_index.h"

#include <cmath>

#include "common/half.h"
#include "passes/pass.h"

namespace runnx {

namespace {

// Every value a subgraph (If/Loop/Scan body) reads, recursively: it may capture outer values.
void collect_subgraph_reads(const Graph& g, std::unordered_map<std::string, int>& reads) {
  for (const Node& n : g.nodes) {
    for (const std::string& i : n.inputs)
      if (!i.empty()) reads[i]++;
    for (const Attribute& a : n.attrs) {
      if (a.g) collect_subgraph_reads(*a.g, reads);
      for (const auto& sg : a.graphs)
        if (sg) collect_subgraph_reads(*sg, reads);
    }
  }
  for (const ValueInfo& o : g.outputs) reads[o.name]++;
}

const std::vector<int> kNoConsumers;

}  // namespace

GraphIndex::GraphIndex(const Graph& g) : graph_(g) {
  producer_.reserve(g.nodes.size() * 2);
  consumers_.reserve(g.nodes.size() * 2);
  constants_.reserve(g.initializers.size());
  for (const ValueInfo& vi : g.inputs) inputs_.insert(vi.name);
  for (const ValueInfo& vi : g.outputs) outputs_.insert(vi.name);
  for (const auto& [name, t] : g.initializers)
    if (!inputs_.count(name)) constants_.emplace(name, &t);
  for (int k = 0; k < static_cast<int>(g.nodes.size()); ++k) {
    const Node& n = g.nodes[k];
    for (const std::string& o : n.outputs)
      if (!o.empty()) producer_.emplace(o, k);
    for (const std::string& i : n.inputs)
      if (!i.empty()) consumers_[i].push_back(k);
    for (const Attribute& a : n.attrs) {
      if (a.g) collect_subgraph_reads(*a.g, subgraph_uses_);
      for (const auto& sg : a.graphs)
        if (sg) collect_subgraph_reads(*sg, subgraph_uses_);
    }
  }
}

bool GraphIndex::has_name(const std::string& name) const {
  if (producer_.count(name) || consumers_.count(name) || constants_.count(name) || inputs_.count(name) ||
      outputs_.count(name))
    return true;
  if (!node_names_ready_) {
    node_names_ready_ = true;
    node_names_.reserve(graph_.nodes.size());
    for (const Node& n : graph_.nodes)
      if (!n.name.empty()) node_names_.insert(n.name);
  }
  return node_names_.count(name) > 0;
}

std::string FreshNames::operator()(const std::string& base) {
  std::string name = base;
  for (int k = 1; idx_.has_name(name) || added_.count(name); ++k) name = base + "_" + std::to_string(k);
  added_.insert(name);
  return name;
}

int GraphIndex::producer(const std::string& value) const {
  auto it = producer_.find(value);
  return it == producer_.end() ? -1 : it->second;
}

const std::vector<int>& GraphIndex::consumers(const std::string& value) const {
  auto it = consumers_.find(value);
  return it == consumers_.end() ? kNoConsumers : it->second;
}

int GraphIndex::uses(const std::string& value) const {
  int n = static_cast<int>(consumers(value).size());
  if (outputs_.count(value)) ++n;
  if (subgraph_uses_.count(value)) ++n;
  return n;
}

const Tensor* GraphIndex::constant(const std::string& value) const {
  auto it = constants_.find(value);
  return it == constants_.end() ? nullptr : it->second;
}

bool GraphIndex::only_read_by(const std::string& value, int reader) const {
  if (outputs_.count(value) || subgraph_uses_.count(value)) return false;
  const std::vector<int>& c = consumers(value);
  if (c.empty()) return false;
  for (int k : c)
    if (k != reader) return false;
  return true;
}

void erase_nodes(Graph& g, const std::vector<bool>& dead) {
  std::vector<Node> kept;
  kept.reserve(g.nodes.size());
  for (size_t k = 0; k < g.nodes.size(); ++k)
    if (!dead[k]) kept.push_back(std::move(g.nodes[k]));
  g.nodes = std::move(kept);
}

void rename_inputs(Graph& g, const std::map<std::string, std::string>& rename) {
  if (rename.empty()) return;
  auto resolve = [&](std::string v) {
    for (int hops = 0; hops < 1000; ++hops) {  // bounded: a rename cycle would be a pass bug
      auto it = rename.find(v);
      if (it == rename.end()) break;
      v = it->second;
    }
    return v;
  };
  for (Node& n : g.nodes)
    for (std::string& i : n.inputs)
      if (!i.empty()) i = resolve(i);
}

int replace_with_fused(Model& model, const std::vector<bool>& dead, std::vector<Node> added, bool runnx_domain) {
  if (added.empty()) return 0;
  erase_nodes(model.graph, dead);
  for (Node& n : added) model.graph.nodes.push_back(std::move(n));
  if (runnx_domain) ensure_runnx_domain(model);
  return static_cast<int>(added.size());
}

Attribute int_attr(const std::string& name, int64_t v) {
  Attribute a;
  a.name = name;
  a.type = Attribute::Type::kInt;
  a.i = v;
  return a;
}

Attribute float_attr(const std::string& name, float v) {
  Attribute a;
  a.name = name;
  a.type = Attribute::Type::kFloat;
  a.f = v;
  return a;
}

Attribute string_attr(const std::string& name, const std::string& v) {
  Attribute a;
  a.name = name;
  a.type = Attribute::Type::kString;
  a.s = v;
  return a;
}

Attribute floats_attr(const std::string& name, std::vector<float> v) {
  Attribute a;
  a.name = name;
  a.type = Attribute::Type::kFloats;
  a.floats = std::move(v);
  return a;
}

void ensure_runnx_domain(Model& model) {
  for (const OpsetImport& o : model.opsets)
    if (o.domain == kRunnxDomain) return;
  model.opsets.push_back({kRunnxDomain, 1});
}

bool is_onnx_op(const Node& n, const char* op_type) {
  return n.op_type == op_type && (n.domain.empty() || n.domain == "ai.onnx");
}

bool scalar_constant(const GraphIndex& idx, const std::string& value, double& out) {
  const Tensor* t = idx.constant(value);
  if (!t || t->numel() != 1) return false;
  switch (t->dtype) {
    case DType::kF32: out = *t->ptr<float>(); return true;
    case DType::kF64: out = *t->ptr<double>(); return true;
    case DType::kF16: out = half_to_float(*t->ptr<uint16_t>()); return true;
    default: return false;
  }
}

bool scalar_near(const GraphIndex& idx, const std::string& value, double expected) {
  double v;
  return scalar_constant(idx, value, v) && std::fabs(v - expected) <= 1e-4 * std::fabs(expected);
}

std::string other_input(const Node& n, const std::string& value) {
  if (n.inputs.size() != 2) return "";
  if (n.inputs[0] == value && n.inputs[1] != value) return n.inputs[1];
  if (n.inputs[1] == value && n.inputs[0] != value) return n.inputs[0];
  return "";
}

int sole_consumer(const GraphIndex& idx, const std::string& value) {
  const std::vector<int>& c = idx.consumers(value);
  if (c.size() != 1 || idx.uses(value) != 1) return -1;
  return c[0];
}

DType constant_dtype(const GraphIndex& idx, const std::string& value) {
  const Tensor* t = idx.constant(value);
  return t ? t->dtype : DType::kUndefined;
}

}  // namespace runnx
