// Conv and com.runnx FusedConv (2-D) on the device, and the 2-D pools. group == 1 runs as an
// implicit GEMM in NHWC (conv.h): weights are permuted to KRSC once at load; the NCHW activation
// is converted to NHWC around each conv in scratch (a whole-graph NHWC layout would drop these
// two passes). Depthwise convs (group == C, one input channel per group) run in NCHW directly.
#include <cstring>
#include <limits>

#include "cuda/cuda_kernel.h"
#include "cuda/device_memory.h"
#include "cuda/kernels/conv.h"
#include "cuda/kernels/depthwise.h"
#include "cuda/kernels/pool.h"
#include "cuda/kernels/reduce.h"
#include "cuda/kernels/transpose.h"
#include "ops/conv_util.h"
#include "ops/op_util.h"

namespace runnx::cuda {
namespace {

const std::vector<DType> kFloat = {DType::kF32, DType::kF16};

size_t padded(int64_t elems, DType dt) { return (elems * dtype_size(dt) + 255) / 256 * 256; }

Epilogue conv_activation(const Node& node) {
  Epilogue e;
  const std::string act = node.get_string("activation", "");
  const std::vector<float> p = node.get_floats("activation_params");
  if (act.empty() || act == "Identity") return e;
  if (act == "Relu") {
    e.act = Activation::kRelu;
  } else if (act == "Clip") {
    e.act = Activation::kClip;
    e.p0 = p.size() == 2 ? p[0] : -std::numeric_limits<float>::max();
    e.p1 = p.size() == 2 ? p[1] : std::numeric_limits<float>::max();
  } else if (act == "Sigmoid") {
    e.act = Activation::kSigmoid;
  } else if (act == "LeakyRelu") {
    e.act = Activation::kLeakyRelu;
    e.p0 = p.size() == 1 ? p[0] : 0.01f;
  } else if (act == "HardSwish") {
    e.act = Activation::kHardSwish;
    e.p0 = 1.f / 6.f;
    e.p1 = 0.5f;
  } else {
    fail(ErrorKind::kInvalidModel, node.label(), ": activation '", act, "' is not supported");
  }
  return e;
}

class ConvKernel : public CudaKernel {
 public:
  ConvKernel(const CudaNodeInfo& info, bool fused)
      : attrs_(info.node), group_(info.node.get_int("group", 1)), epi_(fused ? conv_activation(info.node) : Epilogue{}) {
    const Tensor& w = *info.constant_input(1);
    RUNNX_CHECK(w.rank() == 4, kInvalidModel, info.node.label(), ": weights must be 4-D for a 2-D conv");
    w_shape_ = w.shape;
    depthwise_ = group_ > 1 && w.shape[1] == 1;
    if (depthwise_) {
      weights_ = upload(w, nullptr);
    } else {
      // KCRS -> KRSC, on the host once.
      Tensor krsc = Tensor::empty(w.dtype, {w.shape[0], w.shape[2], w.shape[3], w.shape[1]});
      const int64_t K = w.shape[0], C = w.shape[1], R = w.shape[2], S = w.shape[3];
      const size_t es = dtype_size(w.dtype);
      auto* src = static_cast<const uint8_t*>(w.data);
      auto* dst = static_cast<uint8_t*>(krsc.data);
      for (int64_t k = 0; k < K; ++k)
        for (int64_t c = 0; c < C; ++c)
          for (int64_t r = 0; r < R; ++r)
            for (int64_t s = 0; s < S; ++s)
              std::memcpy(dst + (((k * R + r) * S + s) * C + c) * es, src + (((k * C + c) * R + r) * S + s) * es, es);
      weights_ = upload(krsc, nullptr);
    }
    check_cuda(cudaStreamSynchronize(nullptr), info.node.label() + ": uploading weights");
  }

