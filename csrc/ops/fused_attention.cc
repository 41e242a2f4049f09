// com.runnx ScaledDotProductAttention: Y = softmax(scale * Q K^T + mask) V, made by the
// attention_fusion pass from MatMul -> Div/Mul -> Add(mask) -> Softmax -> MatMul.
//
//   inputs: Q [..., S, D]; KT [..., D, Sk] (K already transposed, as exporters write it);
//           V [..., Sk, Dv]; mask (optional) broadcastable to [..., S, Sk]. All float32; batch
//           dims broadcast as MatMul's do.
//   attrs:  scale (multiplier of the scores, default 1)
//   output: [batch..., S, Dv]
//
// Work is split into (batch, block of query rows) tasks. A task computes its block of scores
// (rows x Sk, in a per-thread buffer), scales, masks and softmaxes it in place, and multiplies by
// V: the full S x Sk score matrix never exists, whatever the sequence length. Blocks are as tall
// as a score buffer of kScoreFloats allows (K^T and V are packed once per block, so taller blocks
// pack them less often), but short enough that every thread gets a few tasks.
#include <algorithm>
#include <vector>

#include "kernels/cpu/gemm.h"
#include "ops/kernel.h"
#include "ops/op_util.h"

namespace runnx {
namespace {

constexpr int64_t kMinRows = 16;
constexpr int64_t kScoreFloats = 16384;  // 64 KB of scores per thread: stays in L2

// Query rows per task: as many as the score buffer holds, halved while the threads would get
// fewer than three tasks each.
int64_t rows_per_task(int64_t S, int64_t Sk, int64_t batches, int threads) {
  int64_t rows = std::min(S, std::max(kMinRows, kScoreFloats / std::max<int64_t>(Sk, 1)));
  while (rows > kMinRows && batches * ((S + rows - 1) / rows) < 3 * threads) rows = (rows + 1) / 2;
  return std::max<int64_t>(rows, 1);
}

class AttentionKernel : public Kernel {
 public:
  explicit AttentionKernel(const KernelInfo& info) : scale_(info.node.get_float("scale", 1.0f)) {}

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& q = ctx.required_input(0);
    const Tensor& kt = ctx.required_input(1);
    const Tensor& v = ctx.required_input(2);
    const Tensor* mask = ctx.input(3);
    for (const Tensor* t : {&q, &kt, &v, mask})
      RUNNX_CHECK(!t || t->dtype == DType::kF32, kInvalidArgument, node.label(), ": inputs must be float32");
    RUNNX_CHECK(q.rank() >= 2 && kt.rank() >= 2 && v.rank() >= 2, kInvalidArgument, node.label(),
                ": Q, K^T and V must have rank >= 2, got ", shape_str(q.shape), ", ", shape_str(kt.shape), ", ",
                shape_str(v.shape));
    const int64_t S = q.shape[q.rank() - 2], D = q.shape.back();
    const int64_t Sk = kt.shape.back(), Dv = v.shape.back();
    RUNNX_CHECK(kt.shape[kt.rank() - 2] == D && v.shape[v.rank() - 2] == Sk, kInvalidArgument, node.label(),
                ": shapes do not chain: Q ", shape_str(q.shape), ", K^T ", shape_str(kt.shape), ", V ",
                shape_str(v.shape));
    const Shape qb(q.shape.begin(), q.shape.end() - 2), kb(kt.shape.begin(), kt.shape.end() - 2),
        vb(v.shape.begin(), v.shape.end() - 2);
    Shape mb, mask_rc = {1, 1};
    if (mask) {
      Shape ms = mask->shape;
      while (ms.size() < 2) ms.insert(ms.begin(), 1);
      mb.assign(ms.begin(), ms.end() - 2);
      mask_rc = {ms[ms.size() - 2], ms.back()};
      RUNNX_CHECK((mask_rc[0] == 1 || mask_rc[0] == S) && (mask_rc[1] == 1 || mask_rc[1] == Sk), kInvalidArgument,
                  node.label(), ": mask of shape ", shape_str(mask->shape), " does not broadcast to the scores [..., ",
                  S, ", ", Sk, "]");
    }
    const Shape batch = broadcast_shapes({&qb, &kb, &vb, &mb}, node);
    Shape out = batch;
    out.push_back(S);
    out.push_back(Dv);
    Tensor& y = ctx.allocate_output(0, DType::kF32, out);
    if (y.numel() == 0) return;
    const int64_t nb = shape_numel(batch);
    const std::vector<int64_t> sq = broadcast_strides(qb, batch), sk = broadcast_strides(kb, batch),
                               sv = broadcast_strides(vb, batch), sm = broadcast_strides(mb, batch);
    // Matrix offsets per output batch.
    std::vector<int64_t> oq(nb), ok(nb), ov(nb), om(nb), idx(batch.size(), 0);
    for (int64_t t = 0; t < nb; ++t) {
      int64_t a = 0, b = 0, c = 0, d = 0;
      for (size_t k = 0; k < batch.size(); ++k) {
        a += idx[k] * sq[k];
        b += idx[k] * sk[k];
        c += idx[k] * sv[k];
        d += idx[k] * sm[k];
      }
      oq[t] = a * S * D;
      ok[t] = b * D * Sk;
      ov[t] = c * Sk * Dv;
      om[t] = d * mask_rc[0] * mask_rc[1];
      for (int64_t k = static_cast<int64_t>(batch.size()) - 1; k >= 0; --k) {
        if (++idx[k] < batch[k]) break;
        idx[k] = 0;
      }
    }
    const int64_t block_rows = rows_per_task(S, Sk, nb, ctx.pool().num_threads());
    const int64_t blocks = (S + block_rows - 1) / block_rows;
    const float *Q = q.ptr<float>(), *KT = kt.ptr<float>(), *V = v.ptr<float>();
    const float* M = mask ? mask->ptr<float>() : nullptr;
    float* Y = y.ptr<float>();
    const int64_t macs_per_task = block_rows * Sk * (D + Dv);
    ctx.pool().parallel_for(nb * blocks, std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(1, macs_per_task)),
                            [&](int64_t t0, int64_t t1) {
      thread_local std::vector<float> scores, mask_rows;
      scores.resize(static_cast<size_t>(block_rows * Sk));
      for (int64_t task = t0; task < t1; ++task) {
        const int64_t t = task / blocks, i0 = (task % blocks) * block_rows, r = std::min(block_rows, S - i0);
        gemm_f32(r, Sk, D, Q + oq[t] + i0 * D, D, KT + ok[t], Sk, scores.data(), Sk, 0.f, nullptr);
        const float* mrow = nullptr;
        int64_t mask_ld = 0;
        if (M) {
          const float* base = M + om[t] + (mask_rc[0] == 1 ? 0 : i0 * mask_rc[1]);
          if (mask_rc[1] == Sk) {
            mrow = base;
            mask_ld = mask_rc[0] == 1 ? 0 : Sk;
          } else {
            // One mask value per row (or one for all): spread it over the row.
            mask_rows.resize(static_cast<size_t>(block_rows * Sk));
            for (int64_t i = 0; i < r; ++i)
              std::fill(mask_rows.begin() + i * Sk, mask_rows.begin() + (i + 1) * Sk, base[mask_rc[0] == 1 ? 0 : i]);
            mrow = mask_rows.data();
            mask_ld = Sk;
          }
        }
        softmax_rows_f32(scores.data(), r, Sk, Sk, scale_, mrow, mask_ld);
        gemm_f32(r, Dv, Sk, scores.data(), Sk, V + ov[t], Dv, Y + (t * S + i0) * Dv, Dv, 0.f, nullptr);
      }
    });
  }

  std::string describe() const override {
    return std::string("blocks of query rows (scores <= ") + std::to_string(kScoreFloats) + " floats): sgemm " +
           gemm_f32_isa() + ", masked softmax, sgemm";
  }

 private:
  float scale_;
};

}  // namespace

void register_fused_attention_ops(OpRegistry& r) {
  r.add("ScaledDotProductAttention", "com.runnx", 1, factory<AttentionKernel>());
}

}  // namespace runnx
