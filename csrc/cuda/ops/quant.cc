// The quantized ops on the device, so a QDQ model has no CPU fallback:
//   QuantizeLinear / DequantizeLinear (per tensor or per axis; 8-bit, and int32 into Dequantize)
//     on quantize.h's element-wise kernels;
//   MatMulInteger, QLinearMatMul and com.runnx QGemm (what qdq_fusion makes) on the int8
//     tensor-core GEMM (gemm_int8.h) with its requantize (or int32) output stage. B must be a
//     constant 2-D weight: it is stored transposed ([N][K], what the launcher reads) at load. A
//     QGemm bias (int32, scale a_scale * b_scale) is added to the int32 sums before one
//     requantize pass (quantize.h), which applies the launcher's float math;
//   ConvInteger and QLinearConv (2-D, group 1, constant weights) as one implicit int8 GEMM over
//     the batch's patches (quantize.h), the result converted to NCHW.
// Zero points and scales stay device tensors (the launchers read them there); only their shapes
// are checked on the host.
#include <cstring>

#include "cuda/cuda_kernel.h"
#include "cuda/device_memory.h"
#include "cuda/kernels/gemm_int8.h"
#include "cuda/kernels/quantize.h"
#include "cuda/kernels/transpose.h"
#include "ops/conv_util.h"
#include "ops/op_util.h"

namespace runnx::cuda {
namespace {

const std::vector<DType> kQ8 = {DType::kI8, DType::kU8};

size_t padded(size_t bytes) { return (bytes + 255) / 256 * 256; }

// Element count of input k when static inference fixed its shape, else -1.
int64_t static_numel(const CudaNodeInfo& info, int k) {
  if (!info.has_input(k) || !info.inputs[k]->has_shape) return -1;
  int64_t n = 1;
  for (const SymDim& d : info.inputs[k]->dims) {
    if (!d.is_const()) return -1;
    n *= d.value();
  }
  return n;
}

// "" when input k is absent or a one-element tensor.
std::string per_tensor(const CudaNodeInfo& info, int k, const char* what) {
  if (!info.has_input(k) || static_numel(info, k) == 1) return "";
  return std::string(what) + " must be one value per tensor on CUDA";
}

// ---------------------------------------------------------------- QuantizeLinear / DequantizeLinear

// x viewed as [outer, axis_len, inner] for a scale that is one value or one per slice of `axis`.
void param_layout(const Tensor& x, const Tensor& scale, int64_t axis_attr, const Node& node, int64_t& axis_len,
                  int64_t& inner) {
  axis_len = 1;
  inner = 1;
  if (scale.numel() == 1) return;
  const int64_t axis = normalize_axis(axis_attr, x.rank(), node);
  RUNNX_CHECK(scale.rank() == 1 && scale.shape[0] == x.shape[axis], kInvalidArgument, node.label(), ": scale ",
              shape_str(scale.shape), " must be a scalar or 1-D of size ", x.shape[axis], " (axis ", axis,
              " of input ", shape_str(x.shape), ")");
  axis_len = x.shape[axis];
  inner = outer_inner(x.shape, axis).inner;
}

std::string qdq_check(const CudaNodeInfo& info, bool quantize) {
  if (info.node.get_int("block_size", 0) != 0) return "blocked quantization has no CUDA kernel";
  if (!info.has_input(1) || info.input_dtype(1) != DType::kF32) return "the scale must be float32 on CUDA";
  const InferredType* s = info.inputs[1];
  if (s->has_shape && s->rank() > 1) return "blocked quantization has no CUDA kernel";
  if (quantize) {
    std::string why = check_dtypes(info, {DType::kF32}, {0}, false);
    return why.empty() ? check_dtypes(info, kQ8, {2}) : why;
  }
  std::string why = check_dtypes(info, {DType::kI8, DType::kU8, DType::kI32}, {0, 2}, false);
  return why.empty() ? check_dtypes(info, {DType::kF32}, {}) : why;
}

class QuantizeKernel : public CudaKernel {
 public:
  explicit QuantizeKernel(const CudaNodeInfo& info)
      : axis_(info.node.get_int("axis", 1)), qtype_(info.output_dtype(0)) {}
  void run(CudaContext& ctx) const override {
    const Tensor& x = ctx.required_input(0);
    const Tensor& scale = ctx.required_input(1);
    const Tensor* zero = ctx.input(2);
    int64_t axis_len, inner;
    param_layout(x, scale, axis_, ctx.node(), axis_len, inner);
    RUNNX_CHECK(!zero || zero->numel() == scale.numel(), kInvalidArgument, ctx.node().label(),
                ": the zero point must have the scale's size");
    Tensor& y = ctx.allocate_output(0, qtype_, x.shape);
    launch_quantize_linear(x.ptr<float>(), scale.ptr<float>(), zero ? zero->data : nullptr, qtype_, y.data, y.numel(),
                           axis_len, inner, ctx.stream());
  }

