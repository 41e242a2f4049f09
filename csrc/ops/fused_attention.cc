// com.runnx ScaledDotProductAttention: Y = softmax(scale * Q K^T + mask) V, made by the
// attention_fusion pass from MatMul -> Div/Mul -> Add(mask) -> Softmax -> MatMul.
//
//   inputs: Q [..., S, D]; KT [..., D, Sk] (K already transposed, as exporters write it);
//           V [..., Sk, Dv]; mask (optional) broadcastable to [..., S, Sk]. All float32; batch
//           dims broadcast as MatMul's do.
//   attrs:  scale (multiplier of the scores, default 1)
//           layout "" (as above) | "bshd": heads interleaved as the projections make them, the
//           head split and merge Transposes folded in (attention_layout pass): Q [B, S, H, D],
//           K [B, Sk, H, D] (not transposed), V [B, Sk, H, Dv], Y [B, S, H, Dv]; B and H
//           broadcast, and the mask broadcasts to the scores [B, H, S, Sk] as before.
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

// Where one operand's matrix of each (batch..., head) problem starts, and its row pitch.
struct Matrices {
  std::vector<int64_t> start;  // per flattened batch index
  int64_t ld = 0;
};

// Offsets of every batch index from per-dim strides over the broadcast batch shape.
std::vector<int64_t> batch_offsets(const Shape& batch, const std::vector<int64_t>& strides) {
  const int64_t nb = shape_numel(batch);
  std::vector<int64_t> out(static_cast<size_t>(nb)), idx(batch.size(), 0);
  for (int64_t t = 0; t < nb; ++t) {
    int64_t o = 0;
    for (size_t k = 0; k < batch.size(); ++k) o += idx[k] * strides[k];
    out[t] = o;
    for (int64_t k = static_cast<int64_t>(batch.size()) - 1; k >= 0; --k) {
      if (++idx[k] < batch[k]) break;
      idx[k] = 0;
    }
  }
  return out;
}

// Default layout: an operand [bdims..., rows, cols] with contiguous matrices.
Matrices stacked(const Shape& shape, const Shape& batch) {
  const int64_t rows = shape[shape.size() - 2], cols = shape.back();
  const Shape bdims(shape.begin(), shape.end() - 2);
  std::vector<int64_t> st = broadcast_strides(bdims, batch);
  for (int64_t& s : st) s *= rows * cols;
  return {batch_offsets(batch, st), cols};
}

// "bshd": an operand [B, rows, H, cols]; problem (b, h) starts at b*rows*H*cols + h*cols.
Matrices interleaved(const Shape& shape, const Shape& batch) {
  const int64_t rows = shape[1], heads = shape[2], cols = shape[3];
  const std::vector<int64_t> st = {shape[0] == 1 ? 0 : rows * heads * cols, heads == 1 ? 0 : cols};
  return {batch_offsets(batch, st), heads * cols};
}

