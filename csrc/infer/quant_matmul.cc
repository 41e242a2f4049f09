// Inference for the integer matrix products and convolutions: MatMulInteger (int32), QLinearMatMul
// (the type of y_zero_point, else A's) take MatMul's shapes of their two matrix operands; com.runnx
// QGemm is A [..., K] times a 2-D B (transB) giving [..., N]; ConvInteger (int32) and QLinearConv
// take Conv's shapes of x and w.
#include "infer/infer.h"

namespace runnx {

namespace {

// The shapes `op`'s own inference (MatMul, Conv) gives inputs `a` and `b` (their dtypes set to
// float32: only shapes matter here), with dtype `out`.
void borrowed_shape(InferContext& ctx, const char* op, int a, int b, DType out) {
  if (!ctx.has_input(a) || !ctx.has_input(b)) return ctx.set_output_unknown_shape(0, out);
  InferredType ta = ctx.input(a), tb = ctx.input(b);
  ta.dtype = tb.dtype = DType::kF32;
  std::vector<InferredType> result(1);
  InferContext inner(ctx.node(), ctx.opset(), {&ta, &tb}, {nullptr, nullptr}, result);
  InferRegistry::global().find("", op)(inner);
  if (!result[0].has_shape) return ctx.set_output_unknown_shape(0, out);
  ctx.set_output(0, out, result[0].dims);
}

DType q8_type(const InferContext& ctx, int i, const char* what) {
  const DType t = ctx.has_input(i) ? ctx.input(i).dtype : DType::kUndefined;
  ctx.check(t == DType::kUndefined || t == DType::kI8 || t == DType::kU8, what, " of type ", dtype_name(t),
            " is not int8 or uint8");
  return t;
}

void matmul_integer(InferContext& ctx) {
  q8_type(ctx, 0, "A");
  q8_type(ctx, 1, "B");
  if (ctx.has_input(2)) same_dtype(ctx, {0, 2});
  if (ctx.has_input(3)) same_dtype(ctx, {1, 3});
  borrowed_shape(ctx, "MatMul", 0, 1, DType::kI32);
}

// QLinearMatMul and QGemm: y_zero_point's type, else A's.
DType qlinear_type(const InferContext& ctx, int y_zero) {
  const DType a = q8_type(ctx, 0, "A");
  q8_type(ctx, 3, "B");
  if (ctx.has_input(2)) same_dtype(ctx, {0, 2});
  if (ctx.has_input(5)) same_dtype(ctx, {3, 5});
  const DType y = q8_type(ctx, y_zero, "y zero point");
  return ctx.has_input(y_zero) ? y : a;
}

void qlinear_matmul(InferContext& ctx) { borrowed_shape(ctx, "MatMul", 0, 3, qlinear_type(ctx, 7)); }

void conv_integer(InferContext& ctx) {
  q8_type(ctx, 0, "x");
  q8_type(ctx, 1, "w");
  if (ctx.has_input(2)) same_dtype(ctx, {0, 2});
  if (ctx.has_input(3)) same_dtype(ctx, {1, 3});
  borrowed_shape(ctx, "Conv", 0, 1, DType::kI32);
}

void qlinear_conv(InferContext& ctx) {
  const DType t = qlinear_type(ctx, 7);
  if (ctx.has_input(8)) {
    const DType b = ctx.input(8).dtype;
    ctx.check(b == DType::kUndefined || b == DType::kI32, "the bias must be int32, got ", dtype_name(b));
  }
  borrowed_shape(ctx, "Conv", 0, 3, t);
}

void qgemm(InferContext& ctx) {
  const DType t = qlinear_type(ctx, 8);
  const std::vector<SymDim>* a = ctx.dims(0);
  const std::vector<SymDim>* b = ctx.dims(3);
  ctx.check(!b || b->size() == 2, "B must be 2-D, got ", b ? dims_str(*b) : "");
  ctx.check(!a || !a->empty(), "A must have rank >= 1");
  if (!a || !b) return ctx.set_output_unknown_shape(0, t);
  const bool tb = ctx.node().get_int("transB", 0) != 0;
  const SymDim &K = (*b)[tb ? 1 : 0], &N = (*b)[tb ? 0 : 1];
  merge_dims(ctx, a->back(), K, "inner dimension");
  std::vector<SymDim> out(a->begin(), a->end() - 1);
  out.push_back(N);
  ctx.set_output(0, t, std::move(out));
}

}  // namespace

void register_quant_matmul_infer(InferRegistry& r) {
  r.add("MatMulInteger", "", matmul_integer);
  r.add("QLinearMatMul", "", qlinear_matmul);
  r.add("QGemm", "com.runnx", qgemm);
  r.add("ConvInteger", "", conv_integer);
  r.add("QLinearConv", "", qlinear_conv);
}

}  // namespace runnx