 private:
  int64_t axis_;
  DType qtype_;
};

class DequantizeKernel : public CudaKernel {
 public:
  explicit DequantizeKernel(const CudaNodeInfo& info) : axis_(info.node.get_int("axis", 1)) {}
  void run(CudaContext& ctx) const override {
    const Tensor& x = ctx.required_input(0);
    const Tensor& scale = ctx.required_input(1);
    const Tensor* zero = ctx.input(2);
    int64_t axis_len, inner;
    param_layout(x, scale, axis_, ctx.node(), axis_len, inner);
    RUNNX_CHECK(!zero || (zero->numel() == scale.numel() && zero->dtype == x.dtype), kInvalidArgument,
                ctx.node().label(), ": the zero point must have the scale's size and the input's type");
    Tensor& y = ctx.allocate_output(0, DType::kF32, x.shape);
    launch_dequantize_linear(x.data, x.dtype, scale.ptr<float>(), zero ? zero->data : nullptr, y.ptr<float>(),
                             y.numel(), axis_len, inner, ctx.stream());
  }

 private:
  int64_t axis_;
};

// ---------------------------------------------------------------- integer products

enum class Product { kMatMulInteger, kQLinearMatMul, kQGemm };

// Input positions of each op's operands (-1: the op has none).
struct Slots {
  int a, a_scale, a_zero, b, b_scale, b_zero, bias, y_scale, y_zero;
};
Slots slots_of(Product p) {
  switch (p) {
    case Product::kMatMulInteger: return {0, -1, 2, 1, -1, 3, -1, -1, -1};
    case Product::kQLinearMatMul: return {0, 1, 2, 3, 4, 5, -1, 6, 7};
    default: return {0, 1, 2, 3, 4, 5, 6, 7, 8};
  }
}

// The constant B's N (its output columns) from its inferred shape.
int64_t weight_columns(const CudaNodeInfo& info, int b, bool trans_b) {
  const InferredType* t = info.inputs[b];
  return t->dims[trans_b ? 0 : 1].value();
}

std::string product_check(const CudaNodeInfo& info, Product p) {
  const Slots s = slots_of(p);
  const bool trans_b = p == Product::kQGemm && info.node.get_int("transB", 0) != 0;
  std::string why = check_dtypes(info, kQ8, {s.a, s.a_zero, s.b, s.b_zero}, false);
  if (!why.empty()) return why;
  why = check_dtypes(info, p == Product::kMatMulInteger ? std::vector<DType>{DType::kI32} : kQ8, {});
  if (!why.empty()) return why;
  if (!info.has_input(s.b) || !info.is_constant(s.b) || !info.inputs[s.b]->has_shape || info.inputs[s.b]->rank() != 2)
    return "B must be a constant 2-D weight on CUDA";
  if (p != Product::kMatMulInteger) {
    for (int k : {s.a_scale, s.b_scale, s.y_scale})
      if (info.input_dtype(k) != DType::kF32) return "scales must be float32 on CUDA";
    why = per_tensor(info, s.a_scale, "a_scale") + per_tensor(info, s.y_scale, "y_scale") +
          per_tensor(info, s.y_zero, "y_zero_point");
    if (!why.empty()) return why;
  }
  why = per_tensor(info, s.a_zero, "A's zero point");
  if (!why.empty()) return why;
  const int64_t N = weight_columns(info, s.b, trans_b);
  for (int k : {s.b_scale, s.b_zero, s.bias}) {
    if (k < 0 || !info.has_input(k)) continue;
    const int64_t n = static_numel(info, k);
    if (n != 1 && (n != N || info.inputs[k]->rank() != 1)) return "B's parameters and the bias must be per tensor or per column on CUDA";
  }
  if (s.bias >= 0 && info.has_input(s.bias) && info.input_dtype(s.bias) != DType::kI32) return "the bias must be int32";
  return "";
}

class Int8ProductKernel : public CudaKernel {
 public:
  Int8ProductKernel(const CudaNodeInfo& info, Product p) : product_(p), slots_(slots_of(p)) {
    const Node& node = info.node;
    const bool trans_b = p == Product::kQGemm && node.get_int("transB", 0) != 0;
    const Tensor& b = *info.constant_input(slots_.b);
    K_ = trans_b ? b.shape[1] : b.shape[0];
    N_ = trans_b ? b.shape[0] : b.shape[1];
    b_unsigned_ = b.dtype == DType::kU8;
    if (b.numel() == 0) return;
    // The launcher reads B^T [N][K]: a QGemm with transB already stores it so.
    Tensor bt = b;
    if (!trans_b) {
      bt = Tensor::empty(b.dtype, {N_, K_});
      auto* src = static_cast<const uint8_t*>(b.data);
      auto* dst = static_cast<uint8_t*>(bt.data);
      for (int64_t k = 0; k < K_; ++k)
        for (int64_t n = 0; n < N_; ++n) dst[n * K_ + k] = src[k * N_ + n];
    }
    weights_ = upload(bt, nullptr);
    check_cuda(cudaStreamSynchronize(nullptr), node.label() + ": uploading weights");
  }

