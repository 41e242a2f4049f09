// Conv (+ bias) followed by a residual Add and/or an activation becomes one FusedConv
// (com.runnx): y = act(conv(x, w) + b + z), computed per output tile while it is in cache.
// Patterns (each intermediate read by the next node alone, never a graph output):
//   Conv -> act          Conv -> Add(z) -> act          Conv -> Add(z)
// Activations: Relu, Clip (constant bounds), Sigmoid, LeakyRelu, HardSwish. The conv's weights
// must be a float32 constant (FusedConv is float32). An Add whose other operand broadcasts is
// still exact: the kernel then adds with broadcasting (slower path).
#include <limits>

#include "passes/graph_index.h"
#include "passes/pass.h"

namespace runnx {

namespace {

// Fills the FusedConv activation attributes for node n, or returns false.
bool activation_of(const Node& n, const GraphIndex& idx, int64_t opset, std::string& act,
                   std::vector<float>& params) {
  if (n.inputs.empty() || n.outputs.size() != 1) return false;
  params.clear();
  for (const char* simple : {"Relu", "Sigmoid", "HardSwish"})
    if (is_onnx_op(n, simple) && n.inputs.size() == 1) {
      act = simple;
      return true;
    }
  if (is_onnx_op(n, "LeakyRelu") && n.inputs.size() == 1) {
    act = "LeakyRelu";
    params = {n.get_float("alpha", 0.01f)};
    return true;
  }
  if (is_onnx_op(n, "Clip")) {
    float lo = std::numeric_limits<float>::lowest(), hi = std::numeric_limits<float>::max();
    if (opset < 11) {
      lo = n.get_float("min", lo);
      hi = n.get_float("max", hi);
    } else {
      double v;
      if (n.inputs.size() > 1 && !n.inputs[1].empty()) {
        if (!scalar_constant(idx, n.inputs[1], v)) return false;
        lo = static_cast<float>(v);
      }
      if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
        if (!scalar_constant(idx, n.inputs[2], v)) return false;
        hi = static_cast<float>(v);
      }
    }
    act = "Clip";
    params = {lo, hi};
    return true;
  }
  return false;
}

// The single node reading `value`, if `value` may vanish once fused.
int sole_reader(const GraphIndex& idx, const std::string& value) {
  const std::vector<int>& c = idx.consumers(value);
  return c.size() == 1 && idx.only_read_by(value, c[0]) ? c[0] : -1;
}

}  // namespace

int pass_conv_activation_fusion(Model& model) {
  Graph& g = model.graph;
  GraphIndex idx(g);
  const int64_t opset = model.opset("");
  std::vector<bool> dead(g.nodes.size(), false);
  int fired = 0;
  for (int k = 0; k < static_cast<int>(g.nodes.size()); ++k) {
    const Node& conv = g.nodes[k];
    if (dead[k] || !is_onnx_op(conv, "Conv") || conv.inputs.size() < 2 ||
        conv.outputs.size() != 1 || conv.outputs[0].empty())
      continue;
    const Tensor* w = idx.constant(conv.inputs[1]);
    if (!w || w->dtype != DType::kF32) continue;
    std::string residual, act, out = conv.outputs[0];
    std::vector<float> params;
    std::vector<int> fused;
    int r = sole_reader(idx, out);
    if (r >= 0 && !dead[r] && is_onnx_op(g.nodes[r], "Add") && g.nodes[r].inputs.size() == 2 &&
        g.nodes[r].inputs[0] != g.nodes[r].inputs[1] && g.nodes[r].outputs.size() == 1) {
      const Node& add = g.nodes[r];
      residual = add.inputs[0] == out ? add.inputs[1] : add.inputs[0];
      fused.push_back(r);
      out = add.outputs[0];
      r = sole_reader(idx, out);
    }
    if (r >= 0 && !dead[r] && activation_of(g.nodes[r], idx, opset, act, params)) {
      fused.push_back(r);
      out = g.nodes[r].outputs[0];
    }
    if (fused.empty()) continue;
    Node f;
    f.name = conv.name;
    f.op_type = "FusedConv";
    f.domain = kRunnxDomain;
    f.attrs = conv.attrs;
    if (!act.empty()) {
      f.attrs.push_back(string_attr("activation", act));
      if (!params.empty()) f.attrs.push_back(floats_attr("activation_params", params));
    }
    f.inputs = {conv.inputs[0], conv.inputs[1], conv.inputs.size() > 2 ? conv.inputs[2] : ""};
    if (!residual.empty()) f.inputs.push_back(residual);
    f.outputs = {out};
    g.nodes[k] = std::move(f);
    for (int d : fused) dead[d] = true;
    ++fired;
  }
  if (!fired) return 0;
  erase_nodes(g, dead);
  ensure_runnx_domain(model);
  return fired;
}

}  // namespace runnx
