// Inference for the ops that resize or pad: Resize (opset 10: scales in input 1; 11+: roi,
// scales, sizes in inputs 1-3; 18+: axes and keep_aspect_ratio_policy), Upsample (scales as an
// attribute before opset 9, input 1 from 9) and Pad (pads as an attribute before opset 11, then
// inputs pads / constant_value / axes (18+)).
//
// Scales are float constants (ctx.constant); out = floor(scale * in). For a symbolic `in` that
// is exact only when the scale is a dyadic fraction p / 2^e (2, 0.5, 1.5, ...), which then gives
// floor(in * p / 2^e); other scales leave the dim unknown. Sizes and pads are tracked integers
// and may be symbolic themselves.
#include <cmath>
#include <optional>
#include <string>

#include "infer/infer.h"

namespace runnx {

namespace {

// A float or double constant's values.
std::optional<std::vector<double>> float_constant(const Tensor* t) {
  if (!t || (t->numel() > 0 && !t->data)) return std::nullopt;
  std::vector<double> v;
  if (t->dtype == DType::kF32)
    for (int64_t i = 0; i < t->numel(); ++i) v.push_back(t->ptr<float>()[i]);
  else if (t->dtype == DType::kF64)
    for (int64_t i = 0; i < t->numel(); ++i) v.push_back(t->ptr<double>()[i]);
  else
    return std::nullopt;
  return v;
}

// floor(scale * in) as the kernel computes it (in doubles).
SymDim scaled(const SymDim& in, double scale) {
  if (in.is_const()) {
    const double o = std::floor(scale * static_cast<double>(in.value()));
    return o < 9.0e18 ? SymDim(static_cast<int64_t>(o)) : SymDim::unknown();  // too large: the kernel says so
  }
  for (int64_t q = 1; q <= (int64_t{1} << 20); q *= 2) {
    const double p = scale * static_cast<double>(q);
    if (p == std::floor(p) && p <= static_cast<double>(int64_t{1} << 31))
      return floor_div(in * static_cast<int64_t>(p), q);
  }
  return SymDim::unknown();
}

// Whether input i is given and, at load, known to be empty / non-empty.
enum class Given { kNo, kEmpty, kNonEmpty, kUnknown };

Given given(const InferContext& ctx, int i) {
  if (!ctx.has_input(i)) return Given::kNo;
  const SymDim n = ctx.input(i).numel();
  if (!n.is_const()) return Given::kUnknown;
  return n.value() == 0 ? Given::kEmpty : Given::kNonEmpty;
}

void resize(InferContext& ctx) {
  const Node& node = ctx.node();
  const InferredType& x = ctx.input(0);
  if (!x.has_shape) return ctx.set_output_unknown_shape(0, x.dtype);
  const int64_t r = x.rank(), opset = ctx.opset();
  const bool upsample = node.op_type == "Upsample";

  // Which axes are resized.
  std::vector<int64_t> axes;
  if (!upsample && opset >= 18 && node.has_attr("axes")) {
    std::vector<bool> seen(r, false);
    for (int64_t a : node.get_ints("axes")) {
      const int64_t k = infer_axis(ctx, a, r);
      ctx.check(!seen[k], "axis ", a, " is repeated");
      seen[k] = true;
      axes.push_back(k);
    }
  } else {
    for (int64_t k = 0; k < r; ++k) axes.push_back(k);
  }
  const size_t na = axes.size();

  // Scales or sizes; neither known: the resized axes are unknown.
  std::optional<std::vector<double>> scales;
  std::optional<std::vector<SymDim>> sizes;
  bool known = true;
  if (upsample && opset < 9) {
    if (!node.has_attr("scales")) return ctx.set_output(0, x.dtype, std::vector<SymDim>(r, SymDim::unknown()));
    const std::vector<float> s = node.get_floats("scales");
    scales = std::vector<double>(s.begin(), s.end());
  } else if (upsample || opset < 11) {
    scales = float_constant(ctx.constant(1));
    known = scales.has_value();
  } else {
    const Given gs = given(ctx, 2), gz = given(ctx, 3);
    const bool has_s = gs == Given::kNonEmpty, has_z = gz == Given::kNonEmpty;
    const bool no_s = gs == Given::kNo || gs == Given::kEmpty, no_z = gz == Given::kNo || gz == Given::kEmpty;
    ctx.check(!(has_s && has_z) && !(no_s && no_z), "exactly one of scales and sizes must be given (non-empty)");
    if (has_s || (no_z && gs == Given::kUnknown)) {
      scales = float_constant(ctx.constant(2));
    } else if (has_z || (no_s && gz == Given::kUnknown)) {
      if (const std::vector<SymDim>* v = ctx.values(3)) sizes = *v;
    }
    known = scales.has_value() || sizes.has_value();
  }
  std::vector<SymDim> out = x.dims;
  if (!known) {
    // A run-time scales / sizes tensor of a fixed length must still have one entry per axis.
    const int in = upsample || opset < 11 ? 1 : (given(ctx, 2) == Given::kNonEmpty ? 2 : 3);
    const std::vector<SymDim>* d = ctx.dims(in);
    if (d && d->size() == 1 && (*d)[0].is_const() && (*d)[0].value() > 0)
      ctx.check((*d)[0].value() == static_cast<int64_t>(na), in == 3 ? "sizes" : "scales", " must have ", na,
                " entries (input shape ", dims_str(x.dims), ")");
    for (int64_t a : axes) out[a] = SymDim::unknown();
    return ctx.set_output(0, x.dtype, std::move(out));
  }
  const size_t count = scales ? scales->size() : sizes->size();
  ctx.check(count == na, scales ? "scales" : "sizes", " must have ", na, " entries (input shape ", dims_str(x.dims),
            ")");
  if (scales) {
    for (size_t i = 0; i < na; ++i) {
      const double s = (*scales)[i];
      ctx.check(s > 0 && std::isfinite(s), "scale ", s, " must be positive");
      out[axes[i]] = scaled(x.dims[axes[i]], s);
    }
    return ctx.set_output(0, x.dtype, std::move(out));
  }
  for (size_t i = 0; i < na; ++i) {
    const SymDim &z = (*sizes)[i], &in = x.dims[axes[i]];
    ctx.check(!z.is_const() || z.value() >= 0, "negative size ", z.str());
    ctx.check(!(in.is_const() && in.value() == 0 && z.is_const() && z.value() > 0), "cannot resize the empty axis ",
              axes[i], " to ", z.str());
    out[axes[i]] = z;
  }
  const std::string policy = opset >= 18 ? node.get_string("keep_aspect_ratio_policy", "stretch") : "stretch";
  if (policy == "not_larger" || policy == "not_smaller") {
    // One scale for every axis (the smallest or largest of sizes / in), then round(scale * in).
    bool all_const = true;
    for (size_t i = 0; i < na; ++i) all_const = all_const && (*sizes)[i].is_const() && x.dims[axes[i]].is_const();
    if (!all_const) {
      for (int64_t a : axes) out[a] = SymDim::unknown();
    } else {
      auto scale_of = [&](size_t i) {
        const int64_t in = x.dims[axes[i]].value();
        return in > 0 ? static_cast<double>((*sizes)[i].value()) / static_cast<double>(in) : 1.0;
      };
      double s = scale_of(0);
      for (size_t i = 0; i < na; ++i) s = policy == "not_larger" ? std::min(s, scale_of(i)) : std::max(s, scale_of(i));
      for (int64_t a : axes)
        out[a] = static_cast<int64_t>(s * static_cast<double>(x.dims[a].value()) + 0.5);
    }
  }
  ctx.set_output(0, x.dtype, std::move(out));
}

constexpr int64_t kHugePad = int64_t{1} << 48;

void pad(InferContext& ctx) {
  const Node& node = ctx.node();
  const InferredType& x = ctx.input(0);
  if (!x.has_shape) return ctx.set_output_unknown_shape(0, x.dtype);
  const int64_t r = x.rank();
  std::vector<SymDim> out = x.dims;
  auto all_unknown = [&](const std::vector<int64_t>& which) {
    for (int64_t k : which) out[k] = SymDim::unknown();
    ctx.set_output(0, x.dtype, out);
  };
  std::vector<int64_t> every;
  for (int64_t k = 0; k < r; ++k) every.push_back(k);

  // Which axes are padded.
  std::vector<int64_t> axes = every;
  if (ctx.opset() >= 18 && ctx.has_input(3)) {
    auto a = ctx.ints(3);
    if (!a) return all_unknown(every);
    if (!a->empty()) axes = *a;
  }
  const size_t na = axes.size();
  std::vector<bool> seen(r, false);
  for (int64_t& a : axes) {
    const int64_t k = infer_axis(ctx, a, r);
    ctx.check(!seen[k], "axis ", a, " is repeated");
    seen[k] = true;
    a = k;
  }

  // The pads: begin values for each axis, then end values.
  std::vector<SymDim> pads;
  if (ctx.opset() < 11) {
    if (!node.has_attr("pads")) return all_unknown(axes);  // the kernel refuses the node
    for (int64_t p : node.get_ints("pads")) pads.push_back(p);
  } else {
    const InferredType& p = ctx.input(1);
    if (p.has_shape) {
      ctx.check(p.rank() == 1, "pads must be 1-D, got ", dims_str(p.dims));
      ctx.check(!p.dims[0].is_const() || p.dims[0].value() == static_cast<int64_t>(2 * na), "pads ",
                dims_str(p.dims), " must have 2 entries per padded axis (", na, " axes, input shape ",
                dims_str(x.dims), ")");
    }
    const std::vector<SymDim>* v = ctx.values(1);
    if (!v) return all_unknown(axes);
    pads = *v;
  }
  ctx.check(pads.size() == 2 * na, "pads ", dims_str(pads), " must have 2 entries per padded axis (", na,
            " axes, input shape ", dims_str(x.dims), ")");
  const bool constant_mode = node.get_string("mode", "constant") == "constant";
  for (size_t i = 0; i < na; ++i) {
    const int64_t k = axes[i];
    const SymDim &b = pads[i], &e = pads[na + i], &dim = x.dims[k];
    // Pads beyond any tensor size: the kernel refuses them (without overflowing the sum).
    auto huge = [](const SymDim& v) { return v.is_const() && (v.value() > kHugePad || v.value() < -kHugePad); };
    if (huge(b) || huge(e)) {
      out[k] = SymDim::unknown();
      continue;
    }
    const SymDim o = dim + (b + e);
    ctx.check(!o.is_const() || o.value() >= 0, "pads ", dims_str(pads), " remove more than the ", dim.str(),
              " elements of axis ", k);
    const bool padded = (b.is_const() && b.value() > 0) || (e.is_const() && e.value() > 0);
    ctx.check(constant_mode || !padded || !dim.is_const() || dim.value() > 0, "cannot pad the empty axis ", k,
              " in this mode");
    out[k] = o;
  }
  ctx.set_output(0, x.dtype, std::move(out));
}

}  // namespace

void register_resize_pad_infer(InferRegistry& r) {
  r.add("Resize", "", resize);
  r.add("Upsample", "", resize);
  r.add("Pad", "", pad);
}

}  // namespace runnx
