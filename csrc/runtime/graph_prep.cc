#include "runtime/graph_prep.h"

#include <cstring>

#include "common/status.h"

namespace runnx {

namespace {

template <typename T>
Tensor make_tensor(DType dtype, Shape shape, const std::vector<T>& values) {
  Tensor t = Tensor::empty(dtype, std::move(shape));
  if (!values.empty()) std::memcpy(t.data, values.data(), values.size() * sizeof(T));
  return t;
}

// The value a Constant node holds, in whichever attribute it came.
Tensor constant_value(const Node& n) {
  RUNNX_CHECK(n.attrs.size() == 1, kInvalidModel, n.label(), ": needs exactly one value attribute, has ",
              n.attrs.size());
  const Attribute& a = n.attrs[0];
  if (a.name == "value") {
    RUNNX_CHECK(a.type == Attribute::Type::kTensor, kInvalidModel, n.label(), ": 'value' is not a tensor");
    RUNNX_CHECK(a.t.dtype != DType::kString, kUnsupportedOp, n.label(), ": string tensors are not supported");
    return a.t;
  }
  if (a.name == "value_float") return make_tensor<float>(DType::kF32, {}, {a.f});
  if (a.name == "value_floats")
    return make_tensor<float>(DType::kF32, {static_cast<int64_t>(a.floats.size())}, a.floats);
  if (a.name == "value_int") return make_tensor<int64_t>(DType::kI64, {}, {a.i});
  if (a.name == "value_ints")
    return make_tensor<int64_t>(DType::kI64, {static_cast<int64_t>(a.ints.size())}, a.ints);
  fail(ErrorKind::kUnsupportedOp, n.label(), ": attribute '", a.name, "' is not supported");
}

}  // namespace

std::vector<PassFired> prepare_graph(Model& model, int optimization_level, bool device_asked) {
  Graph& g = model.graph;
  std::vector<Node> kept;
  kept.reserve(g.nodes.size());
  for (Node& n : g.nodes) {
    if (n.op_type == "Constant" && (n.domain.empty() || n.domain == "ai.onnx") && n.outputs.size() == 1) {
      g.initializers.emplace_back(n.outputs[0], constant_value(n));
      continue;
    }
    kept.push_back(std::move(n));
  }
  g.nodes = std::move(kept);
  return run_graph_passes(model, optimization_level, device_asked);
}

}  // namespace runnx
