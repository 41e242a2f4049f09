// Inference for element-wise ops: unary math and activations, broadcasting binaries,
// comparisons and logic, variadic Min/Max/Sum/Mean, Where, Cast. Binary integer arithmetic on
// tracked contents is carried out, so shape computations stay symbolic.
#include "infer/infer.h"

namespace runnx {

namespace {

void same_as_input0(InferContext& ctx) { like_input(ctx, 0, 0, ctx.input(0).dtype); }

void to_bool(InferContext& ctx) { like_input(ctx, 0, 0, DType::kBool); }

void clip(InferContext& ctx) {
  DType t = same_dtype(ctx, {0, 1, 2});
  like_input(ctx, 0, 0, t);
}

bool is_integer(DType t) {
  return t == DType::kI64 || t == DType::kI32 || t == DType::kI16 || t == DType::kI8 || t == DType::kU8 ||
         t == DType::kU16 || t == DType::kU32 || t == DType::kU64;
}

// Tracked contents of a broadcasting binary over rank <= 1 integer tensors.
template <typename F>
void combine_values(InferContext& ctx, F f) {
  const std::vector<SymDim>* a = ctx.values(0);
  const std::vector<SymDim>* b = ctx.values(1);
  InferredType& out = ctx.output(0);
  if (!a || !b || !is_integer(out.dtype) || !out.has_shape || out.rank() > 1) return;
  size_t n = std::max(a->size(), b->size());
  if ((a->size() != n && a->size() != 1) || (b->size() != n && b->size() != 1)) return;
  out.has_values = true;
  out.values.clear();
  for (size_t i = 0; i < n; ++i) out.values.push_back(f((*a)[a->size() == 1 ? 0 : i], (*b)[b->size() == 1 ? 0 : i]));
}

void arith(InferContext& ctx, DType dtype) {
  ctx.set_output(0, dtype, broadcast_inputs(ctx, {0, 1}));
}

template <char Op>
void arith_tracked(InferContext& ctx) {
  DType t = same_dtype(ctx, {0, 1});
  if (!ctx.input(0).has_shape || !ctx.input(1).has_shape) return ctx.set_output_unknown_shape(0, t);
  arith(ctx, t);
  combine_values(ctx, [](const SymDim& a, const SymDim& b) {
    switch (Op) {
      case '+': return a + b;
      case '-': return a - b;
      case '*': return a * b;
      default: {
        // ONNX integer Div truncates; symbolic dims are non-negative, where floor agrees.
        if (a.is_const() && b.is_const() && b.value() != 0) return SymDim(a.value() / b.value());
        return floor_div(a, b);
      }
    }
  });
}

void binary_same(InferContext& ctx, DType out) {
  DType t = same_dtype(ctx, {0, 1});
  if (!ctx.input(0).has_shape || !ctx.input(1).has_shape)
    return ctx.set_output_unknown_shape(0, out == DType::kUndefined ? t : out);
  arith(ctx, out == DType::kUndefined ? t : out);
}

void numeric_binary(InferContext& ctx) { binary_same(ctx, DType::kUndefined); }
void compare(InferContext& ctx) { binary_same(ctx, DType::kBool); }

void pow_op(InferContext& ctx) {  // the exponent may have its own type
  if (!ctx.input(0).has_shape || !ctx.input(1).has_shape)
    return ctx.set_output_unknown_shape(0, ctx.input(0).dtype);
  arith(ctx, ctx.input(0).dtype);
}

void prelu(InferContext& ctx) {  // the slope broadcasts to X: the output is X's shape
  DType t = same_dtype(ctx, {0, 1});
  if (!ctx.input(0).has_shape || !ctx.input(1).has_shape) return like_input(ctx, 0, 0, t);
  std::vector<SymDim> dims = broadcast_inputs(ctx, {0, 1});
  ctx.check(dims.size() == ctx.input(0).dims.size(), "slope of rank ", ctx.input(1).rank(),
            " does not broadcast to X of rank ", ctx.input(0).rank());
  ctx.set_output(0, t, dims);
}

void variadic(InferContext& ctx) {
  std::vector<int> all;
  bool shapes = true;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    ctx.check(ctx.has_input(i), "input ", i, " is missing");
    all.push_back(i);
    shapes = shapes && ctx.input(i).has_shape;
  }
  ctx.check(!all.empty(), "needs at least one input");
  DType t = same_dtype(ctx, all);
  if (!shapes) return ctx.set_output_unknown_shape(0, t);
  ctx.set_output(0, t, broadcast_inputs(ctx, all));
}

void where(InferContext& ctx) {
  DType t = same_dtype(ctx, {1, 2});
  for (int i = 0; i < 3; ++i)
    if (!ctx.input(i).has_shape) return ctx.set_output_unknown_shape(0, t);
  ctx.set_output(0, t, broadcast_inputs(ctx, {0, 1, 2}));
}

void carry_integer_values(InferContext& ctx, DType to) {
  const InferredType& x = ctx.input(0);
  if (x.has_values && is_integer(x.dtype) && (to == DType::kI64 || to == DType::kI32)) {
    ctx.output(0).has_values = true;
    ctx.output(0).values = x.values;
  }
}

void cast(InferContext& ctx) {
  DType to = infer_dtype_attr(ctx, ctx.node().get_int("to", 0));
  like_input(ctx, 0, 0, to);
  carry_integer_values(ctx, to);
}

void cast_like(InferContext& ctx) {
  DType to = ctx.input(1).dtype;
  like_input(ctx, 0, 0, to);
  carry_integer_values(ctx, to);
}

}  // namespace

void register_elementwise_infer(InferRegistry& r) {
  for (const char* op :
       {"Neg", "Abs", "Sign", "Relu", "Sqrt", "Reciprocal", "Exp", "Log", "Erf", "Tanh", "Sin", "Cos", "Floor",
        "Ceil", "Round", "Sigmoid", "Softplus", "Softsign", "LeakyRelu", "Elu", "Selu", "Celu",
        "ThresholdedRelu", "HardSigmoid", "HardSwish", "Mish", "Gelu", "Tan", "Asin", "Acos", "Atan", "Sinh",
        "Cosh", "Asinh", "Acosh", "Atanh", "Shrink", "Not", "Swish", "BitwiseNot"})
    r.add(op, "", same_as_input0);
  r.add("IsNaN", "", to_bool);
  r.add("IsInf", "", to_bool);
  r.add("Clip", "", clip);
  r.add("Add", "", arith_tracked<'+'>);
  r.add("Sub", "", arith_tracked<'-'>);
  r.add("Mul", "", arith_tracked<'*'>);
  r.add("Div", "", arith_tracked<'/'>);
  for (const char* op : {"Mod", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitShift"}) r.add(op, "", numeric_binary);
  for (const char* op : {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor"})
    r.add(op, "", compare);
  r.add("Pow", "", pow_op);
  r.add("PRelu", "", prelu);
  for (const char* op : {"Min", "Max", "Sum", "Mean"}) r.add(op, "", variadic);
  r.add("Where", "", where);
  r.add("Cast", "", cast);
  r.add("CastLike", "", cast_like);
}

}  // namespace runnx
