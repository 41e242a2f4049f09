// Element-wise ops on the device: broadcasting binaries and comparisons, unary math and
// activations (com.runnx Gelu included), Where and Cast, over cudaops' launchers (elementwise.h).
#include <cmath>
#include <limits>

#include "cuda/cuda_kernel.h"
#include "cuda/kernels/elementwise.h"
#include "ops/op_util.h"

namespace runnx::cuda {
namespace {

const std::vector<DType> kFloat = {DType::kF32, DType::kF16};
const std::vector<DType> kNumeric = {DType::kF32, DType::kF16, DType::kI32, DType::kI64};

class BinaryKernel : public CudaKernel {
 public:
  explicit BinaryKernel(BinaryOp op) : op_(op) {}
  void run(CudaContext& ctx) const override {
    const Tensor& a = ctx.required_input(0);
    const Tensor& b = ctx.required_input(1);
    Shape out = broadcast_shapes({&a.shape, &b.shape}, ctx.node());
    const bool compare = op_ >= BinaryOp::kEqual;
    Tensor& y = ctx.allocate_output(0, compare ? DType::kBool : a.dtype, out);
    if (y.numel() == 0) return;
    launch_binary(op_, a.dtype, a.data, a.shape, b.data, b.shape, y.data, ctx.stream());
  }

 private:
  BinaryOp op_;
};

class UnaryKernel : public CudaKernel {
 public:
  explicit UnaryKernel(UnaryFn f) : f_(f) {}
  void run(CudaContext& ctx) const override {
    const Tensor& x = ctx.required_input(0);
    Tensor& y = ctx.allocate_output(0, x.dtype, x.shape);
    if (y.numel() == 0) return;
    launch_unary(f_, x.dtype, x.data, y.data, y.numel(), ctx.stream());
  }

 private:
  UnaryFn f_;
};

UnaryFn activation(Activation act, float p0 = 0.f, float p1 = 0.f) {
  UnaryFn f;
  f.op = UnaryOp::kActivation;
  f.act = act;
  f.p0 = p0;
  f.p1 = p1;
  return f;
}

UnaryFn unary(UnaryOp op, float p0 = 0.f, float p1 = 0.f) {
  UnaryFn f;
  f.op = op;
  f.p0 = p0;
  f.p1 = p1;
  return f;
}

// Clip's bounds: attributes before opset 11, constant inputs from 11 on (a run-time bound stays on the CPU).
class ClipKernel : public CudaKernel {
 public:
  explicit ClipKernel(const CudaNodeInfo& info) {
    if (info.opset < 11) {
      lo_ = info.node.get_float("min", lo_);
      hi_ = info.node.get_float("max", hi_);
      return;
    }
    if (const Tensor* t = info.constant_input(1)) lo_ = static_cast<float>(tensor_to_f64(*t).at(0));
    if (const Tensor* t = info.constant_input(2)) hi_ = static_cast<float>(tensor_to_f64(*t).at(0));
  }
  void run(CudaContext& ctx) const override { UnaryKernel(activation(Activation::kClip, lo_, hi_)).run(ctx); }

 private:
  float lo_ = -std::numeric_limits<float>::infinity(), hi_ = std::numeric_limits<float>::infinity();
};

class WhereKernel : public CudaKernel {
 public:
  void run(CudaContext& ctx) const override {
    const Tensor& c = ctx.required_input(0);
    const Tensor& x = ctx.required_input(1);
    const Tensor& y = ctx.required_input(2);
    Shape out = broadcast_shapes({&c.shape, &x.shape, &y.shape}, ctx.node());
    Tensor& o = ctx.allocate_output(0, x.dtype, out);
    if (o.numel() == 0) return;
    launch_where(static_cast<const bool*>(c.data), c.shape, x.dtype, x.data, x.shape, y.data, y.shape, o.data,
                 ctx.stream());
  }
};

class CastKernel : public CudaKernel {
 public:
  explicit CastKernel(const CudaNodeInfo& info) : to_(static_cast<DType>(info.node.get_int("to", 0))) {}
  void run(CudaContext& ctx) const override {
    const Tensor& x = ctx.required_input(0);
    Tensor& y = ctx.allocate_output(0, to_, x.shape);
    if (y.numel() == 0) return;
    launch_cast(x.dtype, x.data, to_, y.data, y.numel(), ctx.stream());
  }