  void run(CudaContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    const Tensor* b = ctx.input(2);
    const Tensor* z = ctx.input(3);
    RUNNX_CHECK(x.rank() == 4, kInvalidArgument, node.label(), ": input must be NCHW (rank 4), got ", shape_str(x.shape));
    const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3], K = w_shape_[0];
    RUNNX_CHECK(C == w_shape_[1] * group_, kInvalidArgument, node.label(), ": input has ", C, " channels, weights expect ",
                w_shape_[1] * group_);
    Geom3 g = window_geometry(node, attrs_, {H, W}, {w_shape_[2], w_shape_[3]});
    const int64_t P = g.out[1], Q = g.out[2];
    Tensor& y = ctx.allocate_output(0, x.dtype, {N, K, P, Q});
    if (y.numel() == 0) return;
    if (b) RUNNX_CHECK(b->numel() == K, kInvalidArgument, node.label(), ": bias must have ", K, " values");
    if (z) RUNNX_CHECK(z->shape == y.shape, kInvalidArgument, node.label(), ": the residual ", shape_str(z->shape),
                       " must have the output's shape ", shape_str(y.shape), " on CUDA");
    Epilogue epi = epi_;
    epi.bias = b ? b->data : nullptr;
    if (depthwise_) {
      DepthwiseParams p;
      p.layout = Layout::kNCHW;
      p.n = N, p.c = C, p.h = H, p.w = W, p.multiplier = K / C;
      p.out_h = P, p.out_w = Q, p.kernel_h = w_shape_[2], p.kernel_w = w_shape_[3];
      p.stride_h = g.s[1], p.stride_w = g.s[2], p.dilation_h = g.d[1], p.dilation_w = g.d[2];
      p.pad_top = g.pb[1], p.pad_left = g.pb[2];
      epi.residual = z ? z->data : nullptr;
      launch_depthwise_conv2d(x.dtype, p, x.data, weights_.data, y.data, epi, ctx.stream());
      return;
    }
    // NCHW -> NHWC (input, residual), the conv into NHWC scratch, NHWC -> NCHW into y.
    const size_t xb = padded(x.numel(), x.dtype), yb = padded(y.numel(), x.dtype);
    auto* scratch = static_cast<uint8_t*>(ctx.workspace(xb + yb + (z ? yb : 0)));
    const size_t es = dtype_size(x.dtype);
    launch_layout_convert(es, Layout::kNCHW, x.data, N, C, H * W, scratch, ctx.stream());
    if (z) {
      launch_layout_convert(es, Layout::kNCHW, z->data, N, K, P * Q, scratch + xb + yb, ctx.stream());
      epi.residual = scratch + xb + yb;
      epi.ldr = K;
    }
    ConvArgs a;
    a.N = N, a.H = H, a.W = W, a.C = C, a.K = K, a.R = w_shape_[2], a.S = w_shape_[3], a.P = P, a.Q = Q;
    a.stride_h = g.s[1], a.stride_w = g.s[2], a.pad_h = g.pb[1], a.pad_w = g.pb[2], a.dil_h = g.d[1], a.dil_w = g.d[2];
    a.x = scratch;
    a.w = weights_.data;
    a.y = scratch + xb;
    a.epi = epi;
    if (x.dtype == DType::kF32)
      launch_conv_f32(a, ctx.stream());
    else
      launch_conv_f16(a, ctx.stream());
    launch_layout_convert(es, Layout::kNHWC, scratch + xb, N, K, P * Q, y.data, ctx.stream());
  }

  std::string describe() const override { return depthwise_ ? "depthwise NCHW" : "implicit GEMM NHWC (converted per call)"; }

 private:
  WindowAttrs attrs_;
  int64_t group_;
  Epilogue epi_;
  Shape w_shape_;
  bool depthwise_ = false;
  Tensor weights_;
};

std::string conv_check(const CudaNodeInfo& info) {
  std::string why = check_dtypes(info, kFloat, {0, 1, 2, 3});
  if (!why.empty()) return why;
  if (!info.is_constant(1)) return "weights computed at run time have no CUDA kernel";
  const InferredType* x = info.inputs[0];
  if (!x || !x->has_shape || x->rank() != 4) return "only 2-D convolutions (rank-4 input) have a CUDA kernel";
  const InferredType* w = info.inputs[1];
  if (!w || !w->has_shape || w->rank() != 4) return "weights that are not 4-D";
  const int64_t group = info.node.get_int("group", 1);
  if (group != 1 && !(w->dims[1].is_const() && w->dims[1].value() == 1 && x->dims[1].is_const() &&
                      x->dims[1].value() == group))
    return "grouped convolutions other than depthwise have no CUDA kernel";
  if (info.has_input(3)) {
    const InferredType* z = info.inputs[3];
    if (!z || !z->has_shape || z->rank() != 4) return "a residual that is not 4-D";
  }
  for (int k = 1; k < info.num_inputs(); ++k)
    if (info.has_input(k) && info.input_dtype(k) != info.input_dtype(0)) return "mixed dtypes";
  if (info.node.op_type == "FusedConv") conv_activation(info.node);  // throws for unknown ones
  return "";
}

class PoolKernel : public CudaKernel {
 public:
  PoolKernel(const CudaNodeInfo& info, PoolKind kind)
      : attrs_(info.node),
        kind_(kind),
        ceil_(info.node.get_int("ceil_mode", 0) != 0),
        count_pad_(info.node.get_int("count_include_pad", 0) != 0) {}
  void run(CudaContext& ctx) const override {
    const Tensor& x = ctx.required_input(0);
    RUNNX_CHECK(x.rank() == 4, kInvalidArgument, ctx.node().label(), ": input must be NCHW");
    Geom3 g = window_geometry(ctx.node(), attrs_, {x.shape[2], x.shape[3]}, attrs_.kernel, ceil_);
    Tensor& y = ctx.allocate_output(0, x.dtype, {x.shape[0], x.shape[1], g.out[1], g.out[2]});
    if (y.numel() == 0) return;
    Pool2dParams p;
    p.n = x.shape[0], p.c = x.shape[1], p.h = x.shape[2], p.w = x.shape[3], p.out_h = g.out[1], p.out_w = g.out[2];
    p.kernel_h = g.k[1], p.kernel_w = g.k[2], p.stride_h = g.s[1], p.stride_w = g.s[2];
    p.dilation_h = g.d[1], p.dilation_w = g.d[2];
    p.pad_top = g.pb[1], p.pad_left = g.pb[2], p.pad_bottom = g.pe[1], p.pad_right = g.pe[2];
    p.count_include_pad = count_pad_;
    launch_pool2d(kind_, x.dtype, p, x.data, y.data, ctx.stream());
  }

