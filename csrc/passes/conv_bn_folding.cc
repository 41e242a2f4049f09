// Conv followed by an inference-mode BatchNormalization becomes one Conv with the BN folded into
// its constant weights and bias: s = scale / sqrt(var + eps), W'[m] = W[m] * s[m],
// b'[m] = (b[m] - mean[m]) * s[m] + B[m] (computed in double). Needs W, the conv bias and every
// BN parameter to be constants of one float type, float32 or float16 (a model converted for the
// GPU), and the conv's output to be read by the BN alone. W' and b' keep that type.
// W may sit misaligned in the model file (graph_prep leaves a Conv's weight there for this pass):
// rows are copied out bytewise. b' is computed here; W' is deferred (Model::deferred) when W is
// read by this conv alone: the session computes it just before building the conv's kernel, which
// packs it while it is in cache, and frees it once packed. Otherwise (W shared, a graph input, or
// overlapping another initializer) W' is folded now, each into a load block of its own: malloc
// then reuses the blocks a previous session freed.
#include <cmath>
#include <cstring>

#include "common/half.h"
#include "common/load_memory.h"
#include "common/spread.h"
#include "ir/load_profile.h"
#include "onnx/model_reader.h"
#include "passes/graph_index.h"
#include "passes/pass.h"

namespace runnx {

namespace {

bool foldable_type(DType t) { return t == DType::kF32 || t == DType::kF16; }

// A constant of type `t` and shape [m].
const Tensor* channel_vector(const GraphIndex& idx, const std::string& name, int64_t m, DType t) {
  const Tensor* v = name.empty() ? nullptr : idx.constant(name);
  return v && v->dtype == t && v->rank() == 1 && v->shape[0] == m ? v : nullptr;
}

// Element m of a float32 or float16 vector.
double value_at(const Tensor& t, int64_t m) {
  return t.dtype == DType::kF16 ? half_to_float(t.ptr<uint16_t>()[m]) : t.ptr<float>()[m];
}

struct Fold {
  int conv, bn;
  const Tensor *w, *cb, *scale, *shift, *mean, *var;
  double eps;
  bool defer;  // W' computed when its kernel is built (see below)
  std::vector<double> s;  // scale / sqrt(var + eps) per output channel
  Tensor w_out, b_out;
  std::shared_ptr<DeferredConstant> deferred;
};

size_t aligned64(size_t n) { return (n + 63) / 64 * 64; }

// W'[m] = W[m] * s[m] into `out`, in W's type. W may sit misaligned: each element is read
// bytewise (an unaligned load), in one pass over W (copying rows out first read them twice).
template <typename T, typename ToDouble, typename FromDouble>
void fold_rows(const Tensor& w, const std::vector<double>& s, T* out, ToDouble to, FromDouble from) {
  const int64_t M = w.shape[0];
  const int64_t per = w.numel() / std::max<int64_t>(M, 1);
  const auto* wi = static_cast<const uint8_t*>(w.data);
  for (int64_t m = 0; m < M; ++m) {
    const uint8_t* src = wi + m * per * sizeof(T);
    T* row = out + m * per;
    const double sm = s[m];
    for (int64_t i = 0; i < per; ++i) {
      T x;
      std::memcpy(&x, src + i * sizeof(T), sizeof(T));
      row[i] = from(to(x) * sm);
    }
  }
}

void fold_weight(const Tensor& w, const std::vector<double>& s, void* out) {
  if (w.dtype == DType::kF16)
    fold_rows(w, s, static_cast<uint16_t*>(out), [](uint16_t h) { return double(half_to_float(h)); },
              [](double v) { return float_to_half(static_cast<float>(v)); });
  else
    fold_rows(w, s, static_cast<float*>(out), [](float x) { return double(x); },
              [](double v) { return static_cast<float>(v); });
}

// Every initializer's bytes [begin, end), gathered once per pass (a fold checks them all).
struct ByteRange {
  const Tensor* t;
  const uint8_t *begin, *end;
};
std::vector<ByteRange> initializer_bytes(const Graph& g) {
  std::vector<ByteRange> out;
  out.reserve(g.initializers.size());
  for (const auto& [name, t] : g.initializers)
    if (t.data) out.push_back({&t, static_cast<const uint8_t*>(t.data), static_cast<const uint8_t*>(t.data) + t.nbytes()});
  return out;
}

// True when another initializer shares bytes with `w` (a reader releasing that one could drop
// pages a deferred fold has yet to read).
bool overlaps_another(const std::vector<ByteRange>& ranges, const Tensor* w) {
  auto* lo = static_cast<const uint8_t*>(w->data);
  auto* hi = lo + w->nbytes();
  for (const ByteRange& r : ranges)
    if (r.t != w && r.begin < hi && lo < r.end) return true;
  return false;
}

}  // namespace

int pass_conv_bn_folding(Model& model) {
  Graph& g = model.graph;
  GraphIndex idx(g);
  std::vector<Fold> folds;
  std::vector<bool> used(g.nodes.size(), false);
  std::vector<ByteRange> bytes;  // gathered when the first fold asks
  size_t eager_bytes = 0;
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
    if (!w || !foldable_type(w->dtype) || w->rank() < 3) continue;
    materialize_constant(model, conv.inputs[1], *const_cast<Tensor*>(w));  // an earlier round's fold
    const int64_t M = w->shape[0];
    const bool has_bias = conv.inputs.size() > 2 && !conv.inputs[2].empty();
    const DType t = w->dtype;
    const Tensor* cb = has_bias ? channel_vector(idx, conv.inputs[2], M, t) : nullptr;
    const Tensor* scale = channel_vector(idx, bn.inputs[1], M, t);
    const Tensor* shift = channel_vector(idx, bn.inputs[2], M, t);
    const Tensor* mean = channel_vector(idx, bn.inputs[3], M, t);
    const Tensor* var = channel_vector(idx, bn.inputs[4], M, t);
    if ((has_bias && !cb) || !scale || !shift || !mean || !var) continue;
    used[p] = used[k] = true;
    // W' is deferred when nothing else can touch W's bytes before the fold reads them: W is read
    // by this conv alone, is no graph input, and shares no bytes with another initializer.
    const std::string& wn = conv.inputs[1];
    bool defer = w->data && idx.only_read_by(wn, p) && !idx.is_graph_input(wn);
    if (defer && bytes.empty()) bytes = initializer_bytes(g);
    defer = defer && !overlaps_another(bytes, w);
    folds.push_back({p, k, w, cb, scale, shift, mean, var, bn.get_float("epsilon", 1e-5f), defer, {}, {}, {}, {}});
    if (!defer) eager_bytes += w->nbytes();
  }
  if (folds.empty()) return 0;
  // b' = (b - mean) * s + B for every fold, in one block: small, and read at run time.
  size_t bias_bytes = 0;
  for (const Fold& f : folds) bias_bytes += aligned64(f.w->shape[0] * dtype_size(f.w->dtype));
  std::shared_ptr<void> biases = alloc_load_block(bias_bytes);
  auto* bo = static_cast<uint8_t*>(biases.get());
  for (Fold& f : folds) {
    const int64_t M = f.w->shape[0];
    const bool half = f.w->dtype == DType::kF16;
    f.s.resize(M);
    for (int64_t m = 0; m < M; ++m) {
      f.s[m] = value_at(*f.scale, m) / std::sqrt(value_at(*f.var, m) + f.eps);
      const double b0 = f.cb ? value_at(*f.cb, m) : 0.0;
      const auto b = static_cast<float>((b0 - value_at(*f.mean, m)) * f.s[m] + value_at(*f.shift, m));
      if (half)
        reinterpret_cast<uint16_t*>(bo)[m] = float_to_half(b);
      else
        reinterpret_cast<float*>(bo)[m] = b;
    }
    f.b_out.dtype = f.w_out.dtype = f.w->dtype;
    f.b_out.shape = {M};
    f.b_out.data = bo;
    f.b_out.owner = biases;
    f.w_out.shape = f.w->shape;
    bo += aligned64(M * dtype_size(f.w->dtype));
    if (f.defer) {  // captures a copy of W's tensor now: the edits below may move the initializers
      f.deferred = std::make_shared<DeferredConstant>();
      f.deferred->compute = [w = *f.w, s = std::move(f.s), map_lo = model.mapped_data, map_size = model.mapped_size] {
        std::shared_ptr<void> block = alloc_load_block(w.nbytes());
        fold_weight(w, s, block.get());
        LoadPhase release_phase("weight release");
        release_mapped_weight(map_lo, map_size, w);  // read by this fold alone
        return block;
      };
    }
  }
  // The others now, each into a block of its own (malloc then reuses the blocks a previous
  // session freed); megabytes of them (ResNet-50 read from bytes) on the session's threads.
  std::vector<Fold*> eager;
  for (Fold& f : folds)
    if (!f.defer) {
      f.w_out.owner = alloc_load_block(f.w->nbytes());
      f.w_out.data = f.w_out.owner.get();
      eager.push_back(&f);
    }
  const int threads = eager_bytes >= kSpreadFromBytes ? model.load_threads : 1;
  run_spread(eager.size(), threads, [&](size_t j) { fold_weight(*eager[j]->w, eager[j]->s, eager[j]->w_out.data); });
  // The original weights nothing else reads give their file pages back now (not when the
  // session is done building): the folded copies replace them.
  for (const Fold* f : eager) {
    const std::string& wn = g.nodes[f->conv].inputs[1];
    if (idx.only_read_by(wn, f->conv) && !idx.is_graph_input(wn)) release_mapped_weight(model, *f->w);
  }
  // Edits after matching: new initializers may move the ones the index points into.
  FreshNames fresh(idx);
  std::vector<bool> dead(g.nodes.size(), false);
  for (Fold& f : folds) {
    Node& conv = g.nodes[f.conv];
    const std::string base = conv.name.empty() ? conv.outputs[0] : conv.name;
    const std::string wn = fresh(base + ".weight_bn");
    const std::string bnm = fresh(base + ".bias_bn");
    if (f.deferred) model.deferred[wn] = std::move(f.deferred);
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
