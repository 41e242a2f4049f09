// com.runnx FusedGemm: Y = act(A * B + bias + residual), made by the gemm_fusion pass from
// MatMul/Gemm followed by bias Add, residual Add and an activation.
//
//   inputs:  A [..., K] float; B [K, N] (or [N, K] with trans_b = 1), usually a constant;
//            bias (optional) with N elements, broadcast along the last axis;
//            residual (optional) broadcastable against [..., N]
//   attrs:   activation "" | Relu | Clip | Sigmoid | Tanh | Gelu | GeluTanh; clip_min, clip_max;
//            trans_b
//
// A constant B is packed once here. When the residual has exactly the output's shape (the usual
// skip connection) it is added in the GEMM epilogue; any other broadcast is added afterwards.
#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "kernels/cpu/gemm.h"
#include "ops/kernel.h"
#include "ops/matmul_util.h"
#include "ops/op_util.h"

namespace runnx {
namespace {

GemmEpilogue::Act parse_activation(const Node& node) {
  const std::string a = node.get_string("activation", "");
  if (a.empty()) return GemmEpilogue::Act::kNone;
  if (a == "Relu") return GemmEpilogue::Act::kRelu;
  if (a == "Clip") return GemmEpilogue::Act::kClip;
  if (a == "Sigmoid") return GemmEpilogue::Act::kSigmoid;
  if (a == "Tanh") return GemmEpilogue::Act::kTanh;
  if (a == "Gelu") return GemmEpilogue::Act::kGeluErf;
  if (a == "GeluTanh") return GemmEpilogue::Act::kGeluTanh;
  fail(ErrorKind::kInvalidModel, node.label(), ": unknown activation '", a, "'");
}

class FusedGemmKernel : public Kernel {
 public:
  explicit FusedGemmKernel(const KernelInfo& info) {
    const Node& node = info.node;
    act_ = parse_activation(node);
    clip_lo_ = node.get_float("clip_min", -std::numeric_limits<float>::infinity());
    clip_hi_ = node.get_float("clip_max", std::numeric_limits<float>::infinity());
    trans_b_ = node.get_int("trans_b", 0) != 0;
    has_bias_ = node.inputs.size() > 2 && !node.inputs[2].empty();
    has_residual_ = node.inputs.size() > 3 && !node.inputs[3].empty();
    const_b_ = ConstantB(info, trans_b_);
  }

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& a = ctx.required_input(0);
    const Tensor& b = ctx.required_input(1);
    const Tensor* bias = ctx.input(2);
    const Tensor* res = ctx.input(3);
    auto is_f32 = [](const Tensor* t) { return !t || t->dtype == DType::kF32; };
    RUNNX_CHECK(a.dtype == DType::kF32 && is_f32(&b) && is_f32(bias) && is_f32(res), kInvalidArgument,
                node.label(), ": all inputs must be float32");
    RUNNX_CHECK(a.rank() >= 1 && b.rank() == 2, kInvalidArgument, node.label(), ": A must have rank >= 1 and B rank 2, got ",
                shape_str(a.shape), " and ", shape_str(b.shape));
    const int64_t K = trans_b_ ? b.shape[1] : b.shape[0], N = trans_b_ ? b.shape[0] : b.shape[1];
    RUNNX_CHECK(a.shape.back() == K, kInvalidArgument, node.label(), ": inner dimensions differ: A ",
                shape_str(a.shape), ", B ", shape_str(b.shape), trans_b_ ? " (transposed)" : "");
    // One allocation for the output's shape on the usual path (this runs per call per layer).
    Shape out;
    out.reserve(a.shape.size());
    out.assign(a.shape.begin(), a.shape.end() - 1);
    out.push_back(N);
    if (bias) {
      RUNNX_CHECK(bias->numel() == N && bias->rank() >= 1 && bias->shape.back() == N, kInvalidArgument,
                  node.label(), ": bias of shape ", shape_str(bias->shape), " is not one value per output column (",
                  N, ")");
      // Its other dims are all 1: it only adds leading 1s when of higher rank.
      if (bias->shape.size() > out.size()) out = broadcast_shapes({&out, &bias->shape}, node);
    }
    const int64_t rows = N > 0 ? shape_numel(out) / N : 0;

