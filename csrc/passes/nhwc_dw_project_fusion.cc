// Depthwise conv + 1x1 projection in one node (level 99, after nhwc_layout): MobileNet's inverted
// residual block ends with NhwcConv(depthwise, act) -> NhwcConv(1x1 [+ Z]). Fused, the kernel
// computes a band of depthwise output rows into a per-thread scratch that stays in L2 and runs
// the projection's GEMM on it straight away, so the wide expanded tensor (96-960 channels) is
// never written to memory and read back (at batch 32 those tensors are 10-60 MB each and went
// through DRAM twice).
//
//   d = NhwcConv(x, w_dw, b_dw; group = C, activation a)     (d read by this 1x1 only)
//   y = NhwcConv(d, w_p, b_p, z; 1x1, stride 1, no pads, no activation)
//   ->  y = NhwcDwProject(x, w_p, b_p, z, w_dw, b_dw; the depthwise attributes)
//
// The inputs sit where NhwcConv has them for the projection (W at 1, B at 2, Z at 3), and
// kernel_shape is always set from w_dw, so NhwcConv's shape inference gives the output. A
// projection with an activation (not MobileNet's linear bottleneck) is left alone.
//
// When x itself comes from the block's 1x1 expansion, read by nothing else, that conv is folded
// in too and the whole inverted residual block becomes one node (x never exists whole either):
//   x = NhwcConv(u, w_e, b_e; 1x1, stride 1, no pads, activation a_e)
//   ->  y = NhwcDwProject(u, w_p, b_p, z, w_dw, b_dw, w_e, b_e; expand_activation = a_e, ...)
// So is a model's stem feeding the first block (a k x k conv on at most 4 input channels, NCHW
// or NHWC input, explicit pads: the direct kernel), its attributes kept as expand_strides,
// expand_pads, expand_dilations, expand_nchw_input.
#include "kernels/cpu/conv_simd.h"
#include "passes/graph_index.h"
#include "passes/pass.h"

