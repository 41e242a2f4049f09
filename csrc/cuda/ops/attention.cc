// com.runnx ScaledDotProductAttention on the device: the fused online-softmax kernel
// (attention.h) reads Q, K^T and V through strides, so no head-split copy is made.
#include <algorithm>
#include <string>

#include "cuda/cuda_kernel.h"
#include "cuda/kernels/attention.h"
#include "ops/op_util.h"

namespace runnx::cuda {
namespace {

// Strides of a tensor of `dims` (padded on the left to 4) broadcast to 4 dims: 0 where its dim is 1.
Strides4 broadcast_strides4(Shape dims) {
  while (dims.size() < 4) dims.insert(dims.begin(), 1);
  std::vector<int64_t> st = contiguous_strides(dims);
  for (size_t d = 0; d < 4; ++d)
    if (dims[d] == 1) st[d] = 0;
  return {st[0], st[1], st[2], st[3]};
}

class AttentionKernel : public CudaKernel {
 public:
  explicit AttentionKernel(const CudaNodeInfo& info) : scale_(info.node.get_float("scale", 1.f)) {}
  void run(CudaContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& q = ctx.required_input(0);
    const Tensor& kt = ctx.required_input(1);
    const Tensor& v = ctx.required_input(2);
    const Tensor* mask = ctx.input(3);
    for (const Tensor* t : {&kt, &v, mask})
      RUNNX_CHECK(!t || t->dtype == q.dtype, kInvalidArgument, node.label(), ": K^T, V and the mask must have Q's type ",
                  dtype_name(q.dtype), ", got ", dtype_name(t->dtype));
    RUNNX_CHECK(q.rank() >= 2 && q.rank() <= 4 && kt.rank() == q.rank() && v.rank() == q.rank(), kInvalidArgument,
                node.label(), ": Q, K^T and V must share a rank of 2 to 4 on CUDA, got ", shape_str(q.shape), ", ",
                shape_str(kt.shape), ", ", shape_str(v.shape));
    Shape qs = q.shape, ks = kt.shape, vs = v.shape;
    while (qs.size() < 4) qs.insert(qs.begin(), 1), ks.insert(ks.begin(), 1), vs.insert(vs.begin(), 1);
    AttentionArgs a;
    a.S = qs[2];
    a.D = qs[3];
    a.Sk = ks[3];
    a.Dv = vs[3];
    RUNNX_CHECK(ks[2] == a.D && vs[2] == a.Sk, kInvalidArgument, node.label(), ": shapes do not chain: Q ",
                shape_str(q.shape), ", K^T ", shape_str(kt.shape), ", V ", shape_str(v.shape));
    Shape qb = {qs[0], qs[1]}, kb = {ks[0], ks[1]}, vb = {vs[0], vs[1]};
    Shape batch = broadcast_shapes({&qb, &kb, &vb}, node);
    if (mask) {
      Shape ms = mask->shape;
      RUNNX_CHECK(ms.size() <= 4, kInvalidArgument, node.label(), ": mask of rank > 4");
      while (ms.size() < 4) ms.insert(ms.begin(), 1);
      Shape mb = {ms[0], ms[1]};
      batch = broadcast_shapes({&batch, &mb}, node);
      RUNNX_CHECK((ms[2] == 1 || ms[2] == a.S) && (ms[3] == 1 || ms[3] == a.Sk), kInvalidArgument, node.label(),
                  ": mask of shape ", shape_str(mask->shape), " does not broadcast to the scores");
      a.mask = mask->data;
      a.mask_st = broadcast_strides4(mask->shape);
    }
    a.B = batch[0];
    a.heads = batch[1];
    // The output keeps as many batch dims as the widest input has (the padding 1s dropped).
    const int64_t keep = std::max<int64_t>(q.rank(), mask ? mask->rank() : 0) - 2;
    Shape out(batch.end() - std::min<int64_t>(keep, 2), batch.end());
    out.push_back(a.S);
    out.push_back(a.Dv);
    Tensor& y = ctx.allocate_output(0, q.dtype, out);
    if (y.numel() == 0) return;
    Strides4 qst = broadcast_strides4(q.shape), vst = broadcast_strides4(v.shape), kst = broadcast_strides4(kt.shape);
    qst.s = a.D, qst.d = 1;
    vst.s = a.Dv, vst.d = 1;
    // K^T is [.., D, Sk]: K's sequence index walks the last dim, its feature index the one before.
    Strides4 k_as_k = kst;
    k_as_k.s = 1;
    k_as_k.d = a.Sk;
    a.q = q.data;
    a.q_st = qst;
    a.k = kt.data;
    a.k_st = k_as_k;
    a.v = v.data;
    a.v_st = vst;
    a.o = y.data;
    a.o_st = {a.heads * a.S * a.Dv, a.S * a.Dv, a.Dv, 1};
    a.scale = scale_;
    if (q.dtype == DType::kF32)
      launch_attention_f32(a, ctx.stream());
    else
      launch_attention_f16(a, ctx.stream());
  }

 private:
  float scale_;
};

}  // namespace

void register_cuda_attention_ops(CudaOpRegistry& r) {
  r.add(make_schema(
      "ScaledDotProductAttention", 1,
      [](const CudaNodeInfo& info) {
        std::string why = check_dtypes(info, {DType::kF32, DType::kF16}, {0, 1, 2, 3});
        if (!why.empty()) return why;
        // The CPU-only attention_layout pass makes "bshd" nodes; the device kernel reads only the
        // default layout, so such a node stays on the CPU.
        const std::string layout = info.node.get_string("layout", "");
        if (!layout.empty()) return "layout '" + layout + "' (the CUDA kernel takes the default only)";
        for (int k = 0; k < 3; ++k) {
          const InferredType* t = info.inputs[k];
          if (!t || !t->has_shape || t->rank() != info.inputs[0]->rank() || t->rank() < 2 || t->rank() > 4)
            return std::string("Q, K^T and V of ranks other than one shared rank of 2 to 4");
        }
        const InferredType& q = *info.inputs[0];
        const InferredType& v = *info.inputs[2];
        if ((q.dims.back().is_const() && q.dims.back().value() > kAttentionMaxHeadDim) ||
            (v.dims.back().is_const() && v.dims.back().value() > kAttentionMaxHeadDim))
          return "head dims above " + std::to_string(kAttentionMaxHeadDim);
        return std::string();
      },
      [](const CudaNodeInfo& i) { return std::make_unique<AttentionKernel>(i); }, "com.runnx"));
}

}  // namespace runnx::cuda
