#include "runtime/graph_prep.h"

#include <cstring>
#include <string_view>
#include <unordered_map>

#include "common/status.h"
#include "ir/load_profile.h"
#include "onnx/model_reader.h"

namespace runnx {

namespace {

bool is_onnx_conv(const Node& n) { return n.op_type == "Conv" && (n.domain.empty() || n.domain == "ai.onnx"); }

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

// The reader leaves misaligned float32 tensors of rank >= 2 in the file. Those whose every reader
// takes them in place (reads_misaligned_in_place) stay there: a GEMM packs straight from the file
// pages instead of from a heap copy made first (BERT: 336 MB), a Gather copies the rows it needs
// (BERT's 94 MB word embeddings: no copy, untouched rows never resident). So does a Conv's weight
// when the passes run: conv_bn_folding reads it bytewise into its folded copy (ResNet-50: 69 MB
// not copied first), and the session realigns one left unfolded before its kernel is built.
// Every other reader gets an aligned copy now, before any pass reads the values.
void realign_weights(Model& model, int optimization_level) {
  Graph& g = model.graph;
  // The misaligned ones by name (viewed in place: nothing renames them here), copied at most once.
  std::unordered_map<std::string_view, Tensor*> misaligned;
  for (auto& [name, t] : g.initializers)
    if (is_misaligned(t)) misaligned.emplace(name, &t);
  if (misaligned.empty()) return;
  auto realign = [&](const std::string& name) {  // read other than in place, or seen by the caller
    auto it = misaligned.find(name);
    if (it == misaligned.end() || !it->second) return;
    realign_weight(model, *it->second);
    it->second = nullptr;
  };
  for (const ValueInfo& vi : g.inputs) realign(vi.name);
  for (const ValueInfo& vi : g.outputs) realign(vi.name);
  for (const Node& n : g.nodes)
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      const bool folded_weight = optimization_level >= 1 && k == 1 && is_onnx_conv(n);
      if (!folded_weight && !reads_misaligned_in_place(n, k)) realign(n.inputs[k]);
    }
}

}  // namespace

bool reads_misaligned_in_place(const Node& n, size_t slot) {
  const bool onnx = n.domain.empty() || n.domain == "ai.onnx";
  if (slot == 1)
    return (onnx && (n.op_type == "MatMul" || n.op_type == "Gemm")) || (n.domain == "com.runnx" && n.op_type == "FusedGemm");
  return slot == 0 && onnx && n.op_type == "Gather";
}

std::vector<PassFired> prepare_graph(Model& model, int optimization_level, bool device_asked) {
  Graph& g = model.graph;
  {
    LoadPhase phase("constant nodes");
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
  }
  {
    LoadPhase phase("realign weights");
    realign_weights(model, optimization_level);
  }
  return run_graph_passes(model, optimization_level, device_asked);
}

}  // namespace runnx
