// Integer matrix products on the int8 GEMM of quant_gemm.h (exact int32 sums):
//   MatMulInteger (opset 10): int32 = (A - a_zero) x (B - b_zero), numpy MatMul shapes; a_zero per
//     tensor or per row of A ([M] or [..., M, 1]), b_zero per tensor or per column ([N] or [..., 1, N]).
//   QLinearMatMul (opset 10): the same product requantized; a's scale/zero point per tensor, b's per
//     tensor or per column ([N]).
//   com.runnx QGemm (made by the qdq_fusion pass from DequantizeLinear -> Gemm -> QuantizeLinear):
//     a 2-D B (transB), an optional int32 bias C [N] added to the sums (its scale is a_scale*b_scale).
// Requantizing is what onnxruntime and the CUDA launcher do, in float32:
//   y = saturate(rint(float(acc) * (a_scale * b_scale[n] / y_scale)) + y_zero), rint half to even.
// (onnx.reference multiplies in float64; the two can differ by 1 when the product lies within
// float32 rounding of a .5 tie.)
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "ops/kernel.h"
#include "ops/op_util.h"
#include "ops/quant_gemm.h"

namespace runnx {
namespace {

void check_q8(const Tensor& t, const char* what, const Node& node) {
  RUNNX_CHECK(is_q8(t.dtype), kUnsupportedOp, node.label(), ": ", what, " of type ", dtype_name(t.dtype),
              " is not supported (int8 or uint8)");
}

// A zero point's type must be its operand's.
void check_zero_type(const Tensor* zp, const Tensor& x, const char* what, const Node& node) {
  RUNNX_CHECK(!zp || zp->dtype == x.dtype, kInvalidArgument, node.label(), ": ", what, " zero point type ",
              dtype_name(zp ? zp->dtype : x.dtype), " differs from its input's ", dtype_name(x.dtype));
}

// numpy MatMul shapes: 1-D operands promoted (A to a row, B to a column), batch dims broadcast.
struct MatMulDims {
  int64_t M = 0, K = 0, N = 0;
  Shape abatch, bbatch, batch, out;
};

MatMulDims matmul_dims(const Shape& a, const Shape& b, const Node& node) {
  RUNNX_CHECK(!a.empty() && !b.empty(), kInvalidArgument, node.label(), ": operands must have rank >= 1, got ",
              shape_str(a), " and ", shape_str(b));
  Shape as = a, bs = b;
  if (as.size() == 1) as.insert(as.begin(), 1);
  if (bs.size() == 1) bs.push_back(1);
  MatMulDims d;
  d.M = as[as.size() - 2];
  d.K = as.back();
  d.N = bs.back();
  RUNNX_CHECK(bs[bs.size() - 2] == d.K, kInvalidArgument, node.label(), ": inner dimensions differ: A has shape ",
              shape_str(a), ", B has shape ", shape_str(b));
  d.abatch.assign(as.begin(), as.end() - 2);
  d.bbatch.assign(bs.begin(), bs.end() - 2);
  d.batch = broadcast_shapes({&d.abatch, &d.bbatch}, node);
  d.out = d.batch;
  if (a.size() > 1) d.out.push_back(d.M);
  if (b.size() > 1) d.out.push_back(d.N);
  return d;
}

// A zero point as int32 values with a stride: one value (stride 0, empty = 0) or one per row of A
// / column of B for every batch of that operand (stride 1).
struct ZeroPoint {
  std::vector<int32_t> values;
  int64_t stride = 0;
  const int32_t* at(int64_t batch, int64_t len) const {
    return values.empty() ? nullptr : values.data() + (stride ? batch * len : 0);
  }
};

// Broadcasts `zp` (its dims as `zdims`) to `target` = [operand batch..., len].
ZeroPoint expand_zero_point(const Tensor& zp, const Shape& zdims, const Shape& target, const char* what,
                            const Node& node) {
  ZeroPoint z;
  const std::vector<int32_t> v = read_q8(zp);
  if (v.size() == 1) {
    z.values = v;
    return z;
  }
  bool fits = zdims.size() <= target.size();
  for (size_t i = 0; fits && i < zdims.size(); ++i) {
    const int64_t zd = zdims[i], td = target[target.size() - zdims.size() + i];
    fits = zd == td || zd == 1;
  }
  RUNNX_CHECK(fits, kInvalidArgument, node.label(), ": ", what, " zero point of shape ", shape_str(zp.shape),
              " is neither a scalar nor one value per ", what == std::string("A") ? "row" : "column");
  const std::vector<int64_t> st = broadcast_strides(zdims, target);
  const int64_t n = shape_numel(target);
  z.values.resize(static_cast<size_t>(n));
  z.stride = 1;
  std::vector<int64_t> idx(target.size(), 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t off = 0;
    for (size_t d = 0; d < target.size(); ++d) off += idx[d] * st[d];
    z.values[static_cast<size_t>(i)] = v[static_cast<size_t>(off)];
    for (int64_t d = static_cast<int64_t>(target.size()) - 1; d >= 0; --d) {
      if (++idx[d] < target[d]) break;
      idx[d] = 0;
    }
  }
  return z;
}

// A's zero point: scalar, [M] or [..., M, 1] (per row).
ZeroPoint a_zero_point(const Tensor* zp, const Tensor& a, const MatMulDims& d, const Node& node) {
  if (!zp) return {};
  Shape zdims = zp->shape;
  if (zp->numel() != 1 && zdims.size() >= 2 && a.rank() == static_cast<int64_t>(zdims.size())) {
    RUNNX_CHECK(zdims.back() == 1, kInvalidArgument, node.label(), ": A zero point of shape ",
                shape_str(zp->shape), " must end in 1 (one value per row)");
    zdims.pop_back();
  }
  Shape target = d.abatch;
  target.push_back(d.M);
  return expand_zero_point(*zp, zdims, target, "A", node);
}

// B's zero point: scalar, [N] or [..., 1, N] (per column).
ZeroPoint b_zero_point(const Tensor* zp, const Tensor& b, const MatMulDims& d, const Node& node) {
  if (!zp) return {};
  Shape zdims = zp->shape;
  if (zp->numel() != 1 && zdims.size() >= 2 && b.rank() == static_cast<int64_t>(zdims.size())) {
    RUNNX_CHECK(zdims[zdims.size() - 2] == 1, kInvalidArgument, node.label(), ": B zero point of shape ",
                shape_str(zp->shape), " must have 1 in its second last dim (one value per column)");
    zdims.erase(zdims.end() - 2);
  }
  Shape target = d.bbatch;
  target.push_back(d.N);
  return expand_zero_point(*zp, zdims, target, "B", node);
}

// int32 Y[batch][M][N] = (A - za) x (B - zb). `packed` is B already packed (constant weights).
void integer_matmul(const Tensor& a, const Tensor& b, bool trans_b, const MatMulDims& d, const ZeroPoint& za,
                    const ZeroPoint& zb, const PackedQuantB* packed, int32_t* y, ThreadPool& pool) {
  const int64_t M = d.M, K = d.K, N = d.N, nb = shape_numel(d.batch);
  const int64_t nba = shape_numel(d.abatch), nbb = shape_numel(d.bbatch);
  const bool au = a.dtype == DType::kU8, bu = b.dtype == DType::kU8;
  const int64_t ldb = trans_b ? K : N;
  auto pack = [&](int64_t ib) {
    return pack_quant_b(static_cast<const uint8_t*>(b.data) + ib * K * N, bu, K, N, ldb, trans_b, zb.at(ib, N),
                        zb.stride);
  };
  if (nbb == 1 && nba == nb) {  // one tall product: every row of A against the one B
    PackedQuantB own;
    if (!packed) own = pack(0);
    quant_gemm(nb * M, a.data, au, K, za.at(0, M), za.stride, packed ? *packed : own, y, N, &pool);
    return;
  }
  std::vector<PackedQuantB> bs(static_cast<size_t>(nbb));
  for (int64_t ib = 0; ib < nbb; ++ib) bs[ib] = pack(ib);
  const std::vector<int64_t> sa = broadcast_strides(d.abatch, d.batch), sb = broadcast_strides(d.bbatch, d.batch);
  std::vector<int64_t> idx(d.batch.size(), 0);
  for (int64_t t = 0; t < nb; ++t) {
    int64_t ia = 0, ib = 0;
    for (size_t k = 0; k < d.batch.size(); ++k) {
      ia += idx[k] * sa[k];
      ib += idx[k] * sb[k];
    }
    quant_gemm(M, static_cast<const uint8_t*>(a.data) + ia * M * K, au, K, za.at(ia, M), za.stride, bs[ib],
               y + t * M * N, N, &pool);
    for (int64_t k = static_cast<int64_t>(d.batch.size()) - 1; k >= 0; --k) {
      if (++idx[k] < d.batch[k]) break;
      idx[k] = 0;
    }
  }
}

// A constant 2-D B (and constant zero point) packed once at load. Inputs: B at `bi`, zero point at `zi`.
struct ConstantQuantB {
  std::optional<PackedQuantB> packed;
  const void* from = nullptr;

