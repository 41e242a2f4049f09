// Layout no-ops and chains that exporters leave behind:
//   Transpose(Transpose(x, p1), p2) -> Transpose(x, p1[p2])  (an Identity when that is the identity)
//   Transpose(x, identity perm)      -> Identity (removed by identity_elimination next round)
//   Reshape(Reshape(x, s1), s2)      -> Reshape(x, s2)  when s2 is a constant without 0 entries
//                                       (a 0 copies a dim of the intermediate) or allowzero = 1
// The inner node must be read only by the outer one.
#include <algorithm>

#include "passes/graph_index.h"
#include "passes/pass.h"

namespace runnx {

namespace {

bool explicit_perm(const Node& n, std::vector<int64_t>& perm) {
  if (!is_onnx_op(n, "Transpose") || !n.has_attr("perm") || n.inputs.size() != 1) return false;
  perm = n.get_ints("perm");
  return true;
}

bool is_identity(const std::vector<int64_t>& perm) {
  for (size_t k = 0; k < perm.size(); ++k)
    if (perm[k] != static_cast<int64_t>(k)) return false;
  return true;
}

void make_identity(Node& n) {
  n.op_type = "Identity";
  n.domain.clear();
  n.attrs.clear();
  n.inputs.resize(1);
}

}  // namespace

int pass_transpose_reshape_folding(Model& model) {
  Graph& g = model.graph;
  GraphIndex idx(g);
  std::vector<bool> dead(g.nodes.size(), false);
  int fired = 0;
  for (int k = 0; k < static_cast<int>(g.nodes.size()); ++k) {
    Node& n = g.nodes[k];
    if (dead[k] || n.inputs.empty()) continue;
    const int inner = idx.producer(n.inputs[0]);
    std::vector<int64_t> p2, p1;
    if (explicit_perm(n, p2)) {
      if (inner >= 0 && !dead[inner] && explicit_perm(g.nodes[inner], p1) && p1.size() == p2.size() &&
          idx.only_read_by(n.inputs[0], k)) {
        std::vector<int64_t> q(p2.size());
        bool valid = true;
        for (size_t i = 0; i < p2.size(); ++i) {
          if (p2[i] < 0 || p2[i] >= static_cast<int64_t>(p1.size())) valid = false;
          else q[i] = p1[p2[i]];
        }
        if (!valid) continue;  // a bad perm: the kernel reports it
        n.inputs[0] = g.nodes[inner].inputs[0];
        for (Attribute& a : n.attrs)
          if (a.name == "perm") a.ints = q;
        dead[inner] = true;
        ++fired;
        p2 = q;
      }
      if (is_identity(p2)) {
        make_identity(n);
        ++fired;
      }
      continue;
    }
    if (is_onnx_op(n, "Reshape") && n.inputs.size() == 2 && inner >= 0 && !dead[inner] &&
        is_onnx_op(g.nodes[inner], "Reshape") && idx.only_read_by(n.inputs[0], k)) {
      const Tensor* shape = idx.constant(n.inputs[1]);
      if (!shape || (shape->dtype != DType::kI64)) continue;
      const std::vector<int64_t> s = tensor_to_i64(*shape);
      const bool allowzero = n.get_int("allowzero", 0) != 0;
      if (!allowzero && std::find(s.begin(), s.end(), 0) != s.end()) continue;
      n.inputs[0] = g.nodes[inner].inputs[0];
      dead[inner] = true;
      ++fired;
    }
  }
  if (fired) erase_nodes(g, dead);
  return fired;
}

}  // namespace runnx