class AttentionKernel : public Kernel {
 public:
  explicit AttentionKernel(const KernelInfo& info) : scale_(info.node.get_float("scale", 1.0f)) {
    const std::string layout = info.node.get_string("layout", "");
    RUNNX_CHECK(layout.empty() || layout == "bshd", kInvalidModel, info.node.label(), ": unknown layout '", layout,
                "' (expected \"\" or \"bshd\")");
    bshd_ = layout == "bshd";
  }

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& q = ctx.required_input(0);
    const Tensor& k = ctx.required_input(1);
    const Tensor& v = ctx.required_input(2);
    const Tensor* mask = ctx.input(3);
    for (const Tensor* t : {&q, &k, &v, mask})
      RUNNX_CHECK(!t || t->dtype == DType::kF32, kInvalidArgument, node.label(), ": inputs must be float32");
    int64_t S, D, Sk, Dv;
    Shape qb, kb, vb;
    if (bshd_) {
      RUNNX_CHECK(q.rank() == 4 && k.rank() == 4 && v.rank() == 4, kInvalidArgument, node.label(),
                  ": layout bshd needs Q, K and V of rank 4, got ", shape_str(q.shape), ", ", shape_str(k.shape), ", ",
                  shape_str(v.shape));
      S = q.shape[1], D = q.shape[3], Sk = k.shape[1], Dv = v.shape[3];
      RUNNX_CHECK(k.shape[3] == D && v.shape[1] == Sk, kInvalidArgument, node.label(),
                  ": shapes do not chain: Q ", shape_str(q.shape), ", K ", shape_str(k.shape), ", V ",
                  shape_str(v.shape), " (layout bshd)");
      qb = {q.shape[0], q.shape[2]}, kb = {k.shape[0], k.shape[2]}, vb = {v.shape[0], v.shape[2]};
    } else {
      RUNNX_CHECK(q.rank() >= 2 && k.rank() >= 2 && v.rank() >= 2, kInvalidArgument, node.label(),
                  ": Q, K^T and V must have rank >= 2, got ", shape_str(q.shape), ", ", shape_str(k.shape), ", ",
                  shape_str(v.shape));
      S = q.shape[q.rank() - 2], D = q.shape.back(), Sk = k.shape.back(), Dv = v.shape.back();
      RUNNX_CHECK(k.shape[k.rank() - 2] == D && v.shape[v.rank() - 2] == Sk, kInvalidArgument, node.label(),
                  ": shapes do not chain: Q ", shape_str(q.shape), ", K^T ", shape_str(k.shape), ", V ",
                  shape_str(v.shape));
      qb.assign(q.shape.begin(), q.shape.end() - 2), kb.assign(k.shape.begin(), k.shape.end() - 2),
          vb.assign(v.shape.begin(), v.shape.end() - 2);
    }
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
    RUNNX_CHECK(!bshd_ || batch.size() == 2, kInvalidArgument, node.label(), ": mask of shape ",
                shape_str(mask ? mask->shape : Shape{}), " has more batch dims than [B, H] (layout bshd)");
    Shape out = batch;
    if (bshd_) out = {batch[0], S, batch[1], Dv};
    else out.insert(out.end(), {S, Dv});
    Tensor& y = ctx.allocate_output(0, DType::kF32, out);
    if (y.numel() == 0) return;
    const int64_t nb = shape_numel(batch);
    // Q's rows and V are read in place; K (as K^T) is packed once per matrix and chunk, transposing it
    // for bshd.
    const Matrices mq = bshd_ ? interleaved(q.shape, batch) : stacked(q.shape, batch);
    const Matrices mk = bshd_ ? interleaved(k.shape, batch) : stacked(k.shape, batch);
    const Matrices mv = bshd_ ? interleaved(v.shape, batch) : stacked(v.shape, batch);
    const Matrices my = bshd_ ? interleaved(out, batch) : stacked(out, batch);
    std::vector<int64_t> ms = broadcast_strides(mb, batch);
    for (int64_t& s : ms) s *= mask_rc[0] * mask_rc[1];
    const std::vector<int64_t> om = batch_offsets(batch, ms);
    const int64_t block_rows = rows_per_task(S, Sk, nb, ctx.pool().num_threads());
    const int64_t blocks = (S + block_rows - 1) / block_rows;
    const float *Q = q.ptr<float>(), *K = k.ptr<float>(), *V = v.ptr<float>();
    const float* M = mask ? mask->ptr<float>() : nullptr;
    float* Y = y.ptr<float>();
    const int64_t macs_per_task = block_rows * Sk * (D + Dv);
    ctx.pool().parallel_for(nb * blocks, std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(1, macs_per_task)),
                            [&](int64_t t0, int64_t t1) {
      thread_local std::vector<float> scores, mask_rows;
      scores.resize(static_cast<size_t>(block_rows * Sk));
      PackedB kt;  // K^T of matrix `kt_of`: a chunk's consecutive tasks share it
      int64_t kt_of = -1;
      for (int64_t task = t0; task < t1; ++task) {
        const int64_t t = task / blocks, i0 = (task % blocks) * block_rows, r = std::min(block_rows, S - i0);
        if (t != kt_of) {
          kt = pack_b_f32(D, Sk, K + mk.start[t], mk.ld, /*transposed=*/bshd_);
          kt_of = t;
        }
        gemm_f32_packed(r, Q + mq.start[t] + i0 * mq.ld, mq.ld, kt, scores.data(), Sk, 0.f, GemmEpilogue{}, nullptr);
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
        gemm_f32(r, Dv, Sk, scores.data(), Sk, V + mv.start[t], mv.ld, Y + my.start[t] + i0 * my.ld, my.ld, 0.f,
                 nullptr);
      }
    });
  }

  std::string describe() const override {
    return std::string("blocks of query rows (scores <= ") + std::to_string(kScoreFloats) + " floats): sgemm " +
           gemm_f32_isa() + ", masked softmax, sgemm" + (bshd_ ? "; heads interleaved (bshd)" : "");
  }

 private:
  float scale_;
  bool bshd_ = false;
};

}  // namespace

void register_fused_attention_ops(OpRegistry& r) {
  r.add("ScaledDotProductAttention", "com.runnx", 1, factory<AttentionKernel>());
}

}  // namespace runnx
