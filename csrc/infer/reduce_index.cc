// Inference for reductions (Reduce*, ArgMax/ArgMin), the softmax family, scans (CumSum,
// CumProd), Trilu, TopK, the gather/scatter family beyond Gather (GatherND, Scatter*,
// TensorScatter), index ops (NonZero, OneHot, Compress, EyeLike, DepthToSpace, SpaceToDepth,
// ReverseSequence) and linear quantization.
#include "infer/infer.h"

namespace runnx {

namespace {

void same_as_input0(InferContext& ctx) { like_input(ctx, 0, 0, ctx.input(0).dtype); }

// Reduce*: axes from the attribute before `axes_input_since`, then from optional input 1.
template <int AxesInputSince>
void reduce(InferContext& ctx) {
  const InferredType& x = ctx.input(0);
  if (!x.has_shape) return ctx.set_output_unknown_shape(0, x.dtype);
  const bool keepdims = ctx.node().get_int("keepdims", 1) != 0;
  const bool noop = ctx.node().get_int("noop_with_empty_axes", 0) != 0;
  std::vector<int64_t> axes;
  if (ctx.opset() < AxesInputSince) {
    axes = ctx.node().get_ints("axes");
  } else if (ctx.has_input(1)) {
    auto v = ctx.ints(1);
    if (!v) {  // reduced axes come at run time: with keepdims only the sizes are unknown
      if (!keepdims) return ctx.set_output_unknown_shape(0, x.dtype);
      std::vector<SymDim> dims(x.rank());
      for (auto& d : dims) d = SymDim::unknown();
      return ctx.set_output(0, x.dtype, std::move(dims));
    }
    axes = *v;
  }
  const int64_t r = x.rank();
  ctx.check(r > 0 || axes.empty(), "axes given for a 0-d input");
  std::vector<bool> red(r, axes.empty() && !noop);
  for (int64_t a : axes) {
    int64_t k = infer_axis(ctx, a, r);
    ctx.check(!red[k], "axis ", a, " is repeated in axes");
    red[k] = true;
  }
  std::vector<SymDim> out;
  for (int64_t k = 0; k < r; ++k)
    if (!red[k])
      out.push_back(x.dims[k]);
    else if (keepdims)
      out.push_back(1);
  ctx.set_output(0, x.dtype, std::move(out));
}

void arg_reduce(InferContext& ctx) {
  const InferredType& x = ctx.input(0);
  if (!x.has_shape) return ctx.set_output_unknown_shape(0, DType::kI64);
  const int64_t axis = infer_axis(ctx, ctx.node().get_int("axis", 0), x.rank());
  std::vector<SymDim> out;
  for (int64_t k = 0; k < x.rank(); ++k)
    if (k != axis)
      out.push_back(x.dims[k]);
    else if (ctx.node().get_int("keepdims", 1) != 0)
      out.push_back(1);
  ctx.set_output(0, DType::kI64, std::move(out));
}

void softmax(InferContext& ctx) {
  const InferredType& x = ctx.input(0);
  if (x.has_shape) infer_axis(ctx, ctx.node().get_int("axis", ctx.opset() >= 13 ? -1 : 1), x.rank());
  same_as_input0(ctx);
}

void scan(InferContext& ctx) {  // CumSum, CumProd: same shape; axis is a run-time scalar
  same_as_input0(ctx);
}

void top_k(InferContext& ctx) {
  const InferredType& x = ctx.input(0);
  if (!x.has_shape) {
    ctx.set_output_unknown_shape(0, x.dtype);
    ctx.set_output_unknown_shape(1, DType::kI64);
    return;
  }
  ctx.check(x.rank() >= 1, "input must have rank >= 1");
  const int64_t axis = infer_axis(ctx, ctx.node().get_int("axis", -1), x.rank());
  SymDim k = SymDim::unknown();
  if (ctx.opset() < 10) {
    k = ctx.node().get_int("k", -1);
  } else if (const std::vector<SymDim>* v = ctx.values(1); v && v->size() == 1) {
    k = (*v)[0];
  }
  if (k.is_const() && x.dims[axis].is_const())
    ctx.check(k.value() >= 0 && k.value() <= x.dims[axis].value(), "k = ", k.value(),
              " is out of range for axis ", axis, " of size ", x.dims[axis].value());
  std::vector<SymDim> out = x.dims;
  out[axis] = k;
  ctx.set_output(0, x.dtype, out);
  ctx.set_output(1, DType::kI64, out);
}

void gather_nd(InferContext& ctx) {
  const InferredType& data = ctx.input(0);
  const InferredType& ind = ctx.input(1);
  const int64_t bd = ctx.node().get_int("batch_dims", 0);
  if (!data.has_shape || !ind.has_shape || ind.rank() == 0 || !ind.dims.back().is_const())
    return ctx.set_output_unknown_shape(0, data.dtype);
  const int64_t r = data.rank(), q = ind.rank(), m = ind.dims.back().value();
  ctx.check(r >= 1 && q >= 1, "data and indices must have rank >= 1");
  ctx.check(bd >= 0 && bd < std::min(q, r), "batch_dims ", bd, " must be less than the ranks of data (", r,
            ") and indices (", q, ")");
  ctx.check(m >= 1 && m <= r - bd, "indices' last dim ", m, " must be in [1, ", r - bd, "]");
  std::vector<SymDim> out(ind.dims.begin(), ind.dims.end() - 1);
  for (int64_t d = 0; d < bd; ++d) {
    const SymDim &a = data.dims[d], &b = ind.dims[d];
    ctx.check(!(a.is_const() && b.is_const()) || a.value() == b.value(), "batch dim ", d, " differs: data has ",
              a.str(), ", indices have ", b.str());
    out[d] = a.is_const() ? a : b;
  }
  out.insert(out.end(), data.dims.begin() + bd + m, data.dims.end());
  ctx.set_output(0, data.dtype, std::move(out));
}

void scatter(InferContext& ctx) {  // Scatter, ScatterElements, ScatterND, TensorScatter
  DType t = ctx.node().op_type == "TensorScatter" ? same_dtype(ctx, {0, 1}) : same_dtype(ctx, {0, 2});
  like_input(ctx, 0, 0, t);
}

void non_zero(InferContext& ctx) {
  const InferredType& x = ctx.input(0);
  if (!x.has_shape) return ctx.set_output(0, DType::kI64, {SymDim::unknown(), SymDim::unknown()});
  ctx.set_output(0, DType::kI64, {SymDim(x.rank()), SymDim::unknown()});
}

void one_hot(InferContext& ctx) {
  const InferredType& idx = ctx.input(0);
  DType t = ctx.input(2).dtype;
  if (!idx.has_shape) return ctx.set_output_unknown_shape(0, t);
  const int64_t r = idx.rank();
  const int64_t axis = infer_axis(ctx, ctx.node().get_int("axis", -1), r + 1);
  SymDim depth = SymDim::unknown();
  if (const std::vector<SymDim>* v = ctx.values(1); v && v->size() == 1) depth = (*v)[0];
  std::vector<SymDim> out(idx.dims.begin(), idx.dims.begin() + axis);
  out.push_back(depth);
  out.insert(out.end(), idx.dims.begin() + axis, idx.dims.end());
  ctx.set_output(0, t, std::move(out));
}

void compress(InferContext& ctx) {
  const InferredType& x = ctx.input(0);
  if (!x.has_shape) return ctx.set_output_unknown_shape(0, x.dtype);
  if (!ctx.node().has_attr("axis")) return ctx.set_output(0, x.dtype, {SymDim::unknown()});
  const int64_t axis = infer_axis(ctx, ctx.node().get_int("axis", 0), x.rank());
  std::vector<SymDim> out = x.dims;
  out[axis] = SymDim::unknown();  // how many the condition keeps is data
  ctx.set_output(0, x.dtype, std::move(out));
}

void eye_like(InferContext& ctx) {
  const InferredType& x = ctx.input(0);
  const int64_t dt = ctx.node().get_int("dtype", -1);
  DType t = dt < 0 ? x.dtype : infer_dtype_attr(ctx, dt);
  if (x.has_shape) ctx.check(x.rank() == 2, "input must be 2-D, got rank ", x.rank());
  like_input(ctx, 0, 0, t);
}

template <bool DepthToSpace>
void space_depth(InferContext& ctx) {
  const InferredType& x = ctx.input(0);
  if (!x.has_shape) return ctx.set_output_unknown_shape(0, x.dtype);
  ctx.check(x.rank() == 4, "input must be 4-D, got rank ", x.rank());
  const int64_t b = ctx.node().get_int("blocksize", 0);
  ctx.check(b > 0, "blocksize must be positive");
  const std::vector<SymDim>& d = x.dims;
  if (DepthToSpace) {
    ctx.check(!d[1].is_const() || d[1].value() % (b * b) == 0, "channels (", d[1].str(),
              ") must be a multiple of blocksize^2 (", b * b, ")");
    ctx.set_output(0, x.dtype, {d[0], floor_div(d[1], SymDim(b * b)), d[2] * b, d[3] * b});
  } else {
    ctx.check(!d[2].is_const() || d[2].value() % b == 0, "height (", d[2].str(), ") must be a multiple of blocksize");
    ctx.check(!d[3].is_const() || d[3].value() % b == 0, "width (", d[3].str(), ") must be a multiple of blocksize");
    ctx.set_output(0, x.dtype, {d[0], d[1] * (b * b), floor_div(d[2], SymDim(b)), floor_div(d[3], SymDim(b))});
  }
}

DType quantized_type(const InferContext& ctx) {
  const int64_t od = ctx.opset() >= 21 ? ctx.node().get_int("output_dtype", 0) : 0;
  if (ctx.has_input(2) && ctx.input(2).dtype != DType::kUndefined) {
    DType zp = ctx.input(2).dtype;
    ctx.check(od == 0 || zp == static_cast<DType>(od), "zero point type ", dtype_name(zp),
              " differs from output_dtype ", od);
    return zp;
  }
  return od ? infer_dtype_attr(ctx, od) : DType::kU8;
}

void quantize(InferContext& ctx) { like_input(ctx, 0, 0, quantized_type(ctx)); }

void dequantize(InferContext& ctx) {
  if (ctx.has_input(2)) same_dtype(ctx, {0, 2});
  like_input(ctx, 0, 0, DType::kF32);
}

void dynamic_quantize(InferContext& ctx) {
  like_input(ctx, 0, 0, DType::kU8);
  ctx.set_output(1, DType::kF32, {});
  ctx.set_output(2, DType::kU8, {});
}

}  // namespace

void register_reduce_index_infer(InferRegistry& r) {
  r.add("ReduceSum", "", reduce<13>);
  for (const char* op : {"ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                         "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"})
    r.add(op, "", reduce<18>);
  r.add("ArgMax", "", arg_reduce);
  r.add("ArgMin", "", arg_reduce);
  for (const char* op : {"Softmax", "LogSoftmax", "Hardmax"}) r.add(op, "", softmax);
  r.add("CumSum", "", scan);
  r.add("CumProd", "", scan);
  r.add("Trilu", "", same_as_input0);
  r.add("ReverseSequence", "", same_as_input0);
  r.add("TopK", "", top_k);
  r.add("GatherND", "", gather_nd);
  for (const char* op : {"Scatter", "ScatterElements", "ScatterND", "TensorScatter"}) r.add(op, "", scatter);
  r.add("NonZero", "", non_zero);
  r.add("OneHot", "", one_hot);
  r.add("Compress", "", compress);
  r.add("EyeLike", "", eye_like);
  r.add("DepthToSpace", "", space_depth<true>);
  r.add("SpaceToDepth", "", space_depth<false>);
  r.add("QuantizeLinear", "", quantize);
  r.add("DequantizeLinear", "", dequantize);
  r.add("DynamicQuantizeLinear", "", dynamic_quantize);
}

}  // namespace runnx
