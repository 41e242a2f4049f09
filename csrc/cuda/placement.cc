// Per-node placement under the CUDA provider: pure decisions from the op, its static dtypes and
// attributes, so it runs (and is tested) on machines without a GPU.
#include "cuda/cuda_kernel.h"
#include "cuda/session_hooks.h"

namespace runnx::cuda {

NodePlacement place_node(const Node& node, int64_t opset, const std::vector<const InferredType*>& inputs,
                         const std::vector<const InferredType*>& outputs,
                         const std::function<bool(int)>& is_constant) {
  NodePlacement p;
  std::string op = (node.domain.empty() ? "" : node.domain + ".") + node.op_type;
  const CudaOpSchema* schema = CudaOpRegistry::global().find(node.domain, node.op_type, opset);
  if (!schema) {
    p.reason = "no CUDA kernel for " + op;
    return p;
  }
  CudaNodeInfo info{node, opset, inputs, outputs, is_constant};
  std::string why;
  try {
    why = schema->check(info);
  } catch (const Error& e) {  // a malformed attribute: the CPU kernel reports it at load
    why = e.what();
  }
  if (!why.empty()) {
    p.reason = op + ": " + why;
    return p;
  }
  p.device = DeviceKind::kCUDA;
  p.host_inputs = schema->host_inputs;
  p.shape_only_inputs = schema->shape_only_inputs;
  p.host_outputs = schema->host_outputs;
  return p;
}

}  // namespace runnx::cuda