  void run(CudaContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& a = ctx.required_input(slots_.a);
    RUNNX_CHECK(a.rank() >= 1 && a.shape.back() == K_, kInvalidArgument, node.label(), ": A of shape ",
                shape_str(a.shape), " does not match the weight's K = ", K_);
    auto in = [&](int k) { return k >= 0 ? ctx.input(k) : nullptr; };
    const Tensor *za = in(slots_.a_zero), *zb = in(slots_.b_zero), *bs = in(slots_.b_scale), *bias = in(slots_.bias);
    const Tensor* yz = in(slots_.y_zero);
    Shape out(a.shape.begin(), a.shape.end() - 1);
    out.push_back(N_);
    const int64_t rows = shape_numel(Shape(a.shape.begin(), a.shape.end() - 1));  // K may be 0
    const bool quantized = product_ != Product::kMatMulInteger;
    const DType yt = quantized ? (yz ? yz->dtype : a.dtype) : DType::kI32;
    Tensor& y = ctx.allocate_output(0, yt, out);
    if (y.numel() == 0) return;
    GemmInt8Args g;
    g.M = rows;
    g.N = N_;
    g.K = K_;
    g.A = a.data;
    g.lda = K_;
    g.B = weights_.data;
    g.ldb = K_;
    g.a_unsigned = a.dtype == DType::kU8;
    g.b_unsigned = b_unsigned_;
    g.a_zero = za ? za->data : nullptr;
    g.b_zero = zb ? zb->data : nullptr;
    g.b_zero_stride = zb && zb->numel() > 1 ? 1 : 0;
    // The int32 sums go straight to y (MatMulInteger), or to scratch when a bias or K = 0 needs
    // the separate requantize pass; otherwise the launcher requantizes.
    const bool separate = quantized && (bias || K_ == 0);
    const size_t acc_bytes = separate ? padded(static_cast<size_t>(y.numel()) * 4) : 0;
    auto* scratch = static_cast<uint8_t*>(ctx.workspace(acc_bytes + gemm_int8_workspace_bytes(g)));
    void* acc = separate ? scratch : y.data;
    g.C = acc;
    g.ldc = N_;
    g.out = Int8Output::kInt32;
    if (quantized && !separate) {
      g.out = yt == DType::kU8 ? Int8Output::kUInt8 : Int8Output::kInt8;
      g.a_scale = ctx.required_input(slots_.a_scale).ptr<float>();
      g.b_scale = bs->ptr<float>();
      g.b_scale_stride = bs->numel() > 1 ? 1 : 0;
      g.y_scale = ctx.required_input(slots_.y_scale).ptr<float>();
      g.y_zero = yz ? yz->data : nullptr;
    }
    if (K_ == 0)
      check_cuda(cudaMemsetAsync(acc, 0, static_cast<size_t>(y.numel()) * 4, ctx.stream()), node.label());
    else
      launch_gemm_int8(g, scratch + acc_bytes, ctx.stream());
    if (!separate) return;
    RequantizeArgs r;
    r.acc = static_cast<const int32_t*>(acc);
    r.bias = bias ? bias->ptr<int32_t>() : nullptr;
    r.bias_stride = bias && bias->numel() > 1 ? 1 : 0;
    r.a_scale = ctx.required_input(slots_.a_scale).ptr<float>();
    r.b_scale = bs->ptr<float>();
    r.b_scale_stride = bs->numel() > 1 ? 1 : 0;
    r.y_scale = ctx.required_input(slots_.y_scale).ptr<float>();
    r.y_zero = yz ? yz->data : nullptr;
    r.qtype = yt;
    r.y = y.data;
    r.rows = rows;
    r.cols = N_;
    launch_requantize(r, ctx.stream());
  }

