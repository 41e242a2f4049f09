// MatMul, Gemm and com.runnx FusedGemm on the device over cudagemm's launchers (gemm.h): fp32 SIMT,
// fp16 on tensor cores (fp32 accumulate). Bias, residual and activation go in the GEMM epilogue;
// operands whose batch dims broadcast in ways one stride cannot express are expanded first.
#include <limits>

#include "cuda/cuda_kernel.h"
#include "cuda/kernels/copy.h"
#include "cuda/kernels/elementwise.h"
#include "cuda/kernels/gemm.h"
#include "ops/op_util.h"

namespace runnx::cuda {
namespace {

const std::vector<DType> kFloat = {DType::kF32, DType::kF16};

void launch(DType dtype, const GemmArgs& g, cudaStream_t stream) {
  if (dtype == DType::kF32)
    launch_gemm_f32(g, stream);
  else
    launch_gemm_f16(g, false, stream);
}

// Scratch bytes for broadcasting `t` to `dims`, and the copy itself.
const void* expanded(CudaContext& ctx, const Tensor& t, const Shape& dims, uint8_t*& scratch) {
  if (t.shape == dims) return t.data;
  void* dst = scratch;
  launch_expand(dtype_size(t.dtype), t.data, t.shape, dst, dims, ctx.stream());
  scratch += (shape_numel(dims) * dtype_size(t.dtype) + 255) / 256 * 256;
  return dst;
}

size_t padded_bytes(const Shape& dims, DType dt) { return (shape_numel(dims) * dtype_size(dt) + 255) / 256 * 256; }

// y[batch..., M, N] = epi(A[batch..., M, K] x B[batch..., K, N]) with numpy batch broadcasting:
// an operand whose batch is the output's is strided, one of a single matrix gets stride 0, any
// other is expanded into scratch. A 2-D B under a full A becomes one tall GEMM.
void matmul(CudaContext& ctx, const Tensor& a, Shape a_dims, const Tensor& b, Shape b_dims, bool trans_b, void* y,
            Epilogue epi, const Shape& batch, int64_t M, int64_t K, int64_t N) {
  const int64_t nb = shape_numel(batch);
  Shape ab(a_dims.begin(), a_dims.end() - 2), bb(b_dims.begin(), b_dims.end() - 2);
  const bool a_full = shape_numel(ab) == nb, b_full = shape_numel(bb) == nb;
  const bool a_expand = !a_full && shape_numel(ab) != 1, b_expand = !b_full && shape_numel(bb) != 1;
  size_t need = 0;
  Shape a_to = batch, b_to = batch;
  a_to.insert(a_to.end(), a_dims.end() - 2, a_dims.end());
  b_to.insert(b_to.end(), b_dims.end() - 2, b_dims.end());
  if (a_expand) need += padded_bytes(a_to, a.dtype);
  if (b_expand) need += padded_bytes(b_to, b.dtype);
  auto* scratch = static_cast<uint8_t*>(ctx.workspace(need));
  Tensor av = a.view(a_dims), bv = b.view(b_dims);
  GemmArgs g;
  g.A = a_expand ? expanded(ctx, av, a_to, scratch) : a.data;
  g.B = b_expand ? expanded(ctx, bv, b_to, scratch) : b.data;
  g.C = y;
  g.K = K;
  g.N = N;
  g.lda = K;
  g.trans_b = trans_b;
  g.ldb = trans_b ? K : N;
  g.ldc = N;
  g.epi = epi;
  g.epi.ldr = N;  // a residual has the output's layout
  if (!b_full && !b_expand && (a_full || a_expand) && nb > 0) {
    g.M = nb * M;  // one tall GEMM: the rows of every batch share B
    g.epi.residual_batch_stride = 0;
  } else {
    g.M = M;
    g.batch_inner = nb;
    g.a_inner = (a_full || a_expand) ? M * K : 0;
    g.b_inner = (b_full || b_expand) ? K * N : 0;
    g.c_inner = M * N;
    g.epi.residual_batch_stride = M * N;
  }
  if (g.M == 0 || g.N == 0 || nb == 0) return;
  launch(a.dtype, g, ctx.stream());
}

class MatMulKernel : public CudaKernel {
 public:
  void run(CudaContext& ctx) const override {
    const Tensor& a = ctx.required_input(0);
    const Tensor& b = ctx.required_input(1);
    RUNNX_CHECK(a.rank() >= 1 && b.rank() >= 1, kInvalidArgument, ctx.node().label(), ": MatMul of a scalar");
    Shape ad = a.shape, bd = b.shape;
    if (a.rank() == 1) ad.insert(ad.begin(), 1);
    if (b.rank() == 1) bd.push_back(1);
    const int64_t M = ad[ad.size() - 2], K = ad.back(), N = bd.back();
    RUNNX_CHECK(bd[bd.size() - 2] == K, kInvalidArgument, ctx.node().label(), ": inner dimensions differ: ",
                shape_str(a.shape), " x ", shape_str(b.shape));
    Shape ab(ad.begin(), ad.end() - 2), bb(bd.begin(), bd.end() - 2);
    Shape batch = broadcast_shapes({&ab, &bb}, ctx.node());
    Shape out = batch;
    if (a.rank() > 1) out.push_back(M);
    if (b.rank() > 1) out.push_back(N);
    Tensor& y = ctx.allocate_output(0, a.dtype, out);
    if (y.numel() == 0) return;
    matmul(ctx, a, ad, b, bd, false, y.data, Epilogue{}, batch, M, K, N);
  }
};

Activation parse_gemm_activation(const Node& node, float& p0, float& p1) {
  const std::string a = node.get_string("activation", "");
  p0 = node.get_float("clip_min", -std::numeric_limits<float>::infinity());
  p1 = node.get_float("clip_max", std::numeric_limits<float>::infinity());
  if (a.empty()) return Activation::kNone;
  if (a == "Relu") return Activation::kRelu;
  if (a == "Clip") return Activation::kClip;
  if (a == "Sigmoid") return Activation::kSigmoid;
  if (a == "Tanh") return Activation::kTanh;
  if (a == "Gelu") return Activation::kGeluErf;
  if (a == "GeluTanh") return Activation::kGeluTanh;
  fail(ErrorKind::kInvalidModel, node.label(), ": unknown activation '", a, "'");
}

// com.runnx FusedGemm: act(A[..., K] x B + bias + residual).
class FusedGemmKernel : public CudaKernel {
 public:
  explicit FusedGemmKernel(const CudaNodeInfo& info)
      : trans_b_(info.node.get_int("trans_b", 0) != 0), act_(parse_gemm_activation(info.node, p0_, p1_)) {}
  void run(CudaContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& a = ctx.required_input(0);
    const Tensor& b = ctx.required_input(1);
    const Tensor* bias = ctx.input(2);
    const Tensor* res = ctx.input(3);
    RUNNX_CHECK(a.rank() >= 1 && b.rank() == 2, kInvalidArgument, node.label(), ": A must have rank >= 1 and B rank 2");
    const int64_t K = trans_b_ ? b.shape[1] : b.shape[0], N = trans_b_ ? b.shape[0] : b.shape[1];
    RUNNX_CHECK(a.shape.back() == K, kInvalidArgument, node.label(), ": inner dimensions differ: A ",
                shape_str(a.shape), ", B ", shape_str(b.shape));
    Shape out(a.shape.begin(), a.shape.end() - 1);
    out.push_back(N);
    if (bias) {
      RUNNX_CHECK(bias->numel() == N && bias->rank() >= 1 && bias->shape.back() == N, kInvalidArgument, node.label(),
                  ": bias of shape ", shape_str(bias->shape), " is not one value per output column (", N, ")");
      out = broadcast_shapes({&out, &bias->shape}, node);
    }
    const int64_t rows = N > 0 ? shape_numel(out) / N : 0;
    Epilogue epi;
    epi.bias = bias ? bias->data : nullptr;
    Shape full = res ? broadcast_shapes({&out, &res->shape}, node) : out;
    Tensor& y = ctx.allocate_output(0, a.dtype, full);
    if (y.numel() == 0) return;
    if (full != out) {
      // The residual adds batch dims: product (with bias) into scratch, then add and activate.
      auto* tmp = ctx.workspace(padded_bytes(out, a.dtype));
      matmul(ctx, a, {rows, K}, b, b.shape, trans_b_, tmp, epi, {}, rows, K, N);
      launch_binary(BinaryOp::kAdd, a.dtype, tmp, out, res->data, res->shape, y.data, ctx.stream());
      if (act_ != Activation::kNone) {
        UnaryFn f;
        f.op = UnaryOp::kActivation;
        f.act = act_;
        f.p0 = p0_;
        f.p1 = p1_;
        launch_unary(f, a.dtype, y.data, y.data, y.numel(), ctx.stream());
      }
      return;
    }
    epi.act = act_;
    epi.p0 = p0_;
    epi.p1 = p1_;
    uint8_t* scratch = nullptr;
    if (res) {
      if (res->shape != out) scratch = static_cast<uint8_t*>(ctx.workspace(padded_bytes(out, a.dtype)));
      epi.residual = expanded(ctx, *res, out, scratch);
      epi.ldr = N;
    }
    matmul(ctx, a, {rows, K}, b, b.shape, trans_b_, y.data, epi, {}, rows, K, N);
  }