 private:
  DType to_;
};

void add_binary(CudaOpRegistry& r, const char* op, BinaryOp bop, int since = 7) {
  r.add(make_schema(
      op, since,
      [](const CudaNodeInfo& info) {
        if (info.num_inputs() != 2) return std::string("only the two-input form has a CUDA kernel");
        if (info.input_dtype(0) != info.input_dtype(1)) return std::string("inputs of different dtypes");
        return check_dtypes(info, kNumeric, {0, 1}, false);
      },
      [bop](const CudaNodeInfo&) { return std::make_unique<BinaryKernel>(bop); }));
}

void add_unary(CudaOpRegistry& r, const char* op, std::function<UnaryFn(const Node&)> fn, const char* domain = "") {
  r.add(make_schema(
      op, 1, [](const CudaNodeInfo& info) { return check_dtypes(info, kFloat, {0}); },
      [fn](const CudaNodeInfo& info) { return std::make_unique<UnaryKernel>(fn(info.node)); }, domain));
}

}  // namespace

void register_cuda_elementwise_ops(CudaOpRegistry& r) {
  add_binary(r, "Add", BinaryOp::kAdd);
  add_binary(r, "Sub", BinaryOp::kSub);
  add_binary(r, "Mul", BinaryOp::kMul);
  add_binary(r, "Div", BinaryOp::kDiv);
  add_binary(r, "Pow", BinaryOp::kPow);
  add_binary(r, "Max", BinaryOp::kMax, 8);
  add_binary(r, "Min", BinaryOp::kMin, 8);
  add_binary(r, "Equal", BinaryOp::kEqual);
  add_binary(r, "Less", BinaryOp::kLess);
  add_binary(r, "LessOrEqual", BinaryOp::kLessOrEqual, 12);
  add_binary(r, "Greater", BinaryOp::kGreater);
  add_binary(r, "GreaterOrEqual", BinaryOp::kGreaterOrEqual, 12);

  auto plain = [](UnaryOp op) { return [op](const Node&) { return unary(op); }; };
  auto act = [](Activation a) { return [a](const Node&) { return activation(a); }; };
  add_unary(r, "Relu", act(Activation::kRelu));
  add_unary(r, "Sigmoid", act(Activation::kSigmoid));
  add_unary(r, "Tanh", act(Activation::kTanh));
  add_unary(r, "Exp", plain(UnaryOp::kExp));
  add_unary(r, "Log", plain(UnaryOp::kLog));
  add_unary(r, "Sqrt", plain(UnaryOp::kSqrt));
  add_unary(r, "Neg", plain(UnaryOp::kNeg));
  add_unary(r, "Reciprocal", plain(UnaryOp::kReciprocal));
  add_unary(r, "Abs", plain(UnaryOp::kAbs));
  add_unary(r, "Erf", plain(UnaryOp::kErf));
  add_unary(r, "Floor", plain(UnaryOp::kFloor));
  add_unary(r, "Ceil", plain(UnaryOp::kCeil));
  add_unary(r, "Round", plain(UnaryOp::kRound));
  add_unary(r, "Sin", plain(UnaryOp::kSin));
  add_unary(r, "Cos", plain(UnaryOp::kCos));
  add_unary(r, "Sign", plain(UnaryOp::kSign));
  add_unary(r, "Softplus", plain(UnaryOp::kSoftplus));
  add_unary(r, "Elu", [](const Node& n) { return unary(UnaryOp::kElu, n.get_float("alpha", 1.f)); });
  add_unary(r, "HardSigmoid",
            [](const Node& n) { return unary(UnaryOp::kHardSigmoid, n.get_float("alpha", 0.2f), n.get_float("beta", 0.5f)); });
  add_unary(r, "LeakyRelu", [](const Node& n) { return activation(Activation::kLeakyRelu, n.get_float("alpha", 0.01f)); });
  add_unary(r, "HardSwish", [](const Node&) { return activation(Activation::kHardSwish, 1.f / 6.f, 0.5f); });
  for (const char* domain : {"", "com.runnx"})
    add_unary(r, "Gelu",
              [](const Node& n) {
                return activation(n.get_string("approximate", "none") == "tanh" ? Activation::kGeluTanh : Activation::kGeluErf);
              },
              domain);

  CudaOpSchema clip = make_schema(
      "Clip", 6,
      [](const CudaNodeInfo& info) {
        for (int k : {1, 2})
          if (info.has_input(k) && !info.is_constant(k)) return std::string("a run-time bound has no CUDA kernel");
        return check_dtypes(info, kFloat, {0});
      },
      [](const CudaNodeInfo& info) { return std::make_unique<ClipKernel>(info); });
  clip.packed_inputs = {1, 2};  // read once at load
  r.add(std::move(clip));
  r.add(make_schema(
      "Where", 9,
      [](const CudaNodeInfo& info) {
        if (info.input_dtype(0) != DType::kBool) return std::string("the condition's dtype is unknown at load");
        DType d = info.input_dtype(1);
        if (d == DType::kUndefined || d == DType::kString) return std::string("a value dtype without a CUDA kernel");
        return std::string();
      },
      [](const CudaNodeInfo&) { return std::make_unique<WhereKernel>(); }));
  r.add(make_schema(
      "Cast", 6,
      [](const CudaNodeInfo& info) {
        const std::vector<DType> ok = {DType::kF32, DType::kF16, DType::kF64, DType::kI64,
                                       DType::kI32, DType::kI8,  DType::kU8,  DType::kBool};
        return check_dtypes(info, ok, {0});
      },
      [](const CudaNodeInfo& info) { return std::make_unique<CastKernel>(info); }));
}

}  // namespace runnx::cuda