  std::string describe() const override { return "int8 tensor-core GEMM, B^T uploaded at load"; }

 private:
  Product product_;
  Slots slots_;
  int64_t K_ = 0, N_ = 0;
  bool b_unsigned_ = false;
  Tensor weights_;
};

// ---------------------------------------------------------------- integer convolutions

// ConvInteger (x 0, w 1, x_zero 2, w_zero 3) and QLinearConv (x 0, x_scale 1, x_zero 2, w 3,
// w_scale 4, w_zero 5, y_scale 6, y_zero 7, bias 8), 2-D, group 1: one implicit GEMM over the
// whole batch, A = the patches of every image (launch_int8_patches), B^T = the weights reordered
// to [M][kh][kw][C] at load, the [N*P][M] result converted to NCHW.
std::string conv_check(const CudaNodeInfo& info, bool qlinear) {
  const int x = 0, w = qlinear ? 3 : 1, xz = 2, wz = qlinear ? 5 : 3;
  std::string why = check_dtypes(info, kQ8, {x, xz, w, wz}, false);
  if (!why.empty()) return why;
  why = check_dtypes(info, qlinear ? kQ8 : std::vector<DType>{DType::kI32}, {});
  if (!why.empty()) return why;
  if (info.node.get_int("group", 1) != 1) return "grouped int8 convolutions have no CUDA kernel";
  if (!info.has_input(w) || !info.is_constant(w) || !info.inputs[w]->has_shape || info.inputs[w]->rank() != 4)
    return "only 2-D convolutions with constant weights have an int8 CUDA kernel";
  why = per_tensor(info, xz, "x's zero point");
  if (qlinear) {
    for (int k : {1, 4, 6})
      if (info.input_dtype(k) != DType::kF32) return "scales must be float32 on CUDA";
    why += per_tensor(info, 1, "x_scale") + per_tensor(info, 6, "y_scale") + per_tensor(info, 7, "y_zero_point");
  }
  if (!why.empty()) return why;
  const int64_t M = info.inputs[w]->dims[0].value();
  for (int k : qlinear ? std::vector<int>{4, 5, 8} : std::vector<int>{3}) {
    if (!info.has_input(k)) continue;
    const int64_t n = static_numel(info, k);
    if (n != 1 && (n != M || info.inputs[k]->rank() != 1))
      return "w's parameters and the bias must be per tensor or per output channel on CUDA";
  }
  if (qlinear && info.has_input(8) && info.input_dtype(8) != DType::kI32) return "the bias must be int32";
  return "";
}

class Int8ConvKernel : public CudaKernel {
 public:
  Int8ConvKernel(const CudaNodeInfo& info, bool qlinear)
      : qlinear_(qlinear), w_(qlinear ? 3 : 1), attrs_(info.node) {
    const Tensor& w = *info.constant_input(w_);
    M_ = w.shape[0];
    C_ = w.shape[1];
    kh_ = w.shape[2];
    kw_ = w.shape[3];
    w_unsigned_ = w.dtype == DType::kU8;
    if (w.numel() == 0) return;
    // [M][C][kh][kw] -> [M][kh][kw][C], the (tap, channel) order of the patches.
    Tensor r = Tensor::empty(w.dtype, {M_, kh_ * kw_ * C_});
    const auto* src = static_cast<const uint8_t*>(w.data);
    auto* dst = static_cast<uint8_t*>(r.data);
    const int64_t taps = kh_ * kw_;
    for (int64_t m = 0; m < M_; ++m)
      for (int64_t c = 0; c < C_; ++c)
        for (int64_t t = 0; t < taps; ++t) dst[(m * taps + t) * C_ + c] = src[(m * C_ + c) * taps + t];
    weights_ = upload(r, nullptr);
    check_cuda(cudaStreamSynchronize(nullptr), info.node.label() + ": uploading weights");
  }