  ConstantQuantB(const KernelInfo& info, int bi, int zi, bool trans_b) {
    const Tensor* b = info.constant_input(bi);
    const bool has_zp = zi < static_cast<int>(info.node.inputs.size()) && !info.node.inputs[zi].empty();
    const Tensor* zp = has_zp ? info.constant_input(zi) : nullptr;
    if (!b || b->rank() != 2 || !is_q8(b->dtype) || (has_zp && (!zp || zp->dtype != b->dtype))) return;
    const int64_t K = trans_b ? b->shape[1] : b->shape[0], N = trans_b ? b->shape[0] : b->shape[1];
    std::vector<int32_t> z = zp ? read_q8(*zp) : std::vector<int32_t>{};
    if (!z.empty() && z.size() != 1 && (zp->rank() != 1 || static_cast<int64_t>(z.size()) != N)) return;
    packed = pack_quant_b(b->data, b->dtype == DType::kU8, K, N, b->shape[1], trans_b, z.empty() ? nullptr : z.data(),
                          z.size() > 1 ? 1 : 0);
    from = b->data;
    if (info.release_constant) info.release_constant(bi);
  }
  const PackedQuantB* get(const Tensor& b) const { return packed && b.data == from ? &*packed : nullptr; }
};

class MatMulIntegerKernel : public Kernel {
 public:
  explicit MatMulIntegerKernel(const KernelInfo& info) : const_b_(info, 1, 3, false) {}

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& a = ctx.required_input(0);
    const Tensor& b = ctx.required_input(1);
    const Tensor* za = ctx.input(2);
    const Tensor* zb = ctx.input(3);
    check_q8(a, "A", node);
    check_q8(b, "B", node);
    check_zero_type(za, a, "A", node);
    check_zero_type(zb, b, "B", node);
    const MatMulDims d = matmul_dims(a.shape, b.shape, node);
    const ZeroPoint zpa = a_zero_point(za, a, d, node), zpb = b_zero_point(zb, b, d, node);
    Tensor& y = ctx.allocate_output(0, DType::kI32, d.out);
    if (y.numel() == 0) return;
    integer_matmul(a, b, false, d, zpa, zpb, const_b_.get(b), y.ptr<int32_t>(), ctx.pool());
  }
  std::string describe() const override {
    return std::string("int8 gemm ") + quant_gemm_isa() + (const_b_.packed ? ", B packed at load" : "");
  }