 private:
  bool trans_b_;
  float p0_ = 0.f, p1_ = 0.f;
  Activation act_;
};

// ONNX Gemm: alpha * A' B' + beta * C (transA stays on the CPU).
class GemmKernel : public CudaKernel {
 public:
  explicit GemmKernel(const CudaNodeInfo& info)
      : trans_b_(info.node.get_int("transB", 0) != 0),
        alpha_(info.node.get_float("alpha", 1.f)),
        beta_(info.node.get_float("beta", 1.f)) {}
  void run(CudaContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& a = ctx.required_input(0);
    const Tensor& b = ctx.required_input(1);
    const Tensor* c = ctx.input(2);
    RUNNX_CHECK(a.rank() == 2 && b.rank() == 2, kInvalidArgument, node.label(), ": A and B must be 2-D");
    const int64_t M = a.shape[0], K = a.shape[1];
    const int64_t N = trans_b_ ? b.shape[0] : b.shape[1];
    RUNNX_CHECK((trans_b_ ? b.shape[1] : b.shape[0]) == K, kInvalidArgument, node.label(), ": inner dimensions differ");
    Tensor& y = ctx.allocate_output(0, a.dtype, {M, N});
    if (y.numel() == 0) return;
    Epilogue epi;
    epi.alpha = alpha_;
    uint8_t* scratch = nullptr;
    if (c && beta_ != 0.f) {
      const bool per_column = c->numel() == N && (c->rank() == 1 || (c->rank() == 2 && c->shape[0] == 1));
      if (per_column && beta_ == 1.f && N != 1) {
        epi.bias = c->data;
      } else {
        Shape mn = {M, N};
        Shape cs = c->shape;
        Shape check = broadcast_shapes({&mn, &cs}, node);
        RUNNX_CHECK(check == mn, kInvalidArgument, node.label(), ": C of shape ", shape_str(c->shape),
                    " does not broadcast to [", M, ",", N, "]");
        if (c->shape != mn) scratch = static_cast<uint8_t*>(ctx.workspace(padded_bytes(mn, a.dtype)));
        epi.residual = expanded(ctx, *c, mn, scratch);
        epi.beta = beta_;
        epi.ldr = N;
      }
    }
    matmul(ctx, a, a.shape, b, b.shape, trans_b_, y.data, epi, {}, M, K, N);
  }

 private:
  bool trans_b_;
  float alpha_, beta_;
};

std::string float_operands(const CudaNodeInfo& info) {
  std::string why = check_dtypes(info, kFloat, {0, 1, 2, 3});
  if (!why.empty()) return why;
  for (int k = 1; k < info.num_inputs(); ++k)
    if (info.has_input(k) && info.input_dtype(k) != info.input_dtype(0)) return "operands of mixed dtypes";
  return "";
}

}  // namespace

void register_cuda_gemm_ops(CudaOpRegistry& r) {
  r.add(make_schema("MatMul", 1, float_operands, [](const CudaNodeInfo&) { return std::make_unique<MatMulKernel>(); }));
  r.add(make_schema(
      "Gemm", 7,
      [](const CudaNodeInfo& info) {
        if (info.node.get_int("transA", 0) != 0) return std::string("transA=1 has no CUDA kernel");
        return float_operands(info);
      },
      [](const CudaNodeInfo& info) { return std::make_unique<GemmKernel>(info); }));
  r.add(make_schema(
      "FusedGemm", 1, float_operands, [](const CudaNodeInfo& info) { return std::make_unique<FusedGemmKernel>(info); },
      "com.runnx"));
}

}  // namespace runnx::cuda