  void run(CudaContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    RUNNX_CHECK(x.rank() == 4 && x.shape[1] == C_ && C_ > 0, kInvalidArgument, node.label(), ": input ",
                shape_str(x.shape), " must be NCHW with ", C_, " channels");
    const Geom3 geo = window_geometry(node, attrs_, {x.shape[2], x.shape[3]}, {kh_, kw_});
    const int64_t N = x.shape[0], P = geo.out[1] * geo.out[2], K = kh_ * kw_ * C_, rows = N * P;
    auto in = [&](int k) { return k < ctx.num_inputs() ? ctx.input(k) : nullptr; };
    const Tensor *xz = in(2), *wz = in(qlinear_ ? 5 : 3), *yz = qlinear_ ? in(7) : nullptr;
    const Tensor* bias = qlinear_ ? in(8) : nullptr;
    const DType yt = qlinear_ ? (yz ? yz->dtype : x.dtype) : DType::kI32;
    Tensor& y = ctx.allocate_output(0, yt, {N, M_, geo.out[1], geo.out[2]});
    if (y.numel() == 0) return;
    GemmInt8Args g;
    g.M = rows;
    g.N = M_;
    g.K = K;
    g.lda = K;
    g.B = weights_.data;
    g.ldb = K;
    g.ldc = M_;
    g.a_unsigned = x.dtype == DType::kU8;
    g.b_unsigned = w_unsigned_;
    g.a_zero = xz ? xz->data : nullptr;
    g.b_zero = wz ? wz->data : nullptr;
    g.b_zero_stride = wz && wz->numel() > 1 ? 1 : 0;
    // The product lands in [rows][M] scratch (int32 when a bias or ConvInteger needs it), then
    // (requantized and) converted to NCHW.
    const bool int32_sums = !qlinear_ || bias;
    const size_t patch_bytes = padded(static_cast<size_t>(rows * K));
    const size_t acc_bytes = padded(static_cast<size_t>(rows * M_) * (int32_sums ? 4 : 1));
    const size_t q_bytes = qlinear_ && bias ? padded(static_cast<size_t>(rows * M_)) : 0;
    auto* scratch = static_cast<uint8_t*>(ctx.workspace(patch_bytes + acc_bytes + q_bytes + gemm_int8_workspace_bytes(g)));
    uint8_t *patches = scratch, *acc = scratch + patch_bytes, *qbuf = acc + acc_bytes;
    PatchArgs pa;
    pa.x = x.data;
    pa.zero = g.a_zero;
    pa.patches = patches;
    pa.n = N, pa.c = C_, pa.h = x.shape[2], pa.w = x.shape[3], pa.out_h = geo.out[1], pa.out_w = geo.out[2];
    pa.kernel_h = kh_, pa.kernel_w = kw_, pa.stride_h = geo.s[1], pa.stride_w = geo.s[2];
    pa.dilation_h = geo.d[1], pa.dilation_w = geo.d[2], pa.pad_top = geo.pb[1], pa.pad_left = geo.pb[2];
    launch_int8_patches(pa, ctx.stream());
    g.A = patches;
    g.C = acc;
    g.out = Int8Output::kInt32;
    if (qlinear_ && !bias) {
      g.out = yt == DType::kU8 ? Int8Output::kUInt8 : Int8Output::kInt8;
      g.a_scale = ctx.required_input(1).ptr<float>();
      g.b_scale = ctx.required_input(4).ptr<float>();
      g.b_scale_stride = ctx.required_input(4).numel() > 1 ? 1 : 0;
      g.y_scale = ctx.required_input(6).ptr<float>();
      g.y_zero = yz ? yz->data : nullptr;
    }
    launch_gemm_int8(g, qbuf + q_bytes, ctx.stream());
    const void* result = acc;
    if (qlinear_ && bias) {
      RequantizeArgs r;
      r.acc = reinterpret_cast<const int32_t*>(acc);
      r.bias = bias->ptr<int32_t>();
      r.bias_stride = bias->numel() > 1 ? 1 : 0;
      r.a_scale = ctx.required_input(1).ptr<float>();
      r.b_scale = ctx.required_input(4).ptr<float>();
      r.b_scale_stride = ctx.required_input(4).numel() > 1 ? 1 : 0;
      r.y_scale = ctx.required_input(6).ptr<float>();
      r.y_zero = yz ? yz->data : nullptr;
      r.qtype = yt;
      r.y = qbuf;
      r.rows = rows;
      r.cols = M_;
      launch_requantize(r, ctx.stream());
      result = qbuf;
    }
    launch_layout_convert(dtype_size(yt), Layout::kNHWC, result, N, M_, P, y.data, ctx.stream());
  }

