// MatMul (or Gemm) with a constant float32 2-D B, followed by a bias Add, a residual Add and an
// activation, into one com.runnx FusedGemm whose epilogue does all of it while the output tile
// is in cache:
//   MatMul(A, B) [+ bias] [+ residual] [-> Relu | Clip | Sigmoid | Tanh | com.runnx Gelu]
//   Gemm(A, B, C; alpha = 1, beta = 1 or no C, transA = 0)  [+ residual] [-> activation]
// The bias must be a constant with N elements laid along the last axis (rank 1 for MatMul, whose
// A rank is unknown here). Anything may be the residual (the kernel handles a broadcast one).
// A MatMul with nothing to fuse stays a MatMul (its kernel packs a constant B itself).
#include <limits>

#include "passes/graph_index.h"
#include "passes/pass.h"

namespace runnx {

namespace {

// Clip bounds from attributes (opset < 11) or constant inputs; false if not constant.
bool clip_bounds(const Node& n, const GraphIndex& idx, int64_t opset, float& lo, float& hi) {
  lo = -std::numeric_limits<float>::infinity();
  hi = std::numeric_limits<float>::infinity();
  if (opset < 11) {
    lo = n.get_float("min", lo);
    hi = n.get_float("max", hi);
    return true;
  }
  double v;
  if (n.inputs.size() > 1 && !n.inputs[1].empty()) {
    if (!scalar_constant(idx, n.inputs[1], v)) return false;
    lo = static_cast<float>(v);
  }
  if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
    if (!scalar_constant(idx, n.inputs[2], v)) return false;
    hi = static_cast<float>(v);
  }
  return true;
}

// The activation node k (reading `value` as its only data input) as FusedGemm attributes.
bool activation_of(const Node& n, const GraphIndex& idx, int64_t opset, std::vector<Attribute>& attrs) {
  if (n.inputs.empty()) return false;
  if (is_onnx_op(n, "Relu")) attrs.push_back(string_attr("activation", "Relu"));
  else if (is_onnx_op(n, "Sigmoid")) attrs.push_back(string_attr("activation", "Sigmoid"));
  else if (is_onnx_op(n, "Tanh")) attrs.push_back(string_attr("activation", "Tanh"));
  else if (n.op_type == "Gelu" && n.domain == kRunnxDomain)
    attrs.push_back(string_attr("activation", n.get_string("approximate", "none") == "tanh" ? "GeluTanh" : "Gelu"));
  else if (is_onnx_op(n, "Clip")) {
    float lo, hi;
    if (!clip_bounds(n, idx, opset, lo, hi)) return false;
    attrs.push_back(string_attr("activation", "Clip"));
    attrs.push_back(float_attr("clip_min", lo));
    attrs.push_back(float_attr("clip_max", hi));
  } else {
    return false;
  }
  return true;
}

}  // namespace

int pass_gemm_fusion(Model& model) {
  Graph& g = model.graph;
  GraphIndex idx(g);
  FreshNames fresh(idx);
  const int64_t opset = model.opset("");
  std::vector<bool> dead(g.nodes.size(), false);
  std::vector<Node> added;
  for (int k = 0; k < static_cast<int>(g.nodes.size()); ++k) {
    const Node& n = g.nodes[k];
    const bool matmul = is_onnx_op(n, "MatMul"), gemm = is_onnx_op(n, "Gemm");
    if ((!matmul && !gemm) || n.inputs.size() < 2 || n.outputs.size() != 1 || dead[k]) continue;
    const Tensor* b = idx.constant(n.inputs[1]);
    if (!b || b->dtype != DType::kF32 || b->rank() != 2) continue;
    Node fused;
    fused.op_type = "FusedGemm";
    fused.domain = kRunnxDomain;
    fused.inputs = {n.inputs[0], n.inputs[1], "", ""};
    std::vector<int> chain{k};
    int64_t N = b->shape[1];
    if (gemm) {
      if (n.get_int("transA", 0) != 0 || n.get_float("alpha", 1.f) != 1.f) continue;
      if (n.get_int("transB", 0) != 0) {
        fused.attrs.push_back(int_attr("trans_b", 1));
        N = b->shape[0];
      }
      if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
        const Tensor* c = idx.constant(n.inputs[2]);
        if (!c || c->dtype != DType::kF32 || n.get_float("beta", 1.f) != 1.f || c->numel() != N ||
            c->rank() > 2 || c->rank() == 0 || c->shape.back() != N)
          continue;
        fused.inputs[2] = n.inputs[2];
      }
    }
    std::string out = n.outputs[0];
    // Bias (MatMul only: Gemm has its own C).
    int next = sole_consumer(idx, out);
    if (matmul && next >= 0 && is_onnx_op(g.nodes[next], "Add")) {
      const std::string other = other_input(g.nodes[next], out);
      const Tensor* c = other.empty() ? nullptr : idx.constant(other);
      if (c && c->dtype == DType::kF32 && c->rank() == 1 && c->numel() == N) {
        fused.inputs[2] = other;
        chain.push_back(next);
        out = g.nodes[next].outputs[0];
        next = sole_consumer(idx, out);
      }
    }
    // Residual.
    if (next >= 0 && is_onnx_op(g.nodes[next], "Add")) {
      const std::string other = other_input(g.nodes[next], out);
      if (!other.empty()) {
        fused.inputs[3] = other;
        chain.push_back(next);
        out = g.nodes[next].outputs[0];
        next = sole_consumer(idx, out);
      }
    }
    // Activation.
    if (next >= 0 && g.nodes[next].inputs[0] == out && activation_of(g.nodes[next], idx, opset, fused.attrs)) {
      chain.push_back(next);
      out = g.nodes[next].outputs[0];
    }
    if (chain.size() == 1 && matmul) continue;  // nothing to fuse
    bool overlap = false;
    for (int c : chain) overlap |= dead[c];
    if (overlap) continue;
    for (int c : chain) dead[c] = true;
    while (!fused.inputs.empty() && fused.inputs.back().empty()) fused.inputs.pop_back();
    fused.outputs = {out};
    fused.name = fresh((n.name.empty() ? std::string("FusedGemm") : n.name) + "_fused");
    added.push_back(std::move(fused));
  }
  return replace_with_fused(model, dead, std::move(added), /*runnx_domain=*/true);
}

}  // namespace runnx
