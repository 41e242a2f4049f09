// Inference for runnx's NhwcConv (com.runnx, made by the nhwc_layout pass): FusedConv's shape
// rule on channels-last dims. X is [N, H, W, C] ([N, C, H, W] when nchw_input=1), W [M, C/g,
// KH, KW]; Y is [N, OH, OW, M], broadcast with the residual Z when there is one.
#include "infer/infer.h"

namespace runnx {

namespace {

void nhwc_conv(InferContext& ctx) {
  const DType t = same_dtype(ctx, {0, 1});
  const std::vector<SymDim>* x = ctx.dims(0);
  const std::vector<SymDim>* w = ctx.dims(1);
  if (!x || !w) return ctx.set_output_unknown_shape(0, t);
  ctx.check(x->size() == 4 && w->size() == 4, "X and W must have rank 4");
  const bool nchw = ctx.node().get_int("nchw_input", 0) != 0;
  const std::vector<int64_t> kattr = ctx.node().get_ints("kernel_shape");
  const std::vector<int64_t> strides = ctx.node().get_ints("strides");
  const std::vector<int64_t> dil = ctx.node().get_ints("dilations");
  const std::vector<int64_t> pads = ctx.node().get_ints("pads");
  const std::string auto_pad = ctx.node().get_string("auto_pad", "NOTSET");
  std::vector<SymDim> out = {(*x)[0]};
  for (size_t i = 0; i < 2; ++i) {
    const SymDim k = kattr.size() == 2 ? SymDim(kattr[i]) : (*w)[2 + i];
    const int64_t s = strides.size() == 2 ? strides[i] : 1;
    const int64_t d = dil.size() == 2 ? dil[i] : 1;
    const SymDim& in = (*x)[(nchw ? 2 : 1) + i];
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      out.push_back(ceil_div(in, s));
    } else {
      const bool explicit_pads = auto_pad != "VALID" && pads.size() == 4;
      const int64_t pb = explicit_pads ? pads[i] : 0, pe = explicit_pads ? pads[i + 2] : 0;
      out.push_back(floor_div(in + (pb + pe) - ((k - 1) * d + 1), s) + 1);
    }
  }
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
