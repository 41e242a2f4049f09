// Inference for ops that move or describe data rather than compute on it: Shape, Size, Reshape,
// Flatten, (Un)Squeeze, Identity, Dropout, Transpose, Concat, Split, Slice, Gather(Elements),
// Expand, Tile, ConstantOfShape, Range. These carry tracked contents through torch's shape
// arithmetic (Shape -> Gather -> Unsqueeze -> Concat -> Reshape).
#include <algorithm>
#include <climits>

#include "infer/infer.h"

namespace runnx {

namespace {

bool tracked_rank_ok(const InferredType& t) { return t.has_shape && t.rank() <= 1; }

void set_values(InferContext& ctx, int out, std::vector<SymDim> values) {
  if (!ctx.has_output(out) || values.size() > kMaxTrackedValues) return;
  InferredType& t = ctx.output(out);
  if (!tracked_rank_ok(t)) return;
  t.has_values = true;
  t.values = std::move(values);
}

// Input `in`'s contents, or its constant's contents when it is a small integer constant.
const std::vector<SymDim>* tracked(const InferContext& ctx, int in) { return ctx.values(in); }

void shape(InferContext& ctx) {
  const std::vector<SymDim>* d = ctx.dims(0);
  if (!d) return ctx.set_output_unknown_shape(0, DType::kI64);
  int64_t r = static_cast<int64_t>(d->size());
  int64_t start = ctx.opset() >= 15 ? ctx.node().get_int("start", 0) : 0;
  int64_t end = ctx.opset() >= 15 ? ctx.node().get_int("end", r) : r;
  auto clamp = [r](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + r : v, 0, r); };
  start = clamp(start);
  end = std::max(clamp(end), start);
  std::vector<SymDim> values(d->begin() + start, d->begin() + end);
  ctx.set_output(0, DType::kI64, {SymDim(end - start)});
  set_values(ctx, 0, std::move(values));
}

void size(InferContext& ctx) {
  ctx.set_output(0, DType::kI64, {});
  set_values(ctx, 0, {ctx.input(0).numel()});
}

void identity(InferContext& ctx) { pass_through(ctx, 0, 0); }

void dropout(InferContext& ctx) {
  pass_through(ctx, 0, 0);
  if (ctx.has_output(1)) like_input(ctx, 0, 1, ctx.opset() >= 10 ? DType::kBool : ctx.input(0).dtype);
}

// num / den for two products of dims, cancelling factors that appear on both sides.
SymDim divide_products(std::vector<SymDim> num, std::vector<SymDim> den) {
  int64_t cn = 1, cd = 1;
  std::vector<SymDim> n, d;
  for (const SymDim& f : num)
    for (const SymDim& x : f.factors()) x.is_const() ? void(cn *= x.value()) : n.push_back(x);
  for (const SymDim& f : den)
    for (const SymDim& x : f.factors()) x.is_const() ? void(cd *= x.value()) : d.push_back(x);
  for (auto it = d.begin(); it != d.end();) {
    auto m = std::find_if(n.begin(), n.end(), [&](const SymDim& y) { return !y.is_unknown() && y.same_as(*it); });
    if (m == n.end()) {
      ++it;
      continue;
    }
    n.erase(m);
    it = d.erase(it);
  }
  if (d.empty() && cd != 0 && cn % cd == 0) {
    SymDim r(cn / cd);
    for (const SymDim& x : n) r = r * x;
    return r;
  }
  SymDim a(cn), b(cd);
  for (const SymDim& x : n) a = a * x;
  for (const SymDim& x : d) b = b * x;
  return floor_div(a, b);
}

void reshape(InferContext& ctx) {
  const InferredType& x = ctx.input(0);
  const InferredType& s = ctx.input(1);
  const std::vector<SymDim>* spec = tracked(ctx, 1);
  if (!spec) {
    // The target's length fixes the rank even when its values come at run time.
    if (s.has_shape && s.rank() == 1 && s.dims[0].is_const()) {
      std::vector<SymDim> dims;
      for (int64_t k = 0; k < s.dims[0].value(); ++k) dims.push_back(SymDim::unknown());
      return ctx.set_output(0, x.dtype, std::move(dims));
    }
    return ctx.set_output_unknown_shape(0, x.dtype);
  }
  const bool allowzero = ctx.opset() >= 14 && ctx.node().get_int("allowzero", 0) != 0;
  std::vector<SymDim> out;
  int infer_at = -1;
  std::vector<SymDim> known;
  for (size_t i = 0; i < spec->size(); ++i) {
    SymDim v = (*spec)[i];
    if (v.is_const() && v.value() == -1) {
      ctx.check(infer_at < 0, "the target shape has more than one -1");
      infer_at = static_cast<int>(i);
      out.push_back(SymDim::unknown());
      continue;
    }
    if (v.is_const() && v.value() == 0 && !allowzero) {
      if (!x.has_shape) return ctx.set_output_unknown_shape(0, x.dtype);
      ctx.check(i < x.dims.size(), "the target shape copies dim ", i, " but the input has rank ", x.rank());
      v = x.dims[i];
    }
    ctx.check(!v.is_const() || v.value() >= 0, "invalid dim ", v.value(), " in the target shape");
    out.push_back(v);
    known.push_back(v);
  }
  if (x.has_shape) {
    if (infer_at >= 0) out[infer_at] = divide_products(x.dims, known);
    SymDim in_n = x.numel(), out_n = 1;
    for (const SymDim& d : out) out_n = out_n * d;
    ctx.check(!(in_n.is_const() && out_n.is_const()) || in_n.value() == out_n.value(), "cannot reshape ",
              x.str(), " (", in_n.str(), " elements) to a shape of ", out_n.str(), " elements");
  }
  ctx.set_output(0, x.dtype, std::move(out));
  if (x.has_values) set_values(ctx, 0, x.values);
}

void flatten(InferContext& ctx) {
  const InferredType& x = ctx.input(0);
  if (!x.has_shape) return ctx.set_output_unknown_shape(0, x.dtype);
  int64_t r = x.rank(), axis = ctx.node().get_int("axis", 1);
  ctx.check(axis >= -r && axis <= r, "axis ", axis, " is out of range for rank ", r);
  if (axis < 0) axis += r;
  SymDim a = 1, b = 1;
  for (int64_t k = 0; k < r; ++k) (k < axis ? a : b) = (k < axis ? a : b) * x.dims[k];
  ctx.set_output(0, x.dtype, {a, b});
  if (x.has_values) set_values(ctx, 0, x.values);
}

// Axes from the attribute (before opset 13) or from input 1; false when not known at load.
bool axes_of(const InferContext& ctx, std::vector<int64_t>& axes, bool& present) {
  if (ctx.opset() < 13) {
    present = ctx.node().has_attr("axes");
    axes = ctx.node().get_ints("axes");
    return true;
  }
  present = ctx.has_input(1);
  if (!present) return true;
  auto v = ctx.ints(1);
  if (!v) return false;
  axes = *v;
  return true;
}

void squeeze(InferContext& ctx) {
  const InferredType& x = ctx.input(0);
  std::vector<int64_t> axes;
  bool present = false;
  if (!x.has_shape || !axes_of(ctx, axes, present)) return ctx.set_output_unknown_shape(0, x.dtype);
  std::vector<bool> drop(x.rank(), false);
  if (!present || axes.empty()) {
    for (int64_t k = 0; k < x.rank(); ++k) {
      // A symbolic dim might be 1 at run time: the rank is then not known at load.
      if (!x.dims[k].is_const()) return ctx.set_output_unknown_shape(0, x.dtype);
      drop[k] = x.dims[k].value() == 1;
    }
  } else {
    for (int64_t a : axes) {
      int64_t k = infer_axis(ctx, a, x.rank());
      ctx.check(!drop[k], "axis ", a, " is repeated");
      ctx.check(!x.dims[k].is_const() || x.dims[k].value() == 1, "cannot squeeze axis ", a, " of size ",
                x.dims[k].value());
      drop[k] = true;
    }
  }
  std::vector<SymDim> out;
  for (int64_t k = 0; k < x.rank(); ++k)
    if (!drop[k]) out.push_back(x.dims[k]);
  ctx.set_output(0, x.dtype, std::move(out));
  if (x.has_values) set_values(ctx, 0, x.values);
}

void unsqueeze(InferContext& ctx) {
  const InferredType& x = ctx.input(0);
  std::vector<int64_t> axes;
  bool present = false;
  if (!x.has_shape || !axes_of(ctx, axes, present)) return ctx.set_output_unknown_shape(0, x.dtype);
  ctx.check(present, "axes are required");
  const int64_t r = x.rank() + static_cast<int64_t>(axes.size());
  std::vector<bool> inserted(r, false);
  for (int64_t a : axes) {
    int64_t k = infer_axis(ctx, a, r);
    ctx.check(!inserted[k], "axis ", a, " is repeated");
    inserted[k] = true;
  }
  std::vector<SymDim> out;
  for (int64_t k = 0, j = 0; k < r; ++k) out.push_back(inserted[k] ? SymDim(1) : x.dims[j++]);
  ctx.set_output(0, x.dtype, std::move(out));
  if (x.has_values) set_values(ctx, 0, x.values);
}

void transpose(InferContext& ctx) {
  const InferredType& x = ctx.input(0);
  if (!x.has_shape) return ctx.set_output_unknown_shape(0, x.dtype);
  std::vector<int64_t> perm = ctx.node().get_ints("perm");
  const int64_t r = x.rank();
  if (perm.empty())
    for (int64_t k = r - 1; k >= 0; --k) perm.push_back(k);
  ctx.check(static_cast<int64_t>(perm.size()) == r, "perm has ", perm.size(), " entries for rank ", r);
  std::vector<bool> seen(r, false);
  std::vector<SymDim> out;
  for (int64_t p : perm) {
    ctx.check(p >= 0 && p < r && !seen[p], "perm is not a permutation of the ", r, " axes");
    seen[p] = true;
    out.push_back(x.dims[p]);
  }
  ctx.set_output(0, x.dtype, std::move(out));
}

void concat(InferContext& ctx) {
  std::vector<int> all;
  for (int i = 0; i < ctx.num_inputs(); ++i)
    if (ctx.has_input(i)) all.push_back(i);
  ctx.check(!all.empty(), "needs at least one input");
  DType t = same_dtype(ctx, all);
  const InferredType* ranked = nullptr;
  for (int i : all)
    if (ctx.input(i).has_shape) ranked = &ctx.input(i);
  if (!ranked) return ctx.set_output_unknown_shape(0, t);
  const int64_t r = ranked->rank();
  ctx.check(r > 0, "cannot concatenate 0-d tensors");
  const int64_t axis = infer_axis(ctx, ctx.node().get_int("axis", 0), r);
  std::vector<SymDim> out = ranked->dims;
  out[axis] = 0;
  bool all_ranked = true;
  for (int i : all) {
    const InferredType& in = ctx.input(i);
    if (!in.has_shape) {
      all_ranked = false;
      continue;
    }
    ctx.check(in.rank() == r, "input ", i, " has rank ", in.rank(), ", input ", all[0], " has rank ", r);
    for (int64_t k = 0; k < r; ++k)
      if (k != axis) out[k] = merge_dims(ctx, out[k], in.dims[k], "the non-axis dims of the inputs");
    out[axis] = out[axis] + in.dims[axis];
  }
  if (!all_ranked) out[axis] = SymDim::unknown();
  ctx.set_output(0, t, out);
  if (r == 1) {
    std::vector<SymDim> values;
    for (int i : all) {
      const std::vector<SymDim>* v = ctx.values(i);
      if (!v) return;
      values.insert(values.end(), v->begin(), v->end());
    }
    set_values(ctx, 0, std::move(values));
  }
}

void split(InferContext& ctx) {
  const InferredType& x = ctx.input(0);
  const int n = ctx.num_outputs();
  if (!x.has_shape) {
    for (int i = 0; i < n; ++i) ctx.set_output_unknown_shape(i, x.dtype);
    return;
  }
  ctx.check(x.rank() > 0, "cannot split a 0-d tensor");
  const int64_t axis = infer_axis(ctx, ctx.node().get_int("axis", 0), x.rank());
  const SymDim dim = x.dims[axis];
  std::vector<SymDim> sizes;
  bool sizes_known = true;
  if (ctx.opset() >= 13 && ctx.has_input(1)) {
    if (const std::vector<SymDim>* v = ctx.values(1))
      sizes = *v;
    else
      sizes_known = false;
  } else if (ctx.opset() < 13) {
    for (int64_t s : ctx.node().get_ints("split")) sizes.push_back(s);
  }
  if (sizes_known && !sizes.empty()) {
    ctx.check(static_cast<int>(sizes.size()) == n, "split has ", sizes.size(), " entries for ", n, " outputs");
    SymDim total = 0;
    for (const SymDim& s : sizes) total = total + s;
    ctx.check(!(total.is_const() && dim.is_const()) || total.value() == dim.value(), "split sums to ",
              total.str(), " but axis ", axis, " has size ", dim.str());
  } else if (sizes_known) {
    SymDim chunk = ceil_div(dim, n);
    sizes.assign(n, chunk);
    sizes.back() = dim - chunk * (n - 1);
  }
  for (int i = 0; i < n; ++i) {
    std::vector<SymDim> d = x.dims;
    d[axis] = sizes_known ? sizes[i] : SymDim::unknown();
    ctx.set_output(i, x.dtype, std::move(d));
  }
}

// Slice parameters for one axis, symbolic in the dim. Mirrors the kernel's clamping. A symbolic
// start or end (a size computed from an input's shape) is taken as non-negative.
SymDim slice_len(const SymDim& dim, const SymDim& start, const SymDim& end, int64_t step) {
  step = std::max(step, -INT64_MAX);  // so that -step cannot overflow
  auto eff = [&](const SymDim& v) { return v.is_const() && v.value() < 0 ? dim + v : v; };
  if (step > 0) {
    SymDim s = max(SymDim(0), min(eff(start), dim));
    SymDim e = max(SymDim(0), min(eff(end), dim));
    return max(SymDim(0), ceil_div(e - s, SymDim(step)));
  }
  SymDim s = max(SymDim(-1), min(eff(start), dim - 1));
  SymDim e = max(SymDim(-1), min(eff(end), dim - 1));
  return max(SymDim(0), ceil_div(s - e, SymDim(-step)));
}

void slice(InferContext& ctx) {
  const InferredType& x = ctx.input(0);
  if (!x.has_shape) return ctx.set_output_unknown_shape(0, x.dtype);
  const int64_t r = x.rank();
  std::vector<int64_t> starts, ends, axes, steps;
  std::vector<SymDim> sym_starts, sym_ends;
  if (ctx.opset() < 10) {
    starts = ctx.node().get_ints("starts");
    ends = ctx.node().get_ints("ends");
    axes = ctx.node().get_ints("axes");
  } else {
    const std::vector<SymDim>* s = ctx.values(1);
    const std::vector<SymDim>* e = ctx.values(2);
    std::optional<std::vector<int64_t>> a, st;
    if (ctx.has_input(3)) a = ctx.ints(3);
    if (ctx.has_input(4)) st = ctx.ints(4);
    if (!s || !e || (ctx.has_input(3) && !a) || (ctx.has_input(4) && !st)) {
      // Only the sliced axes' sizes depend on the run-time values; with unknown axes, all of them.
      std::vector<SymDim> out(r);
      for (int64_t k = 0; k < r; ++k) out[k] = SymDim::unknown();
      if (a)
        for (int64_t k = 0; k < r; ++k)
          if (std::find(a->begin(), a->end(), k) == a->end() && std::find(a->begin(), a->end(), k - r) == a->end())
            out[k] = x.dims[k];
      return ctx.set_output(0, x.dtype, std::move(out));
    }
    sym_starts = *s;
    sym_ends = *e;
    if (a) axes = *a;
    if (st) steps = *st;
  }
  if (ctx.opset() < 10) {
    sym_starts.assign(starts.begin(), starts.end());
    sym_ends.assign(ends.begin(), ends.end());
  }
  ctx.check(sym_starts.size() == sym_ends.size(), "starts and ends differ in length");
  if (axes.empty())
    for (size_t k = 0; k < sym_starts.size(); ++k) axes.push_back(static_cast<int64_t>(k));
  if (steps.empty()) steps.assign(sym_starts.size(), 1);
  ctx.check(axes.size() == sym_starts.size() && steps.size() == sym_starts.size(),
            "starts, ends, axes and steps differ in length");
  std::vector<SymDim> out = x.dims;
  std::vector<bool> seen(r, false);
  for (size_t k = 0; k < axes.size(); ++k) {
    int64_t a = infer_axis(ctx, axes[k], r);
    ctx.check(!seen[a], "axis ", axes[k], " is repeated");
    seen[a] = true;
    ctx.check(steps[k] != 0, "step must not be 0");
    out[a] = slice_len(x.dims[a], sym_starts[k], sym_ends[k], steps[k]);
  }
  ctx.set_output(0, x.dtype, out);
  // Contents of a sliced 1-D tracked tensor.
  if (x.has_values && r == 1 && x.dims[0].is_const() && sym_starts[0].is_const() && sym_ends[0].is_const()) {
    const int64_t n = x.dims[0].value(), step = steps[0];
    int64_t s = sym_starts[0].value() < 0 ? sym_starts[0].value() + n : sym_starts[0].value();
    int64_t e = sym_ends[0].value() < 0 ? sym_ends[0].value() + n : sym_ends[0].value();
    std::vector<SymDim> values;
    if (step > 0) {
      s = std::clamp<int64_t>(s, 0, n);
      e = std::clamp<int64_t>(e, 0, n);
      for (int64_t i = s; i < e; i += step) values.push_back(x.values[i]);
    } else {
      s = std::clamp<int64_t>(s, -1, n - 1);
      e = std::clamp<int64_t>(e, -1, n - 1);
      for (int64_t i = s; i > e; i += step) values.push_back(x.values[i]);
    }
    set_values(ctx, 0, std::move(values));
  }
}

void gather(InferContext& ctx) {
  const InferredType& x = ctx.input(0);
  const InferredType& idx = ctx.input(1);
  if (!x.has_shape || !idx.has_shape) return ctx.set_output_unknown_shape(0, x.dtype);
  ctx.check(x.rank() > 0, "cannot gather from a 0-d tensor");
  const int64_t axis = infer_axis(ctx, ctx.node().get_int("axis", 0), x.rank());
  std::vector<SymDim> out(x.dims.begin(), x.dims.begin() + axis);
  out.insert(out.end(), idx.dims.begin(), idx.dims.end());
  out.insert(out.end(), x.dims.begin() + axis + 1, x.dims.end());
  ctx.set_output(0, x.dtype, out);
  auto picks = ctx.ints(1);
  if (x.has_values && x.rank() == 1 && picks && idx.rank() <= 1) {
    const int64_t n = static_cast<int64_t>(x.values.size());
    std::vector<SymDim> values;
    for (int64_t p : *picks) {
      ctx.check(p >= -n && p < n, "index ", p, " is out of range for a dimension of ", n);
      values.push_back(x.values[p < 0 ? p + n : p]);
    }
    set_values(ctx, 0, std::move(values));
  }
}

void gather_elements(InferContext& ctx) { like_input(ctx, 1, 0, ctx.input(0).dtype); }

void expand(InferContext& ctx) {
  const InferredType& x = ctx.input(0);
  const std::vector<SymDim>* target = ctx.values(1);
  const InferredType& s = ctx.input(1);
  if (!x.has_shape || !target) {
    if (x.has_shape && s.has_shape && s.rank() == 1 && s.dims[0].is_const()) {
      std::vector<SymDim> dims(std::max<int64_t>(x.rank(), s.dims[0].value()));
      for (auto& d : dims) d = SymDim::unknown();
      return ctx.set_output(0, x.dtype, std::move(dims));
    }
    return ctx.set_output_unknown_shape(0, x.dtype);
  }
  size_t r = std::max(x.dims.size(), target->size());
  std::vector<SymDim> out(r, SymDim(1));
  for (int side = 0; side < 2; ++side) {
    const std::vector<SymDim>& d = side == 0 ? x.dims : *target;
    size_t off = r - d.size();
    for (size_t k = 0; k < d.size(); ++k) {
      SymDim& o = out[off + k];
      if (o.is_const() && d[k].is_const() && o.value() != d[k].value() && o.value() != 1 && d[k].value() != 1)
        ctx.fail("cannot expand ", x.str(), " to shape {", d[k].str(), " at dim ", off + k, "}");
      o = broadcast(o, d[k]);
    }
  }
  ctx.set_output(0, x.dtype, std::move(out));
}

void tile(InferContext& ctx) {
  const InferredType& x = ctx.input(0);
  const std::vector<SymDim>* reps = ctx.values(1);
  if (!x.has_shape) return ctx.set_output_unknown_shape(0, x.dtype);
  std::vector<SymDim> out = x.dims;
  if (!reps) {
    for (auto& d : out) d = SymDim::unknown();
  } else {
    ctx.check(reps->size() == out.size(), "repeats has ", reps->size(), " entries for rank ", out.size());
    for (size_t k = 0; k < out.size(); ++k) out[k] = out[k] * (*reps)[k];
  }
  ctx.set_output(0, x.dtype, std::move(out));
}

void constant_of_shape(InferContext& ctx) {
  DType t = DType::kF32;
  const Attribute* v = ctx.node().attr("value");
  if (v && v->type == Attribute::Type::kTensor) t = v->t.dtype;
  const std::vector<SymDim>* dims = ctx.values(0);
  const InferredType& s = ctx.input(0);
  if (!dims) {
    if (s.has_shape && s.rank() == 1 && s.dims[0].is_const()) {
      std::vector<SymDim> d(s.dims[0].value());
      for (auto& x : d) x = SymDim::unknown();
      return ctx.set_output(0, t, std::move(d));
    }
    return ctx.set_output_unknown_shape(0, t);
  }
  ctx.set_output(0, t, *dims);
  // Integer fills of small 1-D shapes (torch's Expand chains) keep their contents.
  if (dims->size() == 1 && (*dims)[0].is_const() && (*dims)[0].value() <= (int64_t)kMaxTrackedValues &&
      v && v->t.numel() == 1 && (t == DType::kI64 || t == DType::kI32)) {
    int64_t fill = t == DType::kI64 ? *v->t.ptr<int64_t>() : *v->t.ptr<int32_t>();
    set_values(ctx, 0, std::vector<SymDim>((*dims)[0].value(), SymDim(fill)));
  }
}

void range(InferContext& ctx) {
  DType t = same_dtype(ctx, {0, 1, 2});
  auto start = ctx.values(0), limit = ctx.values(1), delta = ctx.values(2);
  if (!start || !limit || !delta || start->size() != 1 || limit->size() != 1 || delta->size() != 1 ||
      !(*delta)[0].is_const() || (*delta)[0].value() == 0)
    return ctx.set_output(0, t, {SymDim::unknown()});
  const int64_t step = (*delta)[0].value();
  SymDim span = step > 0 ? (*limit)[0] - (*start)[0] : (*start)[0] - (*limit)[0];
  SymDim n = max(SymDim(0), ceil_div(span, SymDim(step > 0 ? step : -step)));
  ctx.set_output(0, t, {n});
  if (n.is_const() && (*start)[0].is_const()) {
    std::vector<SymDim> values;
    for (int64_t i = 0; i < n.value() && i < (int64_t)kMaxTrackedValues + 1; ++i)
      values.push_back((*start)[0].value() + i * step);
    set_values(ctx, 0, std::move(values));
  }
}

}  // namespace

void register_shape_ops_infer(InferRegistry& r) {
  r.add("Shape", "", shape);
  r.add("Size", "", size);
  r.add("Identity", "", identity);
  r.add("Dropout", "", dropout);
  r.add("Reshape", "", reshape);
  r.add("Flatten", "", flatten);
  r.add("Squeeze", "", squeeze);
  r.add("Unsqueeze", "", unsqueeze);
  r.add("Transpose", "", transpose);
  r.add("Concat", "", concat);
  r.add("Split", "", split);
  r.add("Slice", "", slice);
  r.add("Gather", "", gather);
  r.add("GatherElements", "", gather_elements);
  r.add("Expand", "", expand);
  r.add("Tile", "", tile);
  r.add("ConstantOfShape", "", constant_of_shape);
  r.add("Range", "", range);
}

}  // namespace runnx
