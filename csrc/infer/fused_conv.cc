// Inference for runnx's FusedConv (com.runnx): Conv's output shape, broadcast with the residual
// input Z when there is one (the Add it replaced could broadcast).
#include "infer/infer.h"

namespace runnx {

namespace {

void fused_conv(InferContext& ctx) {
  const DType t = same_dtype(ctx, {0, 1});
  const std::vector<SymDim>* x = ctx.dims(0);
  const std::vector<SymDim>* w = ctx.dims(1);
  if (!x || !w) return ctx.set_output_unknown_shape(0, t);
  ctx.check(x->size() >= 3 && w->size() == x->size(), "X and W must have the same rank >= 3");
  const size_t n = x->size() - 2;
  const std::vector<int64_t> kattr = ctx.node().get_ints("kernel_shape");
  const std::vector<int64_t> strides = ctx.node().get_ints("strides");
  const std::vector<int64_t> dil = ctx.node().get_ints("dilations");
  const std::vector<int64_t> pads = ctx.node().get_ints("pads");
  const std::string auto_pad = ctx.node().get_string("auto_pad", "NOTSET");
  std::vector<SymDim> out = {(*x)[0], (*w)[0]};
  for (size_t i = 0; i < n; ++i) {
    SymDim k = kattr.size() == n ? SymDim(kattr[i]) : (*w)[2 + i];
    const int64_t s = strides.size() == n ? strides[i] : 1;
    const int64_t d = dil.size() == n ? dil[i] : 1;
    const SymDim& in = (*x)[2 + i];
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      out.push_back(ceil_div(in, s));
    } else {
      const int64_t pb = auto_pad == "VALID" || pads.size() != 2 * n ? 0 : pads[i];
      const int64_t pe = auto_pad == "VALID" || pads.size() != 2 * n ? 0 : pads[i + n];
      out.push_back(floor_div(in + (pb + pe) - ((k - 1) * d + 1), s) + 1);
    }
  }
  if (ctx.has_input(3)) {
    const std::vector<SymDim>* z = ctx.dims(3);
    if (!z) return ctx.set_output_unknown_shape(0, t);
    const size_t rank = std::max(out.size(), z->size());
    std::vector<SymDim> b(rank, SymDim(1));
    for (size_t i = 0; i < out.size(); ++i) b[rank - out.size() + i] = out[i];
    for (size_t i = 0; i < z->size(); ++i) {
      SymDim& o = b[rank - z->size() + i];
      o = broadcast(o, (*z)[i]);
    }
    out = std::move(b);
  }
  ctx.set_output(0, t, std::move(out));
}

}  // namespace

void register_fused_conv_infer(InferRegistry& r) { r.add("FusedConv", "com.runnx", fused_conv); }

}  // namespace runnx
