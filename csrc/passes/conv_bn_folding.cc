// Conv followed by an inference-mode BatchNormalization becomes one Conv with the BN folded into
// its constant weights and bias: s = scale / sqrt(var + eps), W'[m] = W[m] * s[m],
// b'[m] = (b[m] - mean[m]) * s[m] + B[m] (computed in double). Needs W, the conv bias and every
// BN parameter to be float32 constants, and the conv's output to be read by the BN alone.
// W may sit misaligned in the model file (graph_prep leaves a Conv's weight there for this pass):
// rows are copied out bytewise. Each fold has its own load block: malloc then reuses the blocks a
// previous session freed (one block for all of ResNet-50's 94 MB would be a fresh mapping, every
// page zeroed by the kernel, on every creation).
#include <cmath>
#include <cstring>

#include "common/load_memory.h"
#include "common/spread.h"
#include "onnx/model_reader.h"
#include "passes/graph_index.h"
#include "passes/pass.h"

namespace runnx {

namespace {

// A float32 constant of shape [m].
const Tensor* channel_vector(const GraphIndex& idx, const std::string& name, int64_t m) {
  const Tensor* t = name.empty() ? nullptr : idx.constant(name);
  return t && t->dtype == DType::kF32 && t->rank() == 1 && t->shape[0] == m ? t : nullptr;
}

struct Fold {
  int conv, bn;
  const Tensor *w, *cb, *scale, *shift, *mean, *var;
  double eps;
  std::shared_ptr<void> block;  // W' then b' (allocated before folding starts: no throw inside)
  Tensor w_out, b_out;
};

size_t aligned64(size_t n) { return (n + 63) / 64 * 64; }

// W'[m] = W[m] * s[m], b' = (b - mean) * s + B, into a block of their own (b' after W').
void fold(Fold& f) {
  const Tensor& w = *f.w;
  const int64_t M = w.shape[0];
  const int64_t per = w.numel() / std::max<int64_t>(M, 1);
  auto* base = static_cast<uint8_t*>(f.block.get());
  auto* wo = reinterpret_cast<float*>(base);
  auto* bo = reinterpret_cast<float*>(base + aligned64(w.nbytes()));
  const auto* wi = static_cast<const uint8_t*>(w.data);
  for (int64_t m = 0; m < M; ++m) {
    const double s = f.scale->ptr<float>()[m] / std::sqrt(double(f.var->ptr<float>()[m]) + f.eps);
    float* row = wo + m * per;
    std::memcpy(row, wi + m * per * sizeof(float), per * sizeof(float));
    for (int64_t i = 0; i < per; ++i) row[i] = static_cast<float>(row[i] * s);
    const double b0 = f.cb ? f.cb->ptr<float>()[m] : 0.0;
    bo[m] = static_cast<float>((b0 - f.mean->ptr<float>()[m]) * s + f.shift->ptr<float>()[m]);
  }
  f.w_out.dtype = f.b_out.dtype = DType::kF32;
  f.w_out.shape = w.shape;
  f.b_out.shape = {M};
  f.w_out.data = wo;
  f.b_out.data = bo;
  f.w_out.owner = f.b_out.owner = f.block;
}

}  // namespace

int pass_conv_bn_folding(Model& model) {
  Graph& g = model.graph;
  GraphIndex idx(g);
  std::vector<Fold> folds;
  std::vector<bool> used(g.nodes.size(), false);
  size_t folded_bytes = 0;
  for (int k = 0; k < static_cast<int>(g.nodes.size()); ++k) {
    const Node& bn = g.nodes[k];
    if (!is_onnx_op(bn, "BatchNormalization") || bn.inputs.size() != 5 || bn.outputs.empty() ||
        bn.outputs[0].empty() || bn.get_int("training_mode", 0) != 0)
      continue;
    bool extra_read = false;  // the running-statistics outputs of training mode
    for (size_t o = 1; o < bn.outputs.size(); ++o)
      extra_read |= !bn.outputs[o].empty() && idx.uses(bn.outputs[o]) > 0;
    if (extra_read) continue;
    const int p = idx.producer(bn.inputs[0]);
    if (p < 0 || used[p] || !idx.only_read_by(bn.inputs[0], k)) continue;
    const Node& conv = g.nodes[p];
    if (!is_onnx_op(conv, "Conv") || conv.inputs.size() < 2 || conv.outputs.size() != 1) continue;
    const Tensor* w = idx.constant(conv.inputs[1]);
    if (!w || w->dtype != DType::kF32 || w->rank() < 3) continue;
    const int64_t M = w->shape[0];
    const bool has_bias = conv.inputs.size() > 2 && !conv.inputs[2].empty();
    const Tensor* cb = has_bias ? channel_vector(idx, conv.inputs[2], M) : nullptr;
    const Tensor* scale = channel_vector(idx, bn.inputs[1], M);
    const Tensor* shift = channel_vector(idx, bn.inputs[2], M);
    const Tensor* mean = channel_vector(idx, bn.inputs[3], M);
    const Tensor* var = channel_vector(idx, bn.inputs[4], M);
    if ((has_bias && !cb) || !scale || !shift || !mean || !var) continue;
    used[p] = used[k] = true;
    folds.push_back({p, k, w, cb, scale, shift, mean, var, bn.get_float("epsilon", 1e-5f),
                     alloc_load_block(aligned64(w->nbytes()) + aligned64(M * sizeof(float))), {}, {}});
    folded_bytes += w->nbytes();
  }
  if (folds.empty()) return 0;
  // Megabytes of weights (ResNet-50: 94 MB) go faster on the threads the session may use.
  const int threads = folded_bytes >= (size_t{2} << 20) ? model.load_threads : 1;
  run_spread(folds.size(), threads, [&](size_t j) { fold(folds[j]); });
  // The original weights nothing else reads give their file pages back now (not when the
  // session is done building): the folded copies replace them.
  for (const Fold& f : folds) {
    const std::string& wn = g.nodes[f.conv].inputs[1];
    if (idx.only_read_by(wn, f.conv) && !idx.is_graph_input(wn)) release_mapped_weight(model, *f.w);
  }
  // Edits after matching: new initializers may move the ones the index points into.
  std::set<std::string> taken = idx.names();
  std::vector<bool> dead(g.nodes.size(), false);
  for (Fold& f : folds) {
    Node& conv = g.nodes[f.conv];
    const std::string base = conv.name.empty() ? conv.outputs[0] : conv.name;
    const std::string wn = fresh_name(taken, base + ".weight_bn");
    const std::string bnm = fresh_name(taken, base + ".bias_bn");
    g.initializers.emplace_back(wn, std::move(f.w_out));
    g.initializers.emplace_back(bnm, std::move(f.b_out));
    conv.inputs.resize(3);
    conv.inputs[1] = wn;
    conv.inputs[2] = bnm;
    conv.outputs[0] = g.nodes[f.bn].outputs[0];
    dead[f.bn] = true;
  }
  erase_nodes(g, dead);
  return static_cast<int>(folds.size());
}

}  // namespace runnx
