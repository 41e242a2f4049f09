// Fused multi-head attention with an online softmax: the S x Sk score matrix is never stored.
//
//   O[b][h][i][:] = sum_j softmax_j( scale * (Q[b][h][i][:] . K[b][h][j][:]) + mask[b][h][i][j] ) * V[b][h][j][:]
//
// the CPU com.runnx ScaledDotProductAttention (csrc/ops/fused_attention.cc) semantics: scale
// multiplies the dot product, the additive mask is added after it. A row whose scores are all
// -inf gives NaN, as on the CPU; Sk = 0 gives zeros.
//
// Layout: every tensor is addressed through four element strides (batch, head, sequence, feature),
// so head-split transposes never need to be materialised:
//   Q (b,h,i,d)  at q + b*q_st.b + h*q_st.h + i*q_st.s + d*q_st.d      [B, heads, S, D]
//   K (b,h,j,d)  at k + ...                                             [B, heads, Sk, D]
//                (K^T stored as [.., D, Sk], as exporters write it, is K with s and d strides swapped)
//   V (b,h,j,e)  at v + ...                                             [B, heads, Sk, Dv]
//   O (b,h,i,e)  at o + ...                                             [B, heads, S, Dv]
//                (e.g. o_st = {S*heads*Dv, Dv, heads*Dv, 1} writes [B, S, heads*Dv] directly)
//   mask (b,h,i,j) at mask + ...; stride 0 broadcasts (e.g. {Sk, 0, 0, 1} for a [B,1,1,Sk] padding mask); null = none
// dtypes: launch_attention_f32: all float; launch_attention_f16: q, k, v, o, mask __half; all math in fp32.
// Limits: D, Dv <= kAttentionMaxHeadDim (attention_supported says whether the arguments fit; the
// launchers throw UnsupportedOp otherwise, before launching anything).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace runnx::cuda {

constexpr int64_t kAttentionMaxHeadDim = 128;

struct Strides4 {
  int64_t b = 0, h = 0, s = 0, d = 0;
};

struct AttentionArgs {
  int64_t B = 0, heads = 0, S = 0, Sk = 0, D = 0, Dv = 0;
  const void* q = nullptr;
  Strides4 q_st;
  const void* k = nullptr;
  Strides4 k_st;
  const void* v = nullptr;
  Strides4 v_st;
  void* o = nullptr;
  Strides4 o_st;
  const void* mask = nullptr;
  Strides4 mask_st;
  float scale = 1.f;
};

bool attention_supported(const AttentionArgs& args);
void launch_attention_f32(const AttentionArgs& args, cudaStream_t stream);
void launch_attention_f16(const AttentionArgs& args, cudaStream_t stream);

}  // namespace runnx::cuda
