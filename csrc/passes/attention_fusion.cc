// Scaled dot-product attention written out as exporters do, into one com.runnx
// ScaledDotProductAttention (its kernel never holds the full score matrix):
//   S = MatMul(Q, KT); S = Div(S, c) | Mul(S, c); [S = Add(S, mask)]; P = Softmax(S, axis=-1);
//   Y = MatMul(P, V)
// The scale constant must be a float32 scalar (it fixes the element type); every intermediate
// value must be read only by the next node. Heads split/merge (Reshape/Transpose) stay outside.
#include "passes/graph_index.h"
#include "passes/pass.h"

namespace runnx {

namespace {

bool is_op(const Graph& g, int k, const char* op) { return k >= 0 && is_onnx_op(g.nodes[k], op); }

bool softmax_last_axis(const Node& n, int64_t opset) {
  if (!is_onnx_op(n, "Softmax")) return false;
  // Before opset 13 the default axis is 1 (with 2-D coercion): only an explicit -1 is the last axis.
  if (!n.has_attr("axis")) return opset >= 13;
  return n.get_int("axis", -1) == -1;
}

}  // namespace

int pass_attention_fusion(Model& model) {
  Graph& g = model.graph;
  GraphIndex idx(g);
  FreshNames fresh(idx);
  const int64_t opset = model.opset("");
  std::vector<bool> dead(g.nodes.size(), false);
  std::vector<Node> added;
  for (int k = 0; k < static_cast<int>(g.nodes.size()); ++k) {
    const Node& sm = g.nodes[k];
    if (dead[k] || !softmax_last_axis(sm, opset) || sm.inputs.empty() || sm.outputs.size() != 1) continue;
    // Softmax -> MatMul(P, V)
    const int pv = sole_consumer(idx, sm.outputs[0]);
    if (!is_op(g, pv, "MatMul") || g.nodes[pv].inputs[0] != sm.outputs[0]) continue;
    std::vector<int> chain{k, pv};
    std::string s = sm.inputs[0], mask;
    int p = idx.producer(s), reader = k;
    if (is_op(g, p, "Add") && idx.only_read_by(s, k)) {
      // Which operand is the scaled scores: the one a Div/Mul/MatMul made and only this Add reads.
      const Node& add = g.nodes[p];
      int side = -1;
      for (int q = 0; q < 2 && add.inputs.size() == 2; ++q) {
        const int pp = idx.producer(add.inputs[q]);
        if ((is_op(g, pp, "Div") || is_op(g, pp, "Mul")) && idx.only_read_by(add.inputs[q], p)) side = q;
      }
      if (side < 0) continue;
      mask = add.inputs[1 - side];
      chain.push_back(p);
      reader = p;
      s = add.inputs[side];
      p = idx.producer(s);
    }
    // The scale.
    if (!(is_op(g, p, "Div") || is_op(g, p, "Mul")) || !idx.only_read_by(s, reader) ||
        g.nodes[p].inputs.size() != 2)
      continue;
    const Node& sc = g.nodes[p];
    const bool div = is_onnx_op(sc, "Div");
    int scores_side = -1;
    double c = 0;
    for (int q = 0; q < 2; ++q)
      if (scalar_constant(idx, sc.inputs[1 - q], c) && constant_dtype(idx, sc.inputs[1 - q]) == DType::kF32 &&
          (!div || q == 0))
        scores_side = q;
    if (scores_side < 0 || (div && c == 0)) continue;
    chain.push_back(p);
    const std::string scores = sc.inputs[scores_side];
    const int qk = idx.producer(scores);
    if (!is_op(g, qk, "MatMul") || !idx.only_read_by(scores, p)) continue;
    chain.push_back(qk);
    bool overlap = false;
    for (int n : chain) overlap |= dead[n];
    if (overlap) continue;
    for (int n : chain) dead[n] = true;
    Node att;
    att.op_type = "ScaledDotProductAttention";
    att.domain = kRunnxDomain;
    att.name = fresh("Attention_fused");
    att.inputs = {g.nodes[qk].inputs[0], g.nodes[qk].inputs[1], g.nodes[pv].inputs[1]};
    if (!mask.empty()) att.inputs.push_back(mask);
    att.outputs = {g.nodes[pv].outputs[0]};
    att.attrs = {float_attr("scale", static_cast<float>(div ? 1.0 / c : c))};
    added.push_back(std::move(att));
  }
  return replace_with_fused(model, dead, std::move(added), /*runnx_domain=*/true);
}

}  // namespace runnx
