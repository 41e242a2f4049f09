// GELU written out as exporters do, into one com.runnx Gelu node:
//   erf form:  0.5 * x * (1 + Erf(x / sqrt2))           (Div by sqrt2 or Mul by 1/sqrt2)
//   tanh form: 0.5 * x * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))   (Pow(x, 3) or x*x*x)
// in either multiplication order (0.5 * x first, or x * (1 + ...) first, operands either side).
// The constants must be float32 scalars (so x is float32) and every intermediate value must be
// read only by the next node of the pattern.
#include "passes/graph_index.h"
#include "passes/pass.h"

namespace runnx {

namespace {

struct Match {
  std::string x, y;
  std::vector<int> nodes;
  bool tanh = false;
};

bool is_op(const Graph& g, int k, const char* op) { return k >= 0 && is_onnx_op(g.nodes[k], op); }

// Node k is a binary `op` reading `value` and a scalar constant near `c`.
bool binary_with_constant(const Graph& g, const GraphIndex& idx, int k, const char* op, const std::string& value,
                          double c) {
  if (!is_op(g, k, op)) return false;
  const std::string other = other_input(g.nodes[k], value);
  if (other.empty() || !scalar_near(idx, other, c) || constant_dtype(idx, other) != DType::kF32) return false;
  // Div is not commutative: the constant must be the divisor.
  return !is_onnx_op(g.nodes[k], "Div") || g.nodes[k].inputs[1] == other;
}

// From the Erf/Tanh output `g_out`: Add 1, then the products with x and 0.5. Fills y and nodes.
bool match_tail(const Graph& g, const GraphIndex& idx, const std::string& x, const std::string& g_out, Match& m) {
  const int add = sole_consumer(idx, g_out);
  if (!binary_with_constant(g, idx, add, "Add", g_out, 1.0)) return false;
  const std::string p = g.nodes[add].outputs[0];
  const int mul = sole_consumer(idx, p);
  if (!is_op(g, mul, "Mul")) return false;
  const std::string other = other_input(g.nodes[mul], p);
  m.nodes.insert(m.nodes.end(), {add, mul});
  if (other == x) {  // (x * p) * 0.5
    const std::string xp = g.nodes[mul].outputs[0];
    const int half = sole_consumer(idx, xp);
    if (!binary_with_constant(g, idx, half, "Mul", xp, 0.5)) return false;
    m.nodes.push_back(half);
    m.y = g.nodes[half].outputs[0];
    return true;
  }
  // (0.5 * x) * p: the half product must be read only here.
  const int half = idx.producer(other);
  if (!binary_with_constant(g, idx, half, "Mul", x, 0.5) || !idx.only_read_by(other, mul)) return false;
  m.nodes.push_back(half);
  m.y = g.nodes[mul].outputs[0];
  return true;
}

bool match_erf(const Graph& g, const GraphIndex& idx, int erf, Match& m) {
  const std::string d = g.nodes[erf].inputs.empty() ? "" : g.nodes[erf].inputs[0];
  const int scale = idx.producer(d);
  if (scale < 0 || !idx.only_read_by(d, erf)) return false;
  const Node& s = g.nodes[scale];
  if (s.inputs.size() != 2) return false;
  for (const std::string& x : {s.inputs[0], s.inputs[1]}) {
    if (binary_with_constant(g, idx, scale, "Div", x, 1.4142135623730951) ||
        binary_with_constant(g, idx, scale, "Mul", x, 0.7071067811865476)) {
      m = Match{x, "", {scale, erf}, false};
      if (match_tail(g, idx, x, g.nodes[erf].outputs[0], m)) return true;
    }
  }
  return false;
}

// x^3 as Pow(x, 3) or (x*x)*x / x*(x*x); returns x, fills the nodes.
std::string match_cube(const Graph& g, const GraphIndex& idx, const std::string& v, std::vector<int>& nodes) {
  const int k = idx.producer(v);
  if (k < 0) return "";
  const Node& n = g.nodes[k];
  if (is_onnx_op(n, "Pow") && n.inputs.size() == 2 && scalar_near(idx, n.inputs[1], 3.0)) {
    nodes.push_back(k);
    return n.inputs[0];
  }
  if (!is_onnx_op(n, "Mul") || n.inputs.size() != 2) return "";
  for (int side = 0; side < 2; ++side) {
    const std::string sq = n.inputs[side], x = n.inputs[1 - side];
    const int q = idx.producer(sq);
    if (is_op(g, q, "Mul") && g.nodes[q].inputs.size() == 2 && g.nodes[q].inputs[0] == x &&
        g.nodes[q].inputs[1] == x && idx.only_read_by(sq, k)) {
      nodes.insert(nodes.end(), {q, k});
      return x;
    }
  }
  return "";
}

bool match_tanh(const Graph& g, const GraphIndex& idx, int th, Match& m) {
  // Tanh(c * (x + 0.044715 * x^3))
  const std::string t_in = g.nodes[th].inputs.empty() ? "" : g.nodes[th].inputs[0];
  const int mc = idx.producer(t_in);
  if (!is_op(g, mc, "Mul") || !idx.only_read_by(t_in, th)) return false;
  for (const std::string& u : g.nodes[mc].inputs) {
    if (!binary_with_constant(g, idx, mc, "Mul", u, 0.7978845608028654)) continue;
    const int add = idx.producer(u);
    if (!is_op(g, add, "Add") || !idx.only_read_by(u, mc) || g.nodes[add].inputs.size() != 2) continue;
    for (int side = 0; side < 2; ++side) {
      const std::string x = g.nodes[add].inputs[side], w = g.nodes[add].inputs[1 - side];
      const int mw = idx.producer(w);
      if (!is_op(g, mw, "Mul") || !idx.only_read_by(w, add)) continue;
      for (const std::string& v : g.nodes[mw].inputs) {
        if (!binary_with_constant(g, idx, mw, "Mul", v, 0.044715)) continue;
        std::vector<int> cube;
        if (!idx.only_read_by(v, mw) || match_cube(g, idx, v, cube) != x) continue;
        m = Match{x, "", {mc, add, mw, th}, true};
        m.nodes.insert(m.nodes.end(), cube.begin(), cube.end());
        if (match_tail(g, idx, x, g.nodes[th].outputs[0], m)) return true;
      }
    }
  }
  return false;
}

}  // namespace

int pass_gelu_fusion(Model& model) {
  Graph& g = model.graph;
  GraphIndex idx(g);
  FreshNames fresh(idx);
  std::vector<bool> dead(g.nodes.size(), false);
  std::vector<Node> added;
  for (int k = 0; k < static_cast<int>(g.nodes.size()); ++k) {
    Match m;
    const bool erf = is_onnx_op(g.nodes[k], "Erf");
    if (!(erf ? match_erf(g, idx, k, m) : is_onnx_op(g.nodes[k], "Tanh") && match_tanh(g, idx, k, m))) continue;
    bool overlap = false;
    for (int n : m.nodes) overlap |= dead[n];
    if (overlap) continue;
    for (int n : m.nodes) dead[n] = true;
    Node gelu;
    gelu.op_type = "Gelu";
    gelu.domain = kRunnxDomain;
    gelu.name = fresh("Gelu_fused");
    gelu.inputs = {m.x};
    gelu.outputs = {m.y};
    if (m.tanh) gelu.attrs.push_back(string_attr("approximate", "tanh"));
    added.push_back(std::move(gelu));
  }
  return replace_with_fused(model, dead, std::move(added), /*runnx_domain=*/true);
}

}  // namespace runnx
