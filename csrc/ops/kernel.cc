#include "ops/kernel.h"

namespace runnx {

#define RUNNX_OP_FAMILY(f) void register_##f##_ops(OpRegistry& r);
#include "ops/families.inc"
#undef RUNNX_OP_FAMILY

const Tensor& KernelContext::required_input(int i) const {
  const Tensor* t = input(i);
  RUNNX_CHECK(t, kInvalidModel, node_.label(), ": required input ", i, " is missing");
  return *t;
}

Tensor& KernelContext::allocate_output(int i, DType dtype, Shape shape) {
  RUNNX_CHECK(i < num_outputs(), kInvalidModel, node_.label(), ": has no output ", i);
  outputs_[i] = (*alloc_)(i, dtype, std::move(shape));
  return outputs_[i];
}

void KernelContext::set_output_view(int i, const Tensor& src, Shape shape) {
  RUNNX_CHECK(i < num_outputs(), kInvalidModel, node_.label(), ": has no output ", i);
  outputs_[i] = src.view(std::move(shape));
}

const OpRegistry& OpRegistry::global() {
  static const OpRegistry registry = [] {
    OpRegistry r;
#define RUNNX_OP_FAMILY(f) register_##f##_ops(r);
#include "ops/families.inc"
#undef RUNNX_OP_FAMILY
    return r;
  }();
  return registry;
}

void OpRegistry::add(std::string op_type, std::string domain, int since, KernelFactory make) {
  ops_.push_back({std::move(op_type), std::move(domain), since, std::move(make)});
}

const OpSchema* OpRegistry::find(const std::string& domain, const std::string& op_type,
                                 int64_t opset) const {
  std::string d = domain == "ai.onnx" ? "" : domain;
  const OpSchema* best = nullptr;
  for (const OpSchema& s : ops_)
    if (s.op_type == op_type && s.domain == d && s.since <= opset && (!best || s.since > best->since))
      best = &s;
  return best;
}

}  // namespace runnx