  std::string describe() const override { return "int8 implicit GEMM (patches x KRSC weights on tensor cores)"; }

 private:
  bool qlinear_;
  int w_;
  WindowAttrs attrs_;
  int64_t M_ = 0, C_ = 0, kh_ = 1, kw_ = 1;
  bool w_unsigned_ = false;
  Tensor weights_;
};

CudaOpSchema product_schema(const char* op, int since, Product p, const char* domain = "") {
  CudaOpSchema s = make_schema(
      op, since, [p](const CudaNodeInfo& i) { return product_check(i, p); },
      [p](const CudaNodeInfo& i) { return std::make_unique<Int8ProductKernel>(i, p); }, domain);
  s.packed_inputs = {slots_of(p).b};
  return s;
}

}  // namespace

void register_cuda_quant_ops(CudaOpRegistry& r) {
  r.add(make_schema(
      "QuantizeLinear", 10, [](const CudaNodeInfo& i) { return qdq_check(i, true); },
      [](const CudaNodeInfo& i) { return std::make_unique<QuantizeKernel>(i); }));
  r.add(make_schema(
      "DequantizeLinear", 10, [](const CudaNodeInfo& i) { return qdq_check(i, false); },
      [](const CudaNodeInfo& i) { return std::make_unique<DequantizeKernel>(i); }));
  r.add(product_schema("MatMulInteger", 10, Product::kMatMulInteger));
  r.add(product_schema("QLinearMatMul", 10, Product::kQLinearMatMul));
  r.add(product_schema("QGemm", 1, Product::kQGemm, "com.runnx"));
  for (bool qlinear : {false, true}) {
    CudaOpSchema s = make_schema(
        qlinear ? "QLinearConv" : "ConvInteger", 10, [qlinear](const CudaNodeInfo& i) { return conv_check(i, qlinear); },
        [qlinear](const CudaNodeInfo& i) { return std::make_unique<Int8ConvKernel>(i, qlinear); });
    s.packed_inputs = {qlinear ? 3 : 1};
    r.add(std::move(s));
  }
}

}  // namespace runnx::cuda