 private:
  ConstantQuantB const_b_;
};

float scalar_scale(const Tensor& s, const char* what, const Node& node) {
  RUNNX_CHECK(s.dtype == DType::kF32, kUnsupportedOp, node.label(), ": ", what, " of type ", dtype_name(s.dtype),
              " is not supported (float32)");
  RUNNX_CHECK(s.numel() == 1, kUnsupportedOp, node.label(), ": ", what, " of shape ", shape_str(s.shape),
              " is not supported (one value per tensor)");
  return *s.ptr<float>();
}

// QLinearMatMul and QGemm: the integer product, an optional int32 bias per column, requantized.
class QLinearKernel : public Kernel {
 public:
  // Input positions: a 0, a_scale 1, a_zero 2, b 3, b_scale 4, b_zero 5, then [bias,] y_scale, y_zero.
  QLinearKernel(const KernelInfo& info, bool gemm)
      : gemm_(gemm),
        trans_b_(gemm && info.node.get_int("transB", 0) != 0),
        bias_(gemm ? 6 : -1),
        ys_(gemm ? 7 : 6),
        const_b_(info, 3, 5, trans_b_) {}

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& a = ctx.required_input(0);
    const Tensor& b = ctx.required_input(3);
    const Tensor* za = ctx.input(2);
    const Tensor* zb = ctx.input(5);
    const Tensor* yz = ctx.input(ys_ + 1);
    const Tensor* bias = bias_ >= 0 ? ctx.input(bias_) : nullptr;
    check_q8(a, "A", node);
    check_q8(b, "B", node);
    check_zero_type(za, a, "A", node);
    check_zero_type(zb, b, "B", node);
    if (yz) check_q8(*yz, "y zero point", node);
    const DType yt = yz ? yz->dtype : a.dtype;
    RUNNX_CHECK(!za || za->numel() == 1, kUnsupportedOp, node.label(), ": A zero point of shape ",
                shape_str(za->shape), " is not supported (one value per tensor)");
    RUNNX_CHECK(!yz || yz->numel() == 1, kInvalidArgument, node.label(), ": y zero point must be a scalar");
    const float as = scalar_scale(ctx.required_input(1), "a_scale", node);
    const float ys = scalar_scale(ctx.required_input(ys_), "y_scale", node);
    Shape bshape = b.shape;
    if (gemm_) {
      RUNNX_CHECK(b.rank() == 2 && a.rank() >= 1, kInvalidArgument, node.label(),
                  ": B must be 2-D and A of rank >= 1, got ", shape_str(a.shape), " and ", shape_str(b.shape));
      if (trans_b_) bshape = {b.shape[1], b.shape[0]};
    }
    const MatMulDims d = matmul_dims(a.shape, bshape, node);
    // b_scale and b_zero: one value, or one per column of a 2-D B.
    const Tensor& bsc = ctx.required_input(4);
    RUNNX_CHECK(bsc.dtype == DType::kF32, kUnsupportedOp, node.label(), ": b_scale of type ",
                dtype_name(bsc.dtype), " is not supported (float32)");
    auto per_column = [&](const Tensor& t) { return t.rank() == 1 && t.numel() == d.N && b.rank() == 2; };
    RUNNX_CHECK(bsc.numel() == 1 || per_column(bsc), kInvalidArgument, node.label(), ": b_scale of shape ",
                shape_str(bsc.shape), " is neither a scalar nor one value per column (", d.N, ")");
    RUNNX_CHECK(!zb || zb->numel() == 1 || per_column(*zb), kInvalidArgument, node.label(),
                ": b zero point of shape ", shape_str(zb->shape), " is neither a scalar nor one value per column");
    if (bias)
      RUNNX_CHECK(bias->dtype == DType::kI32 && (bias->numel() == d.N || bias->numel() == 1), kInvalidArgument,
                  node.label(), ": bias must be int32 with one value per column (", d.N, "), got ",
                  dtype_name(bias->dtype), shape_str(bias->shape));
    ZeroPoint zpa, zpb;
    if (za) zpa.values = read_q8(*za);
    if (zb) {
      zpb.values = read_q8(*zb);
      zpb.stride = zb->numel() == 1 ? 0 : 1;
    }
    Tensor& y = ctx.allocate_output(0, yt, d.out);
    if (y.numel() == 0) return;
    std::vector<float> mult(static_cast<size_t>(d.N));
    for (int64_t n = 0; n < d.N; ++n) mult[n] = as * bsc.ptr<float>()[bsc.numel() == 1 ? 0 : n] / ys;
    std::vector<int32_t> acc(static_cast<size_t>(y.numel()));
    integer_matmul(a, b, trans_b_, d, zpa, zpb, const_b_.get(b), acc.data(), ctx.pool());
    const int32_t z = yz ? read_q8(*yz)[0] : 0;
    const int32_t* bp = bias ? bias->ptr<int32_t>() : nullptr;
    const int64_t bstride = bias && bias->numel() > 1 ? 1 : 0;
    const int64_t rows = y.numel() / d.N;
    const bool u8 = yt == DType::kU8;
    ctx.pool().parallel_for(rows, std::max<int64_t>(1, 8192 / d.N), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        requantize_row(acc.data() + r * d.N, d.N, bp, bstride, mult.data(), z, u8, static_cast<uint8_t*>(y.data) + r * d.N);
    });
  }
  std::string describe() const override {
    return std::string("int8 gemm ") + quant_gemm_isa() + (const_b_.packed ? ", B packed at load" : "");
  }

 private:
  static void requantize_row(const int32_t* acc, int64_t n, const int32_t* bias, int64_t bstride, const float* mult,
                             int32_t zero, bool u8, uint8_t* out) {
    for (int64_t j = 0; j < n; ++j) {
      const uint32_t s = static_cast<uint32_t>(acc[j]) + static_cast<uint32_t>(bias ? bias[j * bstride] : 0);
      out[j] = requantize_q8(static_cast<int32_t>(s), mult[j], static_cast<float>(zero), u8);
    }
  }

  bool gemm_, trans_b_;
  int bias_, ys_;
  ConstantQuantB const_b_;
};

}  // namespace

void register_quant_matmul_ops(OpRegistry& r) {
  r.add("MatMulInteger", "", 10, factory<MatMulIntegerKernel>());
  r.add("QLinearMatMul", "", 10,
        [](const KernelInfo& info) -> std::unique_ptr<Kernel> { return std::make_unique<QLinearKernel>(info, false); });
  r.add("QGemm", "com.runnx", 1,
        [](const KernelInfo& info) -> std::unique_ptr<Kernel> { return std::make_unique<QLinearKernel>(info, true); });
}

}  // namespace runnx
