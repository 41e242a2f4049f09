// Inference for runnx's fused ops from csrc/passes (com.runnx): FusedGemm (A[..., K] times a
// 2-D B, [..., N], broadcast with the bias and the residual as the Adds it replaced could),
// ScaledDotProductAttention and Gelu (element-wise).
#include <algorithm>

#include "infer/infer.h"

namespace runnx {

namespace {

// Right-aligned numpy broadcast of `out` with another dim list.
std::vector<SymDim> broadcast_with(std::vector<SymDim> out, const std::vector<SymDim>& other) {
  const size_t rank = std::max(out.size(), other.size());
  std::vector<SymDim> b(rank, SymDim(1));
  for (size_t i = 0; i < out.size(); ++i) b[rank - out.size() + i] = out[i];
  for (size_t i = 0; i < other.size(); ++i) {
    SymDim& o = b[rank - other.size() + i];
    o = broadcast(o, other[i]);
  }
  return b;
}

void fused_gemm(InferContext& ctx) {
  const DType t = same_dtype(ctx, {0, 1});
  const bool tb = ctx.node().get_int("trans_b", 0) != 0;
  const std::vector<SymDim>* a = ctx.dims(0);
  const std::vector<SymDim>* b = ctx.dims(1);
  if (a) ctx.check(!a->empty(), "A must have rank >= 1");
  if (b) ctx.check(b->size() == 2, "B must be 2-D");
  if (!a || !b) return ctx.set_output_unknown_shape(0, t);
  const SymDim& K = a->back();
  const SymDim& Kb = (*b)[tb ? 1 : 0];
  if (K.is_const() && Kb.is_const() && K.value() != Kb.value())
    ctx.fail("inner dimensions differ: A has ", K.str(), ", B has ", Kb.str());
  std::vector<SymDim> out(a->begin(), a->end() - 1);
  out.push_back((*b)[tb ? 0 : 1]);
  for (int i : {2, 3}) {
    if (!ctx.has_input(i)) continue;
    const std::vector<SymDim>* d = ctx.dims(i);
    if (!d) return ctx.set_output_unknown_shape(0, t);
    out = broadcast_with(std::move(out), *d);
  }
  ctx.set_output(0, t, std::move(out));
}

// Q [..., S, D], KT [..., D, Sk], V [..., Sk, Dv], mask -> [batch..., S, Dv] with the batch
// dims of all four broadcast. The mask is added to the scores, so it shares their dtype (the
// CUDA kernel reads it as Q's type).
// Layout "bshd" (heads interleaved): Q [B, S, H, D], K [B, Sk, H, D], V [B, Sk, H, Dv] -> [B, S, H, Dv].
void attention(InferContext& ctx) {
  const DType t = same_dtype(ctx, {0, 1, 2, 3});
  if (ctx.node().get_string("layout", "") == "bshd") {
    std::vector<SymDim> bh;  // [B, H] of all four
    for (int i : {0, 1, 2, 3}) {
      if (!ctx.has_input(i)) continue;
      const std::vector<SymDim>* d = ctx.dims(i);
      if (!d) return ctx.set_output_unknown_shape(0, t);
      if (i < 3) ctx.check(d->size() == 4, "layout bshd needs Q, K and V of rank 4");
      bh = broadcast_with(std::move(bh), i < 3 ? std::vector<SymDim>{(*d)[0], (*d)[2]}
                                               : std::vector<SymDim>(d->begin(), d->end() - std::min<size_t>(2, d->size())));
    }
    ctx.check(bh.size() == 2, "the mask has more batch dims than [B, H] (layout bshd)");
    ctx.set_output(0, t, {bh[0], (*ctx.dims(0))[1], bh[1], ctx.dims(2)->back()});
    return;
  }
  std::vector<SymDim> batch;
  for (int i : {0, 1, 2, 3}) {
    if (!ctx.has_input(i)) continue;
    const std::vector<SymDim>* d = ctx.dims(i);
    if (!d) return ctx.set_output_unknown_shape(0, t);
    if (i < 3) ctx.check(d->size() >= 2, "Q, K^T and V must have rank >= 2");
    const std::vector<SymDim> b(d->begin(), d->end() - std::min<size_t>(2, d->size()));
    batch = broadcast_with(std::move(batch), b);
  }
  std::vector<SymDim> out = batch;
  out.push_back((*ctx.dims(0))[ctx.dims(0)->size() - 2]);
  out.push_back(ctx.dims(2)->back());
  ctx.set_output(0, t, std::move(out));
}

void gelu(InferContext& ctx) { like_input(ctx, 0, 0, ctx.input(0).dtype); }

}  // namespace

void register_fused_gemm_infer(InferRegistry& r) {
  r.add("FusedGemm", "com.runnx", fused_gemm);
  r.add("Gelu", "com.runnx", gelu);
  r.add("ScaledDotProductAttention", "com.runnx", attention);
}

}  // namespace runnx
