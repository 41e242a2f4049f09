// Inference for runnx's NhwcConv (com.runnx, made by the nhwc_layout pass): FusedConv's shape
// rule on channels-last dims. X is [N, H, W, C] ([N, C, H, W] when nchw_input=1), W [M, C/g,
// KH, KW]; Y is [N, OH, OW, M], broadcast with the residual Z when there is one.
// NhwcDwProject (nhwc_dw_project_fusion) follows the same rule with its depthwise attributes,
// after its folded expansion's (input 6, attributes expand_*) when that is a k x k stem.
#include "infer/infer.h"

namespace runnx {

namespace {

// The spatial output dims of a window with attributes `prefix` + kernel_shape / strides /
// dilations / pads / auto_pad over spatial input dims `in` (kernel from W's dims when unset).
std::vector<SymDim> window_out(const Node& node, const std::string& prefix,
                               const std::vector<SymDim>& in, const std::vector<SymDim>& w) {
  const std::vector<int64_t> kattr = node.get_ints(prefix + "kernel_shape");
  const std::vector<int64_t> strides = node.get_ints(prefix + "strides");
  const std::vector<int64_t> dil = node.get_ints(prefix + "dilations");
  const std::vector<int64_t> pads = node.get_ints(prefix + "pads");
  const std::string auto_pad = node.get_string(prefix + "auto_pad", "NOTSET");
  std::vector<SymDim> out;
  for (size_t i = 0; i < 2; ++i) {
    const SymDim k = kattr.size() == 2 ? SymDim(kattr[i]) : w[2 + i];
    const int64_t s = strides.size() == 2 ? strides[i] : 1;
    const int64_t d = dil.size() == 2 ? dil[i] : 1;
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      out.push_back(ceil_div(in[i], s));
    } else {
      const bool explicit_pads = auto_pad != "VALID" && pads.size() == 4;
      const int64_t pb = explicit_pads ? pads[i] : 0, pe = explicit_pads ? pads[i + 2] : 0;
      out.push_back(floor_div(in[i] + (pb + pe) - ((k - 1) * d + 1), s) + 1);
    }
  }
  return out;
}

void nhwc_conv(InferContext& ctx) {
  const DType t = same_dtype(ctx, {0, 1});
  const std::vector<SymDim>* x = ctx.dims(0);
  const std::vector<SymDim>* w = ctx.dims(1);
  if (!x || !w) return ctx.set_output_unknown_shape(0, t);
  ctx.check(x->size() == 4 && w->size() == 4, "X and W must have rank 4");
  const Node& node = ctx.node();
  std::string prefix;  // whose nchw_input says X's layout
  std::vector<SymDim> spatial;
  if (node.op_type == "NhwcDwProject" && ctx.has_input(6)) {
    const std::vector<SymDim>* we = ctx.dims(6);
    if (!we) return ctx.set_output_unknown_shape(0, t);
    ctx.check(we->size() == 4, "the expansion's W must have rank 4");
    prefix = "expand_";
  }
  const bool nchw = node.get_int(prefix + "nchw_input", 0) != 0;
  spatial = {(*x)[nchw ? 2 : 1], (*x)[nchw ? 3 : 2]};
  if (!prefix.empty()) spatial = window_out(node, prefix, spatial, *ctx.dims(6));
  std::vector<SymDim> out = {(*x)[0]};
  for (SymDim& d : window_out(node, "", spatial, *w)) out.push_back(d);
  out.push_back((*w)[0]);
  if (ctx.has_input(3)) {
    const std::vector<SymDim>* z = ctx.dims(3);
    if (!z) return ctx.set_output_unknown_shape(0, t);
    ctx.check(z->size() <= 4, "Z must have rank <= 4");
    for (size_t i = 0; i < z->size(); ++i) {
      SymDim& o = out[4 - z->size() + i];
      o = broadcast(o, (*z)[i]);
    }
  }
  ctx.set_output(0, t, std::move(out));
}

}  // namespace

void register_nhwc_conv_infer(InferRegistry& r) {
  r.add("NhwcConv", "com.runnx", nhwc_conv);
  // Its projection's W, B, Z sit at NhwcConv's slots and kernel_shape is always set.
  r.add("NhwcDwProject", "com.runnx", nhwc_conv);
}

}  // namespace runnx