namespace runnx {

namespace {

bool is_nhwc_conv(const Node& n) { return n.op_type == "NhwcConv" && n.domain == kRunnxDomain; }

const std::string& input_or_empty(const Node& n, size_t i) {
  static const std::string kEmpty;
  return i < n.inputs.size() ? n.inputs[i] : kEmpty;
}

bool is_depthwise(const Node& n, const GraphIndex& idx) {
  if (!is_nhwc_conv(n) || n.get_int("nchw_input", 0) != 0 || n.inputs.size() < 2) return false;
  if (!input_or_empty(n, 3).empty()) return false;  // a residual on the depthwise conv itself
  const Tensor* w = idx.constant(n.inputs[1]);
  return w && w->dtype == DType::kF32 && w->rank() == 4 && w->shape[1] == 1 &&
         n.get_int("group", 1) == w->shape[0] && w->shape[0] > 1;
}

bool all_equal(const std::vector<int64_t>& v, int64_t x) {
  for (int64_t e : v)
    if (e != x) return false;
  return true;
}

// A 1x1, stride 1, unpadded group-1 NhwcConv on `channels` inputs, without activation.
bool is_projection(const Node& n, const GraphIndex& idx, int64_t channels) {
  if (!is_nhwc_conv(n) || n.get_int("nchw_input", 0) != 0 || n.get_int("group", 1) != 1)
    return false;
  const Tensor* w = n.inputs.size() > 1 ? idx.constant(n.inputs[1]) : nullptr;
  if (!w || w->dtype != DType::kF32 || w->rank() != 4 || w->shape[1] != channels ||
      w->shape[2] != 1 || w->shape[3] != 1)
    return false;
  const std::string act = n.get_string("activation", "");
  const std::string pad = n.get_string("auto_pad", "NOTSET");
  return (act.empty() || act == "Identity") && (pad == "NOTSET" || pad == "VALID") &&
         all_equal(n.get_ints("strides"), 1) && all_equal(n.get_ints("pads"), 0);
}

// The conv making the depthwise input x, read only by the depthwise conv and without a
// residual, when it is a 1x1 expansion (stride 1, no pads, NHWC input) or a stem (k x k on at
// most kMaxStemChannels input channels and the direct kernel's tap limit, explicit pads, its
// kernel_shape (if set) W's): its node index, else -1. A stem the direct kernel cannot take
// stays an NhwcConv (im2col + sgemm).
constexpr int64_t kMaxStemChannels = 4;  // NhwcConv's direct path
int foldable_expansion(const GraphIndex& idx, const Graph& g, const Node& dw, int64_t channels) {
  const int e = idx.producer(dw.inputs[0]);
  if (e < 0 || sole_consumer(idx, dw.inputs[0]) < 0) return -1;
  const Node& n = g.nodes[e];
  if (!is_nhwc_conv(n) || !input_or_empty(n, 3).empty() || n.outputs.size() != 1) return -1;
  const Tensor* w = n.inputs.size() > 1 ? idx.constant(n.inputs[1]) : nullptr;
  if (n.get_int("group", 1) != 1 || !w || w->dtype != DType::kF32 || w->rank() != 4 ||
      w->shape[0] != channels)
    return -1;
  const std::string pad = n.get_string("auto_pad", "NOTSET");
  const bool pointwise = n.get_int("nchw_input", 0) == 0 && w->shape[2] == 1 &&
                         w->shape[3] == 1 && (pad == "NOTSET" || pad == "VALID") &&
                         all_equal(n.get_ints("strides"), 1) && all_equal(n.get_ints("pads"), 0);
  const std::vector<int64_t> kattr = n.get_ints("kernel_shape");
  const bool stem = w->shape[1] <= kMaxStemChannels && w->shape[2] * w->shape[3] > 1 &&
                    w->shape[1] * w->shape[2] * w->shape[3] <= DirectNhwcGeom::kMaxTaps &&
                    pad == "NOTSET" &&
                    (kattr.empty() || kattr == std::vector<int64_t>{w->shape[2], w->shape[3]});
  return pointwise || stem ? e : -1;
}

}  // namespace

int pass_nhwc_dw_project_fusion(Model& model) {
  Graph& g = model.graph;
  GraphIndex idx(g);
  std::vector<bool> dead(g.nodes.size(), false);
  std::vector<Node> added;
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    const Node& d = g.nodes[k];
    if (dead[k] || !is_depthwise(d, idx)) continue;
    const int p = sole_consumer(idx, d.outputs[0]);
    if (p < 0 || dead[p]) continue;
    const Node& proj = g.nodes[p];
    const Tensor* wdw = idx.constant(d.inputs[1]);
    if (!is_projection(proj, idx, wdw->shape[0]) || proj.inputs[0] != d.outputs[0]) continue;
    const std::vector<int64_t> kernel = {wdw->shape[2], wdw->shape[3]};
    const std::vector<int64_t> kattr = d.get_ints("kernel_shape");
    if (!kattr.empty() && kattr != kernel) continue;  // its own kernel reports the mismatch
    Node f;
    f.name = d.name + "+" + proj.name;
    f.op_type = "NhwcDwProject";
    f.domain = kRunnxDomain;
    f.inputs = {d.inputs[0],          proj.inputs[1], input_or_empty(proj, 2),
                input_or_empty(proj, 3), d.inputs[1],  input_or_empty(d, 2)};
    for (const Attribute& a : d.attrs)
      if (a.name != "kernel_shape") f.attrs.push_back(a);
    Attribute ks;
    ks.name = "kernel_shape";
    ks.type = Attribute::Type::kInts;
    ks.ints = kernel;
    f.attrs.push_back(std::move(ks));
    f.outputs = proj.outputs;
    const int e = foldable_expansion(idx, g, d, wdw->shape[0]);
    if (e >= 0 && !dead[e]) {
      const Node& ex = g.nodes[e];
      f.name = ex.name + "+" + f.name;
      f.inputs[0] = ex.inputs[0];
      f.inputs.push_back(ex.inputs[1]);
      f.inputs.push_back(input_or_empty(ex, 2));
      for (const Attribute& a : ex.attrs)
        if (a.name != "group" && a.name != "auto_pad" && a.name != "kernel_shape") {
          f.attrs.push_back(a);
          f.attrs.back().name = "expand_" + a.name;
        }
      dead[e] = true;
    }
    dead[k] = dead[p] = true;
    added.push_back(std::move(f));
  }
  if (added.empty()) return 0;
  return replace_with_fused(model, dead, std::move(added), true);
}

}  // namespace runnx
