// Folds the head split and merge Transposes around com.runnx ScaledDotProductAttention into the
// op (layout "bshd"), as exporters write multi-head attention:
//   Q = Transpose(q [B,S,H,D], perm 0,2,1,3)   K^T = Transpose(k [B,Sk,H,D], perm 0,2,3,1)
//   V = Transpose(v [B,Sk,H,Dv], perm 0,2,1,3) Y' = Transpose(Y, perm 0,2,1,3)
// becomes Y' = ScaledDotProductAttention(q, k, v, mask; layout = "bshd"): the kernel reads each
// head's rows in place, H*D floats apart, and writes Y' directly, so four copies per layer go.
// All four Transposes must be there; Y must be read only by its Transpose. An input Transpose
// that other nodes also read stays for them (dead_node_elimination drops it otherwise).
// A layout pass (level 99, like nhwc_layout) and CPU-only: the CUDA attention kernel takes the
// default layout, and a CUDA session's graph stays the CPU session's at level 2.
#include "passes/graph_index.h"
#include "passes/pass.h"

namespace runnx {

namespace {

// The input of `value`'s producer when that is a Transpose with exactly `perm`, else "".
std::string transposed_from(const Graph& g, const GraphIndex& idx, const std::string& value,
                            const std::vector<int64_t>& perm) {
  const int p = idx.producer(value);
  if (p < 0) return "";
  const Node& t = g.nodes[p];
  if (!is_onnx_op(t, "Transpose") || t.inputs.size() != 1 || t.get_ints("perm") != perm) return "";
  return t.inputs[0];
}

}  // namespace

int pass_attention_layout(Model& model) {
  Graph& g = model.graph;
  GraphIndex idx(g);
  const std::vector<int64_t> swap12 = {0, 2, 1, 3}, to_kt = {0, 2, 3, 1};
  std::vector<bool> dead(g.nodes.size(), false);
  int folded = 0;
  for (int k = 0; k < static_cast<int>(g.nodes.size()); ++k) {
    Node& att = g.nodes[k];
    if (att.op_type != "ScaledDotProductAttention" || att.domain != kRunnxDomain || att.has_attr("layout") ||
        att.inputs.size() < 3 || att.outputs.size() != 1)
      continue;
    const std::string q = transposed_from(g, idx, att.inputs[0], swap12);
    const std::string kk = transposed_from(g, idx, att.inputs[1], to_kt);
    const std::string v = transposed_from(g, idx, att.inputs[2], swap12);
    const int merge = sole_consumer(idx, att.outputs[0]);
    if (q.empty() || kk.empty() || v.empty() || merge < 0 || dead[merge]) continue;
    const Node& mt = g.nodes[merge];
    if (!is_onnx_op(mt, "Transpose") || mt.get_ints("perm") != swap12 || mt.outputs.size() != 1) continue;
    att.inputs[0] = q;
    att.inputs[1] = kk;
    att.inputs[2] = v;
    att.outputs[0] = mt.outputs[0];
    att.attrs.push_back(string_attr("layout", "bshd"));
    dead[merge] = true;
    ++folded;
  }
  if (folded) erase_nodes(g, dead);
  return folded;
}

}  // namespace runnx
