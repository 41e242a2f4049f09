// Identity, and Dropout in inference mode, pass their input through: readers of the output read
// the input instead. When the output is a graph output, the producer of the input is renamed to
// produce it directly (if the input is a plain intermediate value); otherwise the node stays.
#include "passes/graph_index.h"
#include "passes/pass.h"

namespace runnx {

namespace {

// Dropout is the identity unless training_mode is a constant true (or not constant at all), and
// only when its mask output is not read.
bool is_passthrough(const Node& n, const GraphIndex& idx) {
  if (n.inputs.empty() || n.inputs[0].empty() || n.outputs.empty() || n.outputs[0].empty()) return false;
  if (is_onnx_op(n, "Identity")) return n.inputs.size() == 1 && n.outputs.size() == 1;
  if (!is_onnx_op(n, "Dropout")) return false;
  if (n.outputs.size() > 1 && !n.outputs[1].empty() && idx.uses(n.outputs[1]) > 0) return false;
  if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
    const Tensor* mode = idx.constant(n.inputs[2]);
    if (!mode || mode->numel() != 1 || mode->dtype != DType::kBool || *mode->ptr<uint8_t>() != 0) return false;
  }
  return true;
}

}  // namespace

int pass_identity_elimination(Model& model) {
  Graph& g = model.graph;
  GraphIndex idx(g);
  std::vector<bool> dead(g.nodes.size(), false);
  std::map<std::string, std::string> rename;          // reader-side: output -> input
  std::map<std::string, std::string> rename_producer;  // producer-side: input -> graph output
  int fired = 0;
  for (int k = 0; k < static_cast<int>(g.nodes.size()); ++k) {
    const Node& n = g.nodes[k];
    if (!is_passthrough(n, idx)) continue;
    const std::string& in = n.inputs[0];
    const std::string& out = n.outputs[0];
    if (!idx.is_graph_output(out)) {
      rename[out] = in;
    } else {
      // The output name must survive: let the input's producer write it, if that is safe.
      int p = idx.producer(in);
      if (p < 0 || dead[p] || idx.is_graph_output(in) || !idx.only_read_by(in, k) || rename_producer.count(in))
        continue;
      rename_producer[in] = out;
    }
    dead[k] = true;
    ++fired;
  }
  if (!fired) return 0;
  for (Node& n : g.nodes)
    for (std::string& o : n.outputs) {
      auto it = rename_producer.find(o);
      if (it != rename_producer.end()) o = it->second;
    }
  erase_nodes(g, dead);
  rename_inputs(g, rename);
  return fired;
}

}  // namespace runnx
