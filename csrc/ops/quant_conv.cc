// Integer convolutions on the int8 GEMM of quant_gemm.h (exact int32 sums), 1-D to 3-D, groups:
//   ConvInteger (opset 10): int32 = conv(x - x_zero, w - w_zero); x_zero per tensor, w_zero per
//     tensor or per output channel.
//   QLinearConv (opset 10): the same plus an optional int32 bias B (scale x_scale * w_scale),
//     requantized per output channel as QLinearMatMul (requantize_q8).
// Per image and group the output is computed transposed, one row per output position:
//   acc[p][m] = sum_k (patch[p][k] - x_zero) * (W[m][k] - w_zero[m]),  k over (tap, channel)
// so the weights (reordered to [M][taps][C/group]) are the packed B, once per group at load, and a
// patch row is a run of channel vectors copied from the image in channels-last order (made once
// per image and group); a padded tap reads x_zero, which contributes 0 exactly as the spec's
// zero padding of the real values does.
#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "ops/conv_util.h"
#include "ops/kernel.h"
#include "ops/op_util.h"
#include "ops/quant_gemm.h"

namespace runnx {
namespace {

// dst[cols][rows] = src[rows][cols] (src rows `ld` apart), in 32x32 blocks that stay in L1.
void transpose_bytes(int64_t rows, int64_t cols, const uint8_t* src, int64_t ld, uint8_t* dst) {
  constexpr int64_t kB = 32;
  for (int64_t r0 = 0; r0 < rows; r0 += kB)
    for (int64_t c0 = 0; c0 < cols; c0 += kB)
      for (int64_t c = c0; c < std::min(cols, c0 + kB); ++c)
        for (int64_t r = r0; r < std::min(rows, r0 + kB); ++r) dst[c * rows + r] = src[r * ld + c];
}

// Input positions: ConvInteger x 0, w 1, x_zero 2, w_zero 3; QLinearConv x 0, x_scale 1, x_zero 2,
// w 3, w_scale 4, w_zero 5, y_scale 6, y_zero 7, bias 8.
struct ConvSlots {
  int x, x_zero, w, w_zero;
};

class IntegerConvKernel : public Kernel {
 public:
  IntegerConvKernel(const KernelInfo& info, bool qlinear)
      : qlinear_(qlinear),
        s_(qlinear ? ConvSlots{0, 2, 3, 5} : ConvSlots{0, 2, 1, 3}),
        attrs_(info.node),
        group_(info.node.get_int("group", 1)) {
    RUNNX_CHECK(group_ >= 1, kInvalidModel, info.node.label(), ": group must be >= 1");
    // Pack the constant weights (and their constant zero point) once, one B per group.
    const Tensor* w = info.constant_input(s_.w);
    const bool has_zp = s_.w_zero < static_cast<int>(info.node.inputs.size()) && !info.node.inputs[s_.w_zero].empty();
    const Tensor* wz = has_zp ? info.constant_input(s_.w_zero) : nullptr;
    if (!w || !is_q8(w->dtype) || w->rank() < 3 || w->shape[0] % group_ != 0 || (has_zp && !wz)) return;
    std::vector<int32_t> z = wz ? read_q8(*wz) : std::vector<int32_t>{};
    if (!z.empty() && z.size() != 1 && static_cast<int64_t>(z.size()) != w->shape[0]) return;
    packed_ = pack_weights(*w, z);
    packed_from_ = w->data;
  }

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(s_.x);
    const Tensor& w = ctx.required_input(s_.w);
    const Tensor* xz = ctx.input(s_.x_zero);
    const Tensor* wz = ctx.input(s_.w_zero);
    for (const Tensor* t : {&x, &w})
      RUNNX_CHECK(is_q8(t->dtype), kUnsupportedOp, node.label(), ": ", (t == &x ? "x" : "w"), " of type ",
                  dtype_name(t->dtype), " is not supported (int8 or uint8)");
    RUNNX_CHECK(!xz || (xz->dtype == x.dtype && xz->numel() == 1), kInvalidArgument, node.label(),
                ": x's zero point must be one value of x's type");
    RUNNX_CHECK(!wz || (wz->dtype == w.dtype && (wz->numel() == 1 || wz->numel() == w.shape[0])), kInvalidArgument,
                node.label(), ": w's zero point must be one value of w's type, or one per output channel");
    RUNNX_CHECK(x.rank() >= 3 && w.rank() == x.rank(), kInvalidArgument, node.label(),
                ": x and w must have the same rank >= 3, got ", shape_str(x.shape), " and ", shape_str(w.shape));
    const int64_t N = x.shape[0], C = x.shape[1], M = w.shape[0], Cg = w.shape[1];
    RUNNX_CHECK(C == Cg * group_ && M % group_ == 0, kInvalidArgument, node.label(), ": x has ", C,
                " channels and w ", shape_str(w.shape), ", which group = ", group_, " does not fit");
    const std::vector<int64_t> in(x.shape.begin() + 2, x.shape.end()), k(w.shape.begin() + 2, w.shape.end());
    if (!attrs_.kernel.empty())
      RUNNX_CHECK(attrs_.kernel == k, kInvalidArgument, node.label(), ": kernel_shape does not match w");
    const Geom3 g = window_geometry(node, attrs_, in, k);
    Shape out_shape = {N, M};
    for (size_t d = 3 - in.size(); d < 3; ++d) out_shape.push_back(g.out[d]);
    // The output stage.
    DType yt = DType::kI32;
    std::vector<float> mult;
    const Tensor* bias = nullptr;
    float yzero = 0.f;
    if (qlinear_) {
      const Tensor& xs = ctx.required_input(1);
      const Tensor& ws = ctx.required_input(4);
      const Tensor& ys = ctx.required_input(6);
      const Tensor* yz = ctx.input(7);
      bias = ctx.input(8);
      for (const Tensor* t : {&xs, &ws, &ys})
        RUNNX_CHECK(t->dtype == DType::kF32, kUnsupportedOp, node.label(), ": scales must be float32");
      RUNNX_CHECK(xs.numel() == 1 && ys.numel() == 1 && (ws.numel() == 1 || ws.numel() == M), kInvalidArgument,
                  node.label(), ": x_scale and y_scale must be scalars, w_scale a scalar or one per output channel");
      RUNNX_CHECK(!yz || (is_q8(yz->dtype) && yz->numel() == 1), kInvalidArgument, node.label(),
                  ": y's zero point must be one int8 or uint8 value");
      RUNNX_CHECK(!bias || (bias->dtype == DType::kI32 && bias->numel() == M), kInvalidArgument, node.label(),
                  ": the bias must be int32 with one value per output channel (", M, ")");
      yt = yz ? yz->dtype : x.dtype;
      yzero = yz ? static_cast<float>(read_q8(*yz)[0]) : 0.f;
      mult.resize(static_cast<size_t>(M));
      for (int64_t m = 0; m < M; ++m) mult[m] = *xs.ptr<float>() * ws.ptr<float>()[ws.numel() == 1 ? 0 : m] / *ys.ptr<float>();
    }
    Tensor& y = ctx.allocate_output(0, yt, out_shape);
    if (y.numel() == 0) return;
    std::vector<PackedQuantB> own;
    const std::vector<PackedQuantB>* packed = &packed_;
    if (packed_.empty() || w.data != packed_from_) {
      own = pack_weights(w, wz ? read_q8(*wz) : std::vector<int32_t>{});
      packed = &own;
    }
    const int32_t zx = xz ? read_q8(*xz)[0] : 0;
    const int64_t P = g.out_size(), Mg = M / group_, Kg = Cg * g.k_size();
    std::vector<uint8_t> patches(static_cast<size_t>(P * Kg)), channels_last(static_cast<size_t>(g.in_size() * Cg));
    std::vector<int32_t> acc(static_cast<size_t>(P * Mg));
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t gi = 0; gi < group_; ++gi) {
        const uint8_t* xg = static_cast<const uint8_t*>(x.data) + ((n * C) + gi * Cg) * g.in_size();
        transpose_bytes(Cg, g.in_size(), xg, g.in_size(), channels_last.data());
        gather_patches(channels_last.data(), Cg, g, static_cast<uint8_t>(zx), patches.data(), ctx.pool());
        quant_gemm(P, patches.data(), x.dtype == DType::kU8, Kg, &zx, 0, (*packed)[gi], acc.data(), Mg, &ctx.pool());
        const int64_t m0 = gi * Mg;
        ctx.pool().parallel_for(Mg, std::max<int64_t>(1, 16384 / std::max<int64_t>(P, 1)), [&](int64_t b, int64_t e) {
          for (int64_t m = b; m < e; ++m) {
            const int64_t oc = m0 + m;
            if (!qlinear_) {
              int32_t* dst = y.ptr<int32_t>() + (n * M + oc) * P;
              for (int64_t p = 0; p < P; ++p) dst[p] = acc[p * Mg + m];
              continue;
            }
            uint8_t* dst = static_cast<uint8_t*>(y.data) + (n * M + oc) * P;
            const uint32_t b32 = bias ? static_cast<uint32_t>(bias->ptr<int32_t>()[oc]) : 0u;
            for (int64_t p = 0; p < P; ++p)
              dst[p] = requantize_q8(static_cast<int32_t>(static_cast<uint32_t>(acc[p * Mg + m]) + b32), mult[oc], yzero,
                                     yt == DType::kU8);
          }
        });
      }
    }
  }

  std::string describe() const override {
    return std::string("int8 gemm ") + quant_gemm_isa() + (packed_.empty() ? "" : ", weights packed at load");
  }

 private:
  // One packed B per group: W_g^T [Kg][Mg] with k ordered (tap, channel) as the patches are.
  std::vector<PackedQuantB> pack_weights(const Tensor& w, const std::vector<int32_t>& zero) const {
    const int64_t M = w.shape[0], Mg = M / group_, Cg = w.shape[1];
    const int64_t taps = Cg ? w.numel() / std::max<int64_t>(M * Cg, 1) : 0, Kg = Cg * taps;
    std::vector<uint8_t> reordered(static_cast<size_t>(w.numel()));
    for (int64_t m = 0; m < M; ++m)  // [M][C][taps] -> [M][taps][C]
      transpose_bytes(Cg, taps, static_cast<const uint8_t*>(w.data) + m * Kg, taps,
                                reordered.data() + m * Kg);
    std::vector<PackedQuantB> out;
    for (int64_t gi = 0; gi < group_; ++gi)
      out.push_back(pack_quant_b(reordered.data() + gi * Mg * Kg, w.dtype == DType::kU8, Kg, Mg, Kg, /*trans=*/true,
                                 zero.empty() ? nullptr : zero.data() + (zero.size() > 1 ? gi * Mg : 0),
                                 zero.size() > 1 ? 1 : 0));
    return out;
  }

  // patches[p][t * C + c] = x[input position of output p, tap t][c] from the channels-last image,
  // or the zero point where the tap falls in the padding. Bytes: int8 and uint8 move alike.
  static void gather_patches(const uint8_t* x, int64_t C, const Geom3& g, uint8_t zero, uint8_t* patches,
                             ThreadPool& pool) {
    const int64_t P = g.out_size(), taps = g.k_size(), K = C * taps;
    pool.parallel_for(P, std::max<int64_t>(1, 4096 / std::max<int64_t>(K, 1)), [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) {
        const int64_t o0 = p / (g.out[1] * g.out[2]), o1 = (p / g.out[2]) % g.out[1], o2 = p % g.out[2];
        uint8_t* row = patches + p * K;
        for (int64_t t = 0; t < taps; ++t) {
          const int64_t k0 = t / (g.k[1] * g.k[2]), k1 = (t / g.k[2]) % g.k[1], k2 = t % g.k[2];
          const int64_t i0 = o0 * g.s[0] - g.pb[0] + k0 * g.d[0];
          const int64_t i1 = o1 * g.s[1] - g.pb[1] + k1 * g.d[1];
          const int64_t i2 = o2 * g.s[2] - g.pb[2] + k2 * g.d[2];
          const bool inside = i0 >= 0 && i0 < g.in[0] && i1 >= 0 && i1 < g.in[1] && i2 >= 0 && i2 < g.in[2];
          uint8_t* dst = row + t * C;
          if (inside)
            std::memcpy(dst, x + ((i0 * g.in[1] + i1) * g.in[2] + i2) * C, static_cast<size_t>(C));
          else
            std::memset(dst, zero, static_cast<size_t>(C));
        }
      }
    });
  }

  bool qlinear_;
  ConvSlots s_;
  WindowAttrs attrs_;
  int64_t group_;
  std::vector<PackedQuantB> packed_;
  const void* packed_from_ = nullptr;
};

}  // namespace

void register_quant_conv_ops(OpRegistry& r) {
  r.add("ConvInteger", "", 10,
        [](const KernelInfo& info) -> std::unique_ptr<Kernel> { return std::make_unique<IntegerConvKernel>(info, false); });
  r.add("QLinearConv", "", 10,
        [](const KernelInfo& info) -> std::unique_ptr<Kernel> { return std::make_unique<IntegerConvKernel>(info, true); });
}

}  // namespace runnx
