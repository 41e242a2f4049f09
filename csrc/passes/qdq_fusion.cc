// QDQ models (onnxruntime.quantization's QuantFormat.QDQ) into integer products:
//   DequantizeLinear(x) , DequantizeLinear(w) -> MatMul -> QuantizeLinear      => QLinearMatMul
//   DequantizeLinear(x) , DequantizeLinear(w const) [, DequantizeLinear(bias int32 const)]
//     -> Gemm -> QuantizeLinear                                                  => com.runnx QGemm
//     -> Conv -> QuantizeLinear                                                  => QLinearConv
// The integer op computes the exact int32 sum (plus the quantized bias) and requantizes once in
// float32; the float path sums dequantized floats and rounds on the way, so an output may differ
// by 1 where the float result lies near a rounding boundary (as with onnxruntime's own QDQ
// fusion). Conditions: 8-bit x and w with constant scalar scale/zero point on x and on the
// output, w's scale/zero point per tensor or per output column / channel (a constant w), a bias
// whose scale is a_scale * w_scale (what the quantizer writes) and whose zero point is 0, Gemm
// with alpha = beta = 1 and transA = 0, and the product read only by the QuantizeLinear.
#include <cmath>

#include "passes/graph_index.h"
#include "passes/pass.h"

namespace runnx {

namespace {

bool is_q8(DType t) { return t == DType::kI8 || t == DType::kU8; }

// The inputs of a DequantizeLinear / QuantizeLinear node: x, scale, zero point (all present).
struct QParams {
  std::string x, scale, zero;
  const Tensor* s = nullptr;  // constant scale (float32)
  const Tensor* z = nullptr;  // constant zero point
};

// A Q or DQ node with a constant float32 scale and a constant zero point of an 8-bit type (int32
// when `int32_zero`, for a bias), not blocked. `scalar`: per tensor only.
bool q_params(const Node& n, const GraphIndex& idx, bool scalar, bool int32_zero, QParams& p) {
  if (n.inputs.size() < 3 || n.inputs[1].empty() || n.inputs[2].empty() || n.get_int("block_size", 0) != 0)
    return false;
  p.x = n.inputs[0];
  p.scale = n.inputs[1];
  p.zero = n.inputs[2];
  p.s = idx.constant(p.scale);
  p.z = idx.constant(p.zero);
  if (!p.s || !p.z || p.s->dtype != DType::kF32 || p.z->numel() != p.s->numel()) return false;
  if (int32_zero ? p.z->dtype != DType::kI32 : !is_q8(p.z->dtype)) return false;
  return !scalar || p.s->numel() == 1;
}

// The DequantizeLinear producing `value`, or -1.
int dq_producer(const GraphIndex& idx, const Graph& g, const std::string& value) {
  const int k = idx.producer(value);
  return k >= 0 && is_onnx_op(g.nodes[k], "DequantizeLinear") ? k : -1;
}

// w's DQ: scale/zero point per tensor, or 1-D [N] along w's output axis `n_axis`.
bool weight_params(const Node& n, const GraphIndex& idx, int64_t n_axis, int64_t N, QParams& p) {
  if (!q_params(n, idx, false, false, p)) return false;
  if (p.s->numel() == 1) return true;
  const Tensor* w = idx.constant(p.x);
  int64_t axis = n.get_int("axis", 1);
  if (w && axis < 0) axis += w->rank();
  return w && axis == n_axis && p.s->rank() == 1 && p.s->numel() == N;
}

// The bias DQ: int32 constant [N], zero point 0, scale a_scale * w_scale (per tensor or column).
bool bias_params(const Node& n, const GraphIndex& idx, const QParams& a, const QParams& w, int64_t N) {
  QParams p;
  if (!q_params(n, idx, false, true, p)) return false;
  const Tensor* b = idx.constant(p.x);
  if (!b || b->dtype != DType::kI32 || b->rank() != 1 || b->numel() != N) return false;
  if (p.s->numel() != 1 && p.s->numel() != N) return false;
  for (int64_t i = 0; i < p.z->numel(); ++i)
    if (p.z->ptr<int32_t>()[i] != 0) return false;
  const float as = *a.s->ptr<float>();
  for (int64_t c = 0; c < N; ++c) {
    const float want = as * w.s->ptr<float>()[w.s->numel() == 1 ? 0 : c];
    const float got = p.s->ptr<float>()[p.s->numel() == 1 ? 0 : c];
    if (std::fabs(got - want) > 1e-6f * std::fabs(want)) return false;
  }
  return true;
}

}  // namespace

int pass_qdq_fusion(Model& model) {
  Graph& g = model.graph;
  GraphIndex idx(g);
  FreshNames fresh(idx);
  std::vector<bool> dead(g.nodes.size(), false);
  std::vector<Node> added;
  bool runnx_op = false;
  for (int k = 0; k < static_cast<int>(g.nodes.size()); ++k) {
    const Node& n = g.nodes[k];
    const bool matmul = is_onnx_op(n, "MatMul"), gemm = is_onnx_op(n, "Gemm"), conv = is_onnx_op(n, "Conv");
    if ((!matmul && !gemm && !conv) || n.inputs.size() < 2 || n.outputs.size() != 1 || dead[k]) continue;
    // Grouped convolutions stay float: QLinearConv runs them as one small GEMM per group, which
    // measured slower than the float depthwise kernels (MobileNetV2 QDQ, 4x), and CUDA has no
    // grouped int8 kernel.
    if (conv && n.get_int("group", 1) != 1) continue;
    const bool trans_b = gemm && n.get_int("transB", 0) != 0;
    if (gemm && (n.get_int("transA", 0) != 0 || n.get_float("alpha", 1.f) != 1.f ||
                 (n.inputs.size() > 2 && !n.inputs[2].empty() && n.get_float("beta", 1.f) != 1.f)))
      continue;
    const int qa = dq_producer(idx, g, n.inputs[0]), qw = dq_producer(idx, g, n.inputs[1]);
    const int qy = sole_consumer(idx, n.outputs[0]);
    if (qa < 0 || qw < 0 || qy < 0 || !is_onnx_op(g.nodes[qy], "QuantizeLinear") || dead[qy] ||
        g.nodes[qy].inputs[0] != n.outputs[0])
      continue;
    QParams a, w, y;
    if (!q_params(g.nodes[qa], idx, true, false, a) || !q_params(g.nodes[qy], idx, true, false, y)) continue;
    // N (output columns or channels) from a constant w (2-D, or a conv's [M, C/group, k...]); a
    // computed w (MatMul only) needs per-tensor parameters.
    const Tensor* wt = idx.constant(g.nodes[qw].inputs[0]);
    if (wt && (conv ? wt->rank() < 3 : wt->rank() != 2)) continue;
    if (wt && !is_q8(wt->dtype)) continue;
    if (!matmul && !wt) continue;
    const int64_t n_axis = conv || trans_b ? 0 : 1;
    const int64_t N = wt ? wt->shape[n_axis] : 0;
    if (!weight_params(g.nodes[qw], idx, n_axis, N, w)) continue;
    if (!wt && w.s->numel() != 1) continue;
    std::string bias;
    if (!matmul && n.inputs.size() > 2 && !n.inputs[2].empty()) {
      const int qb = dq_producer(idx, g, n.inputs[2]);
      if (qb < 0 || !bias_params(g.nodes[qb], idx, a, w, N)) continue;
      bias = g.nodes[qb].inputs[0];
    }
    Node fused;
    fused.op_type = gemm ? "QGemm" : conv ? "QLinearConv" : "QLinearMatMul";
    fused.domain = gemm ? kRunnxDomain : "";
    fused.inputs = {a.x, a.scale, a.zero, w.x, w.scale, w.zero};
    if (gemm) {
      fused.inputs.push_back(bias);
      if (trans_b) fused.attrs.push_back(int_attr("transB", 1));
    }
    fused.inputs.push_back(y.scale);
    fused.inputs.push_back(y.zero);
    if (conv) {
      if (!bias.empty()) fused.inputs.push_back(bias);
      fused.attrs = n.attrs;  // the window attributes are QLinearConv's too
    }
    fused.outputs = {g.nodes[qy].outputs[0]};
    fused.name = fresh((n.name.empty() ? fused.op_type : n.name) + "_quant");
    dead[k] = dead[qy] = true;
    runnx_op |= gemm;
    added.push_back(std::move(fused));
  }
  return replace_with_fused(model, dead, std::move(added), runnx_op);
}

}  // namespace runnx
