#include <algorithm>

#include "cuda/cuda_kernel.h"

namespace runnx::cuda {

#define RUNNX_CUDA_OP_FAMILY(name) void register_cuda_##name##_ops(CudaOpRegistry& r);
#include "cuda/ops/families.inc"
#undef RUNNX_CUDA_OP_FAMILY

const CudaOpRegistry& CudaOpRegistry::global() {
  static const CudaOpRegistry registry = [] {
    CudaOpRegistry r;
#define RUNNX_CUDA_OP_FAMILY(name) register_cuda_##name##_ops(r);
#include "cuda/ops/families.inc"
#undef RUNNX_CUDA_OP_FAMILY
    return r;
  }();
  return registry;
}

const CudaOpSchema* CudaOpRegistry::find(const std::string& domain, const std::string& op_type,
                                         int64_t opset) const {
  const CudaOpSchema* best = nullptr;
  for (const CudaOpSchema& s : ops_)
    if (s.op_type == op_type && s.domain == domain && s.since <= opset && (!best || s.since > best->since))
      best = &s;
  return best;
}

std::string check_dtypes(const CudaNodeInfo& info, const std::vector<DType>& allowed, const std::vector<int>& inputs,
                         bool outputs_too) {
  auto bad = [&](DType d) { return std::find(allowed.begin(), allowed.end(), d) == allowed.end(); };
  for (int k : inputs) {
    if (!info.has_input(k)) continue;
    DType d = info.input_dtype(k);
    if (d == DType::kUndefined) return "input " + std::to_string(k) + " has a dtype unknown at load";
    if (bad(d)) return std::string(dtype_name(d)) + " input has no CUDA kernel";
  }
  if (outputs_too)
    for (size_t k = 0; k < info.outputs.size(); ++k) {
      if (!info.outputs[k]) continue;
      DType d = info.outputs[k]->dtype;
      if (d == DType::kUndefined) return "output " + std::to_string(k) + " has a dtype unknown at load";
      if (bad(d)) return std::string(dtype_name(d)) + " output has no CUDA kernel";
    }
  return "";
}

}  // namespace runnx::cuda