    GemmEpilogue epi;
    epi.bias = bias ? bias->ptr<float>() : nullptr;
    epi.clip_lo = clip_lo_;
    epi.clip_hi = clip_hi_;
    const bool fused_residual = res && res->shape == out;
    if (!res || fused_residual) {
      Tensor& y = ctx.allocate_output(0, DType::kF32, std::move(out));
      if (y.numel() == 0) return;
      epi.act = act_;
      if (fused_residual) {
        epi.residual = res->ptr<float>();
        epi.ldr = N;
      }
      product(a, b, rows, K, N, y.ptr<float>(), epi, ctx.pool());
      return;
    }
    // A residual that broadcasts: the product (with bias) first, then the broadcast add and act.
    Shape full = broadcast_shapes({&out, &res->shape}, node);
    Tensor tmp = Tensor::empty(DType::kF32, out);
    if (tmp.numel() > 0) product(a, b, rows, K, N, tmp.ptr<float>(), epi, ctx.pool());
    Tensor& y = ctx.allocate_output(0, DType::kF32, full);
    if (y.numel() == 0) return;
    const std::vector<int64_t> st = broadcast_strides(out, full), sr = broadcast_strides(res->shape, full);
    std::vector<int64_t> idx(full.size(), 0);
    const float* pt = tmp.ptr<float>();
    const float* pr = res->ptr<float>();
    float* py = y.ptr<float>();
    for (int64_t e = 0, n = y.numel(); e < n; ++e) {
      int64_t ot = 0, orr = 0;
      for (size_t d = 0; d < full.size(); ++d) {
        ot += idx[d] * st[d];
        orr += idx[d] * sr[d];
      }
      py[e] = pt[ot] + pr[orr];
      for (int64_t d = static_cast<int64_t>(full.size()) - 1; d >= 0; --d) {
        if (++idx[d] < full[d]) break;
        idx[d] = 0;
      }
    }
    GemmEpilogue act_only;
    act_only.act = act_;
    act_only.clip_lo = clip_lo_;
    act_only.clip_hi = clip_hi_;
    const int64_t last = full.empty() ? 1 : full.back();
    gemm_epilogue_f32(act_only, 0, y.numel() / std::max<int64_t>(last, 1), 0, last, py, last);
  }

  std::string describe() const override {
    static const char* names[] = {"", "Relu", "Clip", "Sigmoid", "Tanh", "Gelu", "GeluTanh", "LeakyRelu", "HardSwish"};
    std::string epi = has_bias_ ? "bias" : "";
    if (has_residual_) epi += std::string(epi.empty() ? "" : ", ") + "residual";
    if (act_ != GemmEpilogue::Act::kNone) epi += std::string(epi.empty() ? "" : ", ") + names[static_cast<int>(act_)];
    return std::string("sgemm ") + gemm_f32_isa() + (const_b_.packed.empty() ? "" : ", B packed at load") +
           (epi.empty() ? "" : "; epilogue: " + epi);
  }

 private:
  void product(const Tensor& a, const Tensor& b, int64_t rows, int64_t K, int64_t N, float* y,
               const GemmEpilogue& epi, ThreadPool& pool) const {
    if (const_b_.is(b)) {
      gemm_f32_packed(rows, a.ptr<float>(), K, const_b_.packed, y, N, 0.f, epi, &pool);
      return;
    }
    std::vector<float> bt;
    const float* B = b.ptr<float>();
    if (trans_b_) {
      bt.resize(static_cast<size_t>(K * N));
      transpose_matrix<float>(N, K, B, K, bt.data());
      B = bt.data();
    }
    gemm_f32_epilogue(rows, N, K, a.ptr<float>(), K, B, N, y, N, 0.f, epi, &pool);
  }

  GemmEpilogue::Act act_ = GemmEpilogue::Act::kNone;
  float clip_lo_ = 0, clip_hi_ = 0;
  bool trans_b_ = false, has_bias_ = false, has_residual_ = false;
  ConstantB const_b_;
};

}  // namespace

void register_fused_gemm_ops(OpRegistry& r) { r.add("FusedGemm", "com.runnx", 1, factory<FusedGemmKernel>()); }

}  // namespace runnx
