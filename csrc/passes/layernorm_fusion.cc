// LayerNorm written out as exporters do, into one ai.onnx LayerNormalization (opset >= 17):
//   m = ReduceMean(x, axes=[-1]); d = x - m; v = ReduceMean(d^2, axes=[-1]);
//   y = d / Sqrt(v + eps) * gamma + beta
// with Pow(d, 2) or Mul(d, d), gamma and beta 1-D float32 constants of one length, either
// operand order for the commutative ops. Both reductions must be over the last axis only
// (attribute axes, or the axes input of opset 18) with keepdims = 1.
#include "passes/graph_index.h"
#include "passes/pass.h"

namespace runnx {

namespace {

bool is_op(const Graph& g, int k, const char* op) { return k >= 0 && is_onnx_op(g.nodes[k], op); }

// ReduceMean over the last axis only, keeping dims.
bool mean_over_last_axis(const Node& n, const GraphIndex& idx) {
  if (!is_onnx_op(n, "ReduceMean") || n.get_int("keepdims", 1) != 1) return false;
  std::vector<int64_t> axes;
  if (n.has_attr("axes")) {
    axes = n.get_ints("axes");
  } else if (n.inputs.size() > 1 && !n.inputs[1].empty()) {
    const Tensor* t = idx.constant(n.inputs[1]);
    if (!t || (t->dtype != DType::kI64 && t->dtype != DType::kI32)) return false;
    axes = tensor_to_i64(*t);
  }
  return axes.size() == 1 && axes[0] == -1;
}

const Tensor* vector_constant(const GraphIndex& idx, const std::string& v) {
  const Tensor* t = idx.constant(v);
  // float16 too: a model converted for the GPU keeps its LayerNorm parameters in float16.
  return t && (t->dtype == DType::kF32 || t->dtype == DType::kF16) && t->rank() == 1 ? t : nullptr;
}

}  // namespace

int pass_layernorm_fusion(Model& model) {
  if (model.opset("") < 17) return 0;
  Graph& g = model.graph;
  GraphIndex idx(g);
  FreshNames fresh(idx);
  std::vector<bool> dead(g.nodes.size(), false);
  std::vector<Node> added;
  for (int k = 0; k < static_cast<int>(g.nodes.size()); ++k) {
    if (!mean_over_last_axis(g.nodes[k], idx) || dead[k]) continue;
    const std::string x = g.nodes[k].inputs[0], m = g.nodes[k].outputs[0];
    // d = x - m, read by the square and the division only.
    const int sub = sole_consumer(idx, m);
    if (!is_op(g, sub, "Sub") || g.nodes[sub].inputs.size() != 2 || g.nodes[sub].inputs[0] != x ||
        g.nodes[sub].inputs[1] != m)
      continue;
    const std::string d = g.nodes[sub].outputs[0];
    const std::vector<int>& readers = idx.consumers(d);
    if (idx.is_graph_output(d) || readers.size() < 2 || readers.size() > 3) continue;
    int sq = -1, div = -1;
    for (int r : readers) {
      const Node& n = g.nodes[r];
      if (is_onnx_op(n, "Pow") && n.inputs[0] == d && n.inputs.size() == 2 && scalar_near(idx, n.inputs[1], 2.0))
        sq = r;
      else if (is_onnx_op(n, "Mul") && n.inputs.size() == 2 && n.inputs[0] == d && n.inputs[1] == d)
        sq = r;
      else if (is_onnx_op(n, "Div") && n.inputs.size() == 2 && n.inputs[0] == d)
        div = r;
    }
    // Mul(d, d) reads d twice: three reads in all; Pow: two.
    const size_t expected_reads = is_op(g, sq, "Mul") ? 3 : 2;
    if (sq < 0 || div < 0 || readers.size() != expected_reads) continue;
    const int var = sole_consumer(idx, g.nodes[sq].outputs[0]);
    if (var < 0 || !mean_over_last_axis(g.nodes[var], idx)) continue;
    const std::string v = g.nodes[var].outputs[0];
    const int add_eps = sole_consumer(idx, v);
    if (!is_op(g, add_eps, "Add")) continue;
    double eps;
    const std::string eps_name = other_input(g.nodes[add_eps], v);
    if (eps_name.empty() || !scalar_constant(idx, eps_name, eps) || eps < 0) continue;
    const int sqrt = sole_consumer(idx, g.nodes[add_eps].outputs[0]);
    if (!is_op(g, sqrt, "Sqrt") || g.nodes[div].inputs[1] != g.nodes[sqrt].outputs[0] ||
        !idx.only_read_by(g.nodes[sqrt].outputs[0], div))
      continue;
    const std::string normed = g.nodes[div].outputs[0];
    const int mul = sole_consumer(idx, normed);
    if (!is_op(g, mul, "Mul")) continue;
    const std::string gamma = other_input(g.nodes[mul], normed);
    const int add = sole_consumer(idx, g.nodes[mul].outputs[0]);
    if (gamma.empty() || !is_op(g, add, "Add")) continue;
    const std::string beta = other_input(g.nodes[add], g.nodes[mul].outputs[0]);
    const Tensor* gt = vector_constant(idx, gamma);
    const Tensor* bt = beta.empty() ? nullptr : vector_constant(idx, beta);
    if (!gt || !bt || gt->numel() != bt->numel() || gt->dtype != bt->dtype) continue;

    const std::vector<int> chain{k, sub, sq, var, add_eps, sqrt, div, mul, add};
    bool overlap = false;
    for (int c : chain) overlap |= dead[c];
    if (overlap) continue;
    for (int c : chain) dead[c] = true;
    Node ln;
    ln.op_type = "LayerNormalization";
    ln.name = fresh("LayerNorm_fused");
    ln.inputs = {x, gamma, beta};
    ln.outputs = {g.nodes[add].outputs[0]};
    ln.attrs = {int_attr("axis", -1), float_attr("epsilon", static_cast<float>(eps))};
    added.push_back(std::move(ln));
  }
  return replace_with_fused(model, dead, std::move(added), /*runnx_domain=*/false);
}

}  // namespace runnx
