// Inference for the normalisations: BatchNormalization, InstanceNormalization,
// LayerNormalization (with its Mean / InvStdDev outputs), GroupNormalization, LRN,
// MeanVarianceNormalization, LpNormalization, RMSNormalization. Each output has X's shape and
// type; what inference adds is the parameter checks the kernels would make on every run.
#include <string>

#include "infer/infer.h"

namespace runnx {

namespace {

// X's rank must be at least `min_rank` (when known).
void check_min_rank(const InferContext& ctx, int64_t min_rank, const char* what) {
  const std::vector<SymDim>* x = ctx.dims(0);
  ctx.check(!x || static_cast<int64_t>(x->size()) >= min_rank, what, ", got shape ", x ? dims_str(*x) : "");
}

// A per-channel parameter must have `want` elements (both known at load).
void check_param_count(const InferContext& ctx, int i, const SymDim& want, const char* what) {
  if (!ctx.has_input(i)) return;
  const SymDim have = ctx.input(i).numel();
  if (have.is_const() && want.is_const() && have.value() != want.value())
    ctx.fail(what, " has shape ", dims_str(ctx.input(i).dims), ", expected ", want.value(),
             " elements for input of shape ", dims_str(ctx.input(0).dims));
}

// Broadcasting of a parameter to the normalised dims, as the kernels accept it: after leading
// 1s beyond the normalised rank are dropped, each dim is the normalised one or 1.
bool broadcasts_to(std::vector<SymDim> p, const std::vector<SymDim>& norm) {
  while (p.size() > norm.size() && p.front().is_const() && p.front().value() == 1) p.erase(p.begin());
  if (p.size() > norm.size()) return false;
  for (size_t i = 0; i < p.size(); ++i) {
    const SymDim& want = norm[norm.size() - p.size() + i];
    if (p[i].is_const() && want.is_const() && p[i].value() != want.value() && p[i].value() != 1) return false;
  }
  return true;
}

void batch_norm(InferContext& ctx) {
  const InferredType& x = ctx.input(0);
  like_input(ctx, 0, 0, x.dtype);
  check_min_rank(ctx, 2, "input must be N x C x ...");
  // Training-mode statistics (the kernel refuses them when created): [C] each.
  const SymDim C = x.has_shape && x.rank() >= 2 ? x.dims[1] : SymDim::unknown();
  for (int o = 1; o < ctx.num_outputs(); ++o) ctx.set_output(o, ctx.has_input(1) ? ctx.input(1).dtype : x.dtype, {C});
  if (!x.has_shape || x.rank() < 2) return;
  // Before opset 9, spatial=0 gives per-element parameters of shape X[1:].
  const bool spatial = ctx.opset() >= 9 || ctx.node().get_int("spatial", 1) != 0;
  SymDim per = C;
  if (!spatial)
    for (int64_t d = 2; d < x.rank(); ++d) per = per * x.dims[d];
  const char* names[] = {"scale", "B", "input_mean", "input_var"};
  for (int i = 1; i <= 4; ++i) check_param_count(ctx, i, per, names[i - 1]);
}

void instance_norm(InferContext& ctx) {
  const InferredType& x = ctx.input(0);
  like_input(ctx, 0, 0, x.dtype);
  check_min_rank(ctx, 2, "input must be N x C x ...");
  if (!x.has_shape || x.rank() < 2) return;
  check_param_count(ctx, 1, x.dims[1], "scale");
  check_param_count(ctx, 2, x.dims[1], "B");
}

void layer_norm(InferContext& ctx) {
  const InferredType& x = ctx.input(0);
  like_input(ctx, 0, 0, x.dtype);
  // The kernel keeps its statistics in double for double input, float otherwise.
  const DType stat = x.dtype == DType::kF64 ? DType::kF64 : x.dtype == DType::kUndefined ? x.dtype : DType::kF32;
  if (!x.has_shape) {
    for (int o = 1; o <= 2; ++o) ctx.set_output_unknown_shape(o, stat);
    return;
  }
  const int64_t axis = infer_axis(ctx, ctx.node().get_int("axis", -1), x.rank());
  const std::vector<SymDim> norm(x.dims.begin() + axis, x.dims.end());
  const char* names[] = {"Scale", "B"};
  for (int i = 1; i <= 2; ++i)
    if (const std::vector<SymDim>* p = ctx.has_input(i) ? ctx.dims(i) : nullptr)
      ctx.check(broadcasts_to(*p, norm), names[i - 1], " of shape ", dims_str(*p),
                " does not broadcast to the normalised shape ", dims_str(norm));
  std::vector<SymDim> stats = x.dims;
  for (int64_t d = axis; d < x.rank(); ++d) stats[d] = 1;
  for (int o = 1; o <= 2; ++o) ctx.set_output(o, stat, stats);
}

void group_norm(InferContext& ctx) {
  const InferredType& x = ctx.input(0);
  like_input(ctx, 0, 0, x.dtype);
  check_min_rank(ctx, 2, "input must have rank >= 2");
  const int64_t G = ctx.node().get_int("num_groups", 0);
  if (!x.has_shape || G <= 0) return;  // a missing num_groups is the kernel's to report
  const SymDim& C = x.dims[1];
  ctx.check(!C.is_const() || C.value() % G == 0, "channels ", C.str(), " are not a multiple of num_groups ", G);
  for (int i = 1; i <= 2; ++i) {
    const std::vector<SymDim>* p = ctx.dims(i);
    if (!p) continue;
    bool ok = p->size() == 1;
    if (ok && (*p)[0].is_const() && C.is_const()) ok = (*p)[0].value() == C.value() || (*p)[0].value() == G;
    ctx.check(ok, "scale and bias must be 1-D of size C = ", C.str(), " (or num_groups = ", G,
              " before opset 21), got ", dims_str(*p));
  }
}

void lrn(InferContext& ctx) {
  like_input(ctx, 0, 0, ctx.input(0).dtype);
  check_min_rank(ctx, 3, "input must have rank >= 3");
}

void mvn(InferContext& ctx) {
  const InferredType& x = ctx.input(0);
  like_input(ctx, 0, 0, x.dtype);
  if (!x.has_shape) return;
  for (int64_t a : ctx.node().get_ints("axes", {0, 2, 3})) infer_axis(ctx, a, x.rank());
}

void lp_norm(InferContext& ctx) {
  const InferredType& x = ctx.input(0);
  like_input(ctx, 0, 0, x.dtype);
  check_min_rank(ctx, 1, "input must have rank >= 1");
  if (x.has_shape) infer_axis(ctx, ctx.node().get_int("axis", -1), x.rank());
}

void rms_norm(InferContext& ctx) {
  const InferredType& x = ctx.input(0);
  like_input(ctx, 0, 0, x.dtype);
  check_min_rank(ctx, 1, "input must have rank >= 1");
  const InferredType& s = ctx.input(1);
  const bool float_x = x.dtype == DType::kF32 || x.dtype == DType::kF64;  // else unsupported at run time
  if (float_x && s.dtype != DType::kUndefined && s.dtype != x.dtype)
    ctx.fail("scale type ", dtype_name(s.dtype), " differs from the input's (", dtype_name(x.dtype), ")");
  if (!x.has_shape) return;
  const int64_t axis = infer_axis(ctx, ctx.node().get_int("axis", -1), x.rank());
  const std::vector<SymDim> norm(x.dims.begin() + axis, x.dims.end());
  if (!s.has_shape) return;
  // numpy broadcasting of scale against the normalised dims must give those dims.
  bool ok = s.dims.size() <= norm.size();
  for (size_t i = 0; ok && i < s.dims.size(); ++i) {
    const SymDim &p = s.dims[i], &want = norm[norm.size() - s.dims.size() + i];
    ok = !(p.is_const() && want.is_const() && p.value() != want.value() && p.value() != 1);
  }
  ctx.check(ok, "scale ", dims_str(s.dims), " does not broadcast to ", dims_str(norm));
}

}  // namespace

void register_norm_infer(InferRegistry& r) {
  r.add("BatchNormalization", "", batch_norm);
  r.add("InstanceNormalization", "", instance_norm);
  r.add("LayerNormalization", "", layer_norm);
  r.add("GroupNormalization", "", group_norm);
  r.add("LRN", "", lrn);
  r.add("MeanVarianceNormalization", "", mvn);
  r.add("LpNormalization", "", lp_norm);
  r.add("RMSNormalization", "", rms_norm);
}

}  // namespace runnx
