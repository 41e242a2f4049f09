// Runs, once at load, every node whose inputs are all constants, with the kernels themselves, and
// turns its outputs into initializers. Shape (and Size) of a value whose shape is fixed at load
// time are constants too, which collapses the Shape -> Gather -> Concat -> Reshape arithmetic
// torch exports around static dimensions.
#include <algorithm>
#include <deque>
#include <memory>
#include <set>
#include <string_view>
#include <unordered_set>

#include "common/thread_pool.h"
#include "onnx/model_reader.h"
#include "ops/kernel.h"
#include "passes/graph_index.h"
#include "passes/pass.h"
#include "passes/static_shapes.h"

namespace runnx {

namespace {

// Ops never folded: random ones, and Q/DQ pairs, which quantised kernels match as a pattern.
bool foldable_op(const Node& n) {
  static const std::set<std::string> kSkip = {
      "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
      "Bernoulli", "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "If", "Loop", "Scan"};
  if (!n.domain.empty() && n.domain != "ai.onnx") return false;
  for (const Attribute& a : n.attrs)
    if (a.g || !a.graphs.empty()) return false;
  return !kSkip.count(n.op_type);
}

// A folded value may not grow the model much (ConstantOfShape, Expand, Tile of tiny inputs):
// those are cheaper to compute per run than to hold.
constexpr size_t kGrowthAllowance = size_t{1} << 20;

// Shape / Size of a value whose shape is fixed: computed here without running anything.
bool fold_shape_of(const Node& n, const StaticShapes& shapes, int64_t opset, Tensor& out) {
  if (n.inputs.empty() || n.outputs.size() != 1) return false;
  const Shape* s = shapes.find(n.inputs[0]);
  if (!s) return false;
  if (is_onnx_op(n, "Size")) {
    out = Tensor::empty(DType::kI64, {});
    *out.ptr<int64_t>() = shape_numel(*s);
    return true;
  }
  if (!is_onnx_op(n, "Shape")) return false;
  int64_t rank = static_cast<int64_t>(s->size());
  int64_t start = opset >= 15 ? n.get_int("start", 0) : 0;
  int64_t end = opset >= 15 ? n.get_int("end", rank) : rank;
  if (start < 0) start += rank;
  if (end < 0) end += rank;
  start = std::clamp<int64_t>(start, 0, rank);
  end = std::clamp<int64_t>(end, start, rank);
  out = Tensor::empty(DType::kI64, {end - start});
  for (int64_t d = start; d < end; ++d) out.ptr<int64_t>()[d - start] = (*s)[d];
  return true;
}

// A first look that costs little (the pass runs on every creation, and most graphs give it
// nothing): a fold starts at a node whose inputs are all constants, or at a Shape or Size.
bool may_fold(const Graph& g) {
  std::unordered_set<std::string_view> constant;
  for (const auto& init : g.initializers) constant.insert(init.first);
  for (const ValueInfo& vi : g.inputs) constant.erase(vi.name);
  for (const Node& n : g.nodes) {
    if (n.op_type == "Shape" || n.op_type == "Size") return true;
    if (n.inputs.empty()) continue;
    bool all_constant = true;
    for (const std::string& i : n.inputs)
      if (!i.empty() && !constant.count(i)) {
        all_constant = false;
        break;
      }
    if (all_constant) return true;
  }
  return false;
}

}  // namespace

int pass_constant_folding(Model& model) {
  Graph& g = model.graph;
  if (!may_fold(g)) return 0;
  GraphIndex idx(g);
  StaticShapes shapes(model);
  std::map<std::string, const Tensor*> known;  // constants, including those folded in this pass
  for (const auto& [name, t] : g.initializers)
    if (idx.constant(name)) known[name] = &t;
  std::deque<std::pair<std::string, Tensor>> folded_values;  // a deque keeps addresses stable
  std::unique_ptr<ThreadPool> pool;
  std::vector<bool> dead(g.nodes.size(), false);
  int fired = 0;

  // Nodes in dependency order, so a fold feeds the next one in the same sweep.
  std::vector<int> order;
  {
    std::map<std::string, int> producer;
    for (int k = 0; k < static_cast<int>(g.nodes.size()); ++k)
      for (const std::string& o : g.nodes[k].outputs)
        if (!o.empty()) producer[o] = k;
    std::vector<int> state(g.nodes.size(), 0);  // 0 new, 1 on the stack, 2 placed
    for (int root = 0; root < static_cast<int>(g.nodes.size()); ++root) {
      std::vector<std::pair<int, size_t>> stack{{root, 0}};
      while (!stack.empty()) {
        auto& [k, next] = stack.back();
        if (state[k] == 2) { stack.pop_back(); continue; }
        state[k] = 1;
        const Node& n = g.nodes[k];
        if (next < n.inputs.size()) {
          auto it = producer.find(n.inputs[next++]);
          if (it != producer.end() && state[it->second] == 0) stack.push_back({it->second, 0});
          continue;
        }
        state[k] = 2;
        order.push_back(k);
        stack.pop_back();
      }
    }
  }

  for (int k : order) {
    const Node& n = g.nodes[k];
    if (!foldable_op(n)) continue;
    int64_t opset = model.opset(n.domain);
    std::vector<Tensor> outs(n.outputs.size());
    Tensor shape_value;
    if (fold_shape_of(n, shapes, opset, shape_value)) {
      outs[0] = std::move(shape_value);
    } else {
      std::vector<const Tensor*> ins;
      bool all_constant = !n.inputs.empty();
      size_t in_bytes = 0;
      for (const std::string& i : n.inputs) {
        if (i.empty()) { ins.push_back(nullptr); continue; }
        auto it = known.find(i);
        if (it == known.end()) { all_constant = false; break; }
        ins.push_back(it->second);
        in_bytes += it->second->nbytes();
      }
      if (!all_constant) continue;
      const OpSchema* schema = OpRegistry::global().find(n.domain, n.op_type, opset);
      if (!schema) continue;
      // Kernels read aligned data; a weight left misaligned in the file (graph_prep) is copied
      // first (the initializer itself, so every later reader gets the copy too).
      for (const std::string& i : n.inputs)
        if (!i.empty()) materialize_constant(model, i, *const_cast<Tensor*>(known[i]));  // a deferred fold
      for (const Tensor* t : ins)
        if (t && is_misaligned(*t)) realign_weight(model, *const_cast<Tensor*>(t));
      if (!pool) pool = std::make_unique<ThreadPool>(1);
      try {
        KernelInfo info{n, opset, [&ins](int i) -> const Tensor* { return i < (int)ins.size() ? ins[i] : nullptr; },
                        1};
        std::unique_ptr<Kernel> kernel = schema->make(info);
        KernelContext ctx(n, ins, outs, *pool,
                          [](int, DType dtype, Shape shape) { return Tensor::empty(dtype, std::move(shape)); });
        kernel->run(ctx);
      } catch (const Error&) {
        continue;  // left to run time, which reports the error with the node's name
      }
      size_t out_bytes = 0;
      bool produced = true;
      for (size_t o = 0; o < outs.size(); ++o) {
        if (n.outputs[o].empty()) continue;
        if (outs[o].dtype == DType::kUndefined) produced = false;
        else out_bytes += outs[o].nbytes();
      }
      if (!produced || out_bytes > std::max(2 * in_bytes, kGrowthAllowance)) continue;
    }
    for (size_t o = 0; o < outs.size(); ++o) {
      if (n.outputs[o].empty()) continue;
      folded_values.emplace_back(n.outputs[o], std::move(outs[o]));
      known[n.outputs[o]] = &folded_values.back().second;
    }
    dead[k] = true;
    ++fired;
  }
  if (!fired) return 0;
  erase_nodes(g, dead);
  for (auto& v : folded_values) g.initializers.push_back(std::move(v));
  return fired;
}

}  // namespace runnx