 private:
  WindowAttrs attrs_;
  PoolKind kind_;
  bool ceil_, count_pad_;
};

class GlobalPoolKernel : public CudaKernel {
 public:
  explicit GlobalPoolKernel(ReduceOp op) : op_(op) {}
  void run(CudaContext& ctx) const override {
    const Tensor& x = ctx.required_input(0);
    RUNNX_CHECK(x.rank() >= 3, kInvalidArgument, ctx.node().label(), ": input must have rank >= 3");
    Shape out = x.shape;
    std::vector<int64_t> axes;
    for (int64_t d = 2; d < x.rank(); ++d) {
      out[d] = 1;
      axes.push_back(d);
    }
    Tensor& y = ctx.allocate_output(0, x.dtype, out);
    if (y.numel() == 0) return;
    launch_reduce(op_, x.dtype, x.data, x.shape, axes, y.data, ctx.stream());
  }

 private:
  ReduceOp op_;
};

std::string pool_check(const CudaNodeInfo& info) {
  std::string why = check_dtypes(info, kFloat, {0}, false);
  if (!why.empty()) return why;
  if (info.node.outputs.size() > 1 && !info.node.outputs[1].empty()) return "the Indices output has no CUDA kernel";
  const InferredType* x = info.inputs[0];
  if (!x || !x->has_shape || x->rank() != 4) return "only 2-D pools (rank-4 input) have a CUDA kernel";
  if (info.node.get_ints("kernel_shape").size() != 2) return "kernel_shape must have 2 values";
  return "";
}

}  // namespace

void register_cuda_conv_ops(CudaOpRegistry& r) {
  for (bool fused : {false, true}) {
    CudaOpSchema s = make_schema(
        fused ? "FusedConv" : "Conv", 1, conv_check,
        [fused](const CudaNodeInfo& i) { return std::make_unique<ConvKernel>(i, fused); }, fused ? "com.runnx" : "");
    s.packed_inputs = {1};
    r.add(std::move(s));
  }
  r.add(make_schema("MaxPool", 1, pool_check,
                    [](const CudaNodeInfo& i) { return std::make_unique<PoolKernel>(i, PoolKind::kMax); }));
  r.add(make_schema("AveragePool", 1, pool_check,
                    [](const CudaNodeInfo& i) { return std::make_unique<PoolKernel>(i, PoolKind::kAverage); }));
  r.add(make_schema(
      "GlobalAveragePool", 1, [](const CudaNodeInfo& i) { return check_dtypes(i, kFloat, {0}); },
      [](const CudaNodeInfo&) { return std::make_unique<GlobalPoolKernel>(ReduceOp::kMean); }));
  r.add(make_schema(
      "GlobalMaxPool", 1, [](const CudaNodeInfo& i) { return check_dtypes(i, kFloat, {0}); },
      [](const CudaNodeInfo&) { return std::make_unique<GlobalPoolKernel>(ReduceOp::kMax); }));
}

}  // namespace runnx::cuda
