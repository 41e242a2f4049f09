// Inference for the window ops: Conv, ConvTranspose, MaxPool (and its int64 Indices),
// AveragePool and the global pools (FusedConv is in fused_conv.cc). Spatial sizes are SymDim expressions, so a symbolic H/W stays symbolic:
// floor((H + pads - dilation*(k-1) - 1) / stride) + 1, ceil for ceil_mode (with the last window
// starting inside the padded input), ceil(H / stride) for SAME.
#include <string>

#include "infer/infer.h"

namespace runnx {

namespace {

// The window attributes. `ok` is false when they are malformed: the kernel reports that when it
// is created, so inference leaves the spatial sizes unknown rather than guessing.
struct Window {
  std::string auto_pad;
  std::vector<int64_t> kernel, strides, dilations, pads;
  bool ok = true;

  explicit Window(const Node& node) {
    auto_pad = node.get_string("auto_pad", "NOTSET");
    if (auto_pad.empty()) auto_pad = "NOTSET";
    kernel = node.get_ints("kernel_shape");
    strides = node.get_ints("strides");
    dilations = node.get_ints("dilations");
    pads = node.get_ints("pads");
    ok = auto_pad == "NOTSET" || auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER" || auto_pad == "VALID";
    for (int64_t v : kernel) ok = ok && v > 0;
    for (int64_t v : strides) ok = ok && v > 0;
    for (int64_t v : dilations) ok = ok && v > 0;
    for (int64_t v : pads) ok = ok && v >= 0;
    ok = ok && pads.size() % 2 == 0;
  }
  bool same() const { return auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER"; }
  int64_t stride(size_t i) const { return strides.empty() ? 1 : strides[i]; }
  int64_t dilation(size_t i) const { return dilations.empty() ? 1 : dilations[i]; }
  // Explicit pads at the start / end of spatial dim i (auto_pad NOTSET only).
  int64_t pad_begin(size_t i) const { return auto_pad == "NOTSET" && !pads.empty() ? pads[i] : 0; }
  int64_t pad_end(size_t i) const { return auto_pad == "NOTSET" && !pads.empty() ? pads[i + pads.size() / 2] : 0; }

  // Attribute lengths must agree with the number of spatial dims (the kernel's InvalidModel).
  void check_rank(const InferContext& ctx, size_t n) const {
    auto fits = [&](const std::vector<int64_t>& v, size_t want) { return v.empty() || v.size() == want; };
    ctx.check(fits(kernel, n) && fits(strides, n) && fits(dilations, n) && fits(pads, 2 * n),
              "kernel_shape/strides/dilations/pads lengths do not match ", n, " spatial dim(s)");
  }
};

// Output size of one spatial dim of Conv or a pool (window extent from kernel size k).
SymDim window_out(const InferContext& ctx, const Window& w, size_t i, const SymDim& in, const SymDim& k,
                  bool ceil_mode) {
  const int64_t s = w.stride(i);
  if (w.same()) return ceil_div(in, s);
  const int64_t pb = w.pad_begin(i), pe = w.pad_end(i);
  const SymDim extent = (k - 1) * w.dilation(i) + 1;
  const SymDim span = extent.is_const() ? in + (pb + pe - extent.value()) : (in + (pb + pe)) - extent;
  if (span.is_const() && span.value() < 0)
    ctx.fail("spatial dim ", i, " of size ", in.str(), " (padded by ", pb, "+", pe,
             ") is smaller than the window extent ", extent.str());
  if (!ceil_mode) return floor_div(span, s) + 1;
  // The last window must start inside the input or its leading pad: one window fewer when
  // (out - 1) * s >= in + pb (as PyTorch and onnxruntime, and the kernel).
  const SymDim out = ceil_div(span, s) + 1;
  const SymDim last_start_ok = floor_div(in + (pb - 1), s) + 1;
  if (extent.is_const() && pe < extent.value()) return min(out, last_start_ok);  // at most one fewer
  const SymDim overshoot = (out - 1) * s - (in + pb);  // >= 0: drop one
  return out - min(max(overshoot + 1, 0), 1);
}

// X [N, C, spatial...] and W [.., .., kernel...] must be of one rank >= 3 (when known).
void check_conv_ranks(const InferContext& ctx, const std::vector<SymDim>* x, const std::vector<SymDim>* wd,
                      const char* w_layout) {
  if (x || wd)
    ctx.check((!x || x->size() >= 3) && (!wd || wd->size() >= 3) && (!x || !wd || wd->size() == x->size()),
              "X must be [N, C, spatial...] and W ", w_layout, " of the same rank, got ",
              x ? dims_str(*x) : "?", " and ", wd ? dims_str(*wd) : "?");
}

// The output channel count M, checked against (and completed from) the bias B [M].
SymDim check_bias(const InferContext& ctx, const std::vector<SymDim>* b, SymDim M) {
  if (!b) return M;
  ctx.check(b->size() == 1, "B must have shape [", M.str(), "], got ", dims_str(*b));
  if (M.is_const() && (*b)[0].is_const())
    ctx.check(M.value() == (*b)[0].value(), "B must have shape [", M.str(), "], got ", dims_str(*b));
  return !M.is_const() && (*b)[0].is_const() ? (*b)[0] : M;
}

// Spatial kernel size i: W's dim, checked against (or taken from) the kernel_shape attribute.
SymDim kernel_dim(const InferContext& ctx, const Window& w, const std::vector<SymDim>* wd, size_t i, bool ok) {
  SymDim k = wd ? (*wd)[2 + i] : SymDim::unknown();
  if (w.kernel.empty() || !ok) return k;
  if (!k.is_const()) return w.kernel[i];
  ctx.check(k.value() == w.kernel[i], "kernel_shape attribute does not match W ", dims_str(*wd));
  return k;
}

// Conv: X [N, C, spatial...], W [M, C/group, kernel...], B [M].
void conv(InferContext& ctx) {
  const DType t = same_dtype(ctx, {0, 1, 2});
  const Node& node = ctx.node();
  const int64_t group = node.get_int("group", 1);
  const Window w(node);
  const std::vector<SymDim>* x = ctx.dims(0);
  const std::vector<SymDim>* wd = ctx.dims(1);
  const std::vector<SymDim>* b = ctx.has_input(2) ? ctx.dims(2) : nullptr;
  check_conv_ranks(ctx, x, wd, "[M, C/group, kernel...]");
  if (!x && !wd) return ctx.set_output_unknown_shape(0, t);
  const size_t rank = x ? x->size() : wd->size();
  const size_t n = rank - 2;
  if (w.ok) w.check_rank(ctx, n);
  SymDim M = wd ? (*wd)[0] : SymDim::unknown();
  if (group >= 1 && x && wd) {
    const SymDim &C = (*x)[1], &Cg = (*wd)[1];
    const SymDim want = Cg * group;
    ctx.check(!(C.is_const() && want.is_const() && C.value() != want.value()) &&
                  !(M.is_const() && M.value() % group != 0),
              "X ", dims_str(*x), " and W ", dims_str(*wd), " do not fit group=", group);
  }
  M = check_bias(ctx, b, M);
  std::vector<SymDim> out = {x ? (*x)[0] : SymDim::unknown(), M};
  for (size_t i = 0; i < n; ++i) {
    const SymDim k = kernel_dim(ctx, w, wd, i, w.ok);
    if (!x || !w.ok || group < 1) {
      out.push_back(SymDim::unknown());
      continue;
    }
    out.push_back(window_out(ctx, w, i, (*x)[2 + i], k, false));
  }
  ctx.set_output(0, t, std::move(out));
}

// ConvTranspose: X [N, C, spatial...], W [C, M/group, kernel...]; Y [N, M, out...] with
// out = stride*(in-1) + output_padding + dilation*(k-1) + 1 - pads, or output_shape / in*stride
// (SAME) when given.
void conv_transpose(InferContext& ctx) {
  const DType t = same_dtype(ctx, {0, 1, 2});
  const Node& node = ctx.node();
  const int64_t group = node.get_int("group", 1);
  const Window w(node);
  const std::vector<int64_t> out_pad = node.get_ints("output_padding");
  std::vector<int64_t> out_shape = node.get_ints("output_shape");
  const std::vector<SymDim>* x = ctx.dims(0);
  const std::vector<SymDim>* wd = ctx.dims(1);
  const std::vector<SymDim>* b = ctx.has_input(2) ? ctx.dims(2) : nullptr;
  check_conv_ranks(ctx, x, wd, "[C, M/group, kernel...]");
  if (!x && !wd) return ctx.set_output_unknown_shape(0, t);
  const size_t rank = x ? x->size() : wd->size();
  const size_t n = rank - 2;
  bool ok = w.ok && group >= 1;
  for (int64_t v : out_pad) ok = ok && v >= 0;
  if (ok) {
    w.check_rank(ctx, n);
    ctx.check(out_pad.empty() || out_pad.size() == n, "output_padding must have ", n, " values");
    if (out_shape.size() == n + 2) out_shape.erase(out_shape.begin(), out_shape.begin() + 2);
    ctx.check(out_shape.empty() || out_shape.size() == n, "output_shape must have ", n, " values");
  }
  SymDim M = wd && group >= 1 ? (*wd)[1] * group : SymDim::unknown();
  if (x && wd && group >= 1) {
    const SymDim &C = (*x)[1], &Cw = (*wd)[0];
    ctx.check(!(C.is_const() && Cw.is_const() && C.value() != Cw.value()) &&
                  !(C.is_const() && C.value() % group != 0) && !(Cw.is_const() && Cw.value() % group != 0),
              "X ", dims_str(*x), " and W ", dims_str(*wd), " do not fit group=", group);
  }
  M = check_bias(ctx, b, M);
  std::vector<SymDim> out = {x ? (*x)[0] : SymDim::unknown(), M};
  for (size_t i = 0; i < n; ++i) {
    const SymDim k = kernel_dim(ctx, w, wd, i, ok);
    if (!ok) {
      out.push_back(SymDim::unknown());
      continue;
    }
    SymDim o;
    if (!out_shape.empty()) {
      o = out_shape[i];
    } else if (!x) {
      o = SymDim::unknown();
    } else if (w.same()) {
      o = (*x)[2 + i] * w.stride(i);
    } else {
      const int64_t op = out_pad.empty() ? 0 : out_pad[i];
      // s*(in-1) + op + d*(k-1) + 1 - pads, as in*s plus one constant when k is known.
      const SymDim rest = (k - 1) * w.dilation(i) + (op + 1 - w.pad_begin(i) - w.pad_end(i) - w.stride(i));
      o = rest.is_const() ? ((*x)[2 + i] * w.stride(i) + rest) : (*x)[2 + i] * w.stride(i) + rest;
    }
    if (o.is_const() && o.value() < 0) ctx.fail("spatial dim ", i, " gets a negative output size ", o.value());
    out.push_back(o);
  }
  ctx.set_output(0, t, std::move(out));
}

// MaxPool / AveragePool: X [N, C, spatial...] with kernel_shape giving the spatial rank.
void pool(InferContext& ctx) {
  const Node& node = ctx.node();
  const InferredType& xt = ctx.input(0);
  const Window w(node);
  const bool ceil_mode = node.get_int("ceil_mode", 0) != 0;
  const size_t n = w.kernel.size();
  if (!xt.has_shape || n == 0) {  // without kernel_shape the kernel refuses the node itself
    ctx.set_output_unknown_shape(0, xt.dtype);
    if (ctx.has_output(1)) ctx.set_output_unknown_shape(1, DType::kI64);
    return;
  }
  const std::vector<SymDim>& x = xt.dims;
  ctx.check(x.size() == n + 2, "X of shape ", dims_str(x), " does not match a ", n, "-D kernel_shape");
  if (w.ok) w.check_rank(ctx, n);
  std::vector<SymDim> out = {x[0], x[1]};
  for (size_t i = 0; i < n; ++i)
    out.push_back(w.ok ? window_out(ctx, w, i, x[2 + i], w.kernel[i], ceil_mode) : SymDim::unknown());
  ctx.set_output(0, xt.dtype, out);
  if (ctx.has_output(1)) ctx.set_output(1, DType::kI64, out);
}

void global_pool(InferContext& ctx) {
  const InferredType& xt = ctx.input(0);
  if (!xt.has_shape) return ctx.set_output_unknown_shape(0, xt.dtype);
  ctx.check(xt.rank() >= 2, "X must be [N, C, spatial...], got ", dims_str(xt.dims));
  std::vector<SymDim> out = xt.dims;
  for (size_t i = 2; i < out.size(); ++i) out[i] = 1;
  ctx.set_output(0, xt.dtype, std::move(out));
}

}  // namespace

void register_conv_infer(InferRegistry& r) {
  r.add("Conv", "", conv);
  r.add("ConvTranspose", "", conv_transpose);
  r.add("MaxPool", "", pool);
  r.add("AveragePool", "", pool);
  r.add("GlobalAveragePool", "", global_pool);
  r.add("GlobalMaxPool", "", global_pool);
}

}  // namespace runnx
