// NhwcConv (com.runnx): FusedConv on channels-last activations, what the nhwc_layout pass turns
// the convolutions of a depthwise chain into. X is [N, H, W, C] (or [N, C, H, W] when
// nchw_input=1, so a chain's first convolution reads the model's input without a reorder), W the
// usual constant [M, C/group, KH, KW], B [M], Z the residual in the output's layout [N, OH, OW, M];
// y = act(conv(x, w) + b + z) is [N, OH, OW, M]. Attributes: Conv's plus FusedConv's activation.
//   group 1:   y rows (pixels) = x rows (1x1, stride 1, no pads: no copy) or channels-last im2col
//              rows, times the weights packed once at load: one sgemm whose epilogue adds the bias
//              per column, the residual and the activation. No per-run packing of activations.
//   few input channels (a stem: C <= kDirectMaxChannels): direct, a broadcast input scalar
//              against rows of weights (conv_direct_nhwc_impl.h), no im2col.
//   depthwise: (group == C == M) output rows, 8 channels per vector (dwconv_nhwc_impl.h).
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "kernels/cpu/conv_simd.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/pointwise_nhwc.h"
#include "kernels/cpu/winograd.h"
#include "ops/conv_util.h"
#include "ops/kernel.h"
#include "ops/op_util.h"

namespace runnx {
namespace {

// im2col chunks: at most this many floats (L2-sized), and enough chunks for every thread.
constexpr int64_t kChunkFloats = int64_t{1} << 16;
// Up to this many floats (4 MB) the whole im2col is gathered before one parallel GEMM.
constexpr int64_t kWholeColFloats = int64_t{1} << 20;
// ... beyond, chunks of at least this many rows: each chunk's GEMM streams all the packed weights
// (ResNet-50's 3x3 512 -> 512 at 7x7, batch 32: chunks of 14 rows read its 9.4 MB 112 times).
constexpr int64_t kMinChunkRows = 96;
constexpr int64_t kParallelMacs = int64_t{1} << 17;
// Group-1 convs with at most this many input channels (and a kernel larger than 1x1) run direct:
// bench/conv.py --profile (1 thread), MobileNetV2's stem 3x3/s2 3->32 at 224: im2col + GEMM
// 865 us, direct 497 us (onnxruntime 439).
constexpr int64_t kDirectMaxChannels = 4;
// Depthwise tensors this big live in DRAM or at best L3 (MobileNetV2 at batch 32: 10-154 MB): the
// kernel prefetches the input rows ahead (bench, 1 thread, b32 per image: 384ch @14 s1 97-105 ->
// 88-92 us), and an output of kStreamBytes is stored with non-temporal writes, which skip reading
// every line before writing it (96ch @112 s2 1180-1270 -> 950-1040 us, 144ch @56 s1 790-800 ->
// 510 us). Batch 1 tensors (<= 4.8 MB) stay in the caches for the next conv, where both only cost.
constexpr int64_t kPrefetchBytes = int64_t{8} << 20;
constexpr int64_t kStreamBytes = int64_t{16} << 20;
// NhwcDwProject's depthwise band (floats of scratch per thread): with the input rows it reads
// and the projection's output rows it stays in a 1 MB L2.
constexpr int64_t kBandFloats = int64_t{32} << 10;
// ... but at least this many pixels (more rows on small planes, spanning images): the 1x1 GEMM on
// a band re-reads W_p (C x M, up to 600 KB) per band (bench at batch 32, 960ch @7 -> 160:
// bands of 28 pixels took 1.08-1.3x the unfused pair).
constexpr int64_t kMinBandPixels = 96;
// Bands are evened out over the threads (NhwcDwProjectKernel::Bands) below this many per thread:
// with more, the last band's imbalance is small and the chunks of the pool even it out.
constexpr int64_t kEvenBandsPerThread = 8;
// NhwcDwProject with the expansion folded in: floats of scratch per band (the expanded rows the
// band reads plus its depthwise rows).
constexpr int64_t kBlockBandFloats = int64_t{64} << 10;
// ... unless its input has at most this many pixels a thread: then the expansion runs whole first.
constexpr int64_t kWholePixels = 128;
// ... and its expansion GEMMs start and end on multiples of this many input pixels (a multiple
// of the sgemm's 6-row groups; see NhwcDwProjectKernel::banded).
constexpr int64_t kExpandChunk = 12;

// Every entry of v (an attribute's list; an absent one is empty) equals x.
bool all_are(const std::vector<int64_t>& v, int64_t x) {
  return std::all_of(v.begin(), v.end(), [x](int64_t e) { return e == x; });
}

// Depthwise weights [C, 1, kh, kw] blocked [C rounded up to 8 / 8][kh * kw][8] (zero past C).
std::vector<float> pack_depthwise(const float* wp, int64_t C, int64_t ks) {
  const int64_t Cp = (C + 7) / 8 * 8;
  std::vector<float> out(static_cast<size_t>(ks * Cp), 0.f);
  for (int64_t c = 0; c < C; ++c)
    for (int64_t t = 0; t < ks; ++t) out[(c / 8 * ks + t) * 8 + c % 8] = wp[c * ks + t];
  return out;
}

// B[(kh, kw, c), m] = W[m, c, kh, kw] (the order the channels-last im2col writes); with pad8
// rows of M rounded up to 8 (zero past M): the direct kernel's weights. Written row by row
// (m innermost): a write-strided transpose faulted a page every few stores.
std::vector<float> pack_direct(const float* wp, int64_t M, int64_t C, int64_t ks, bool pad8) {
  const int64_t ld = pad8 ? (M + 7) / 8 * 8 : M;
  std::vector<float> b(static_cast<size_t>(ks * C * ld), 0.f);
  // 16 output channels at a time: their rows of W stream forward as c grows, and each (t, c) of b
  // gets a whole line. (Taps outer read all of W once per tap, from memory: ResNet-50's
  // 512-channel 3x3 took ~8 ms at its first run; m outer wrote lines 2 KB apart: ~20 ms.)
  constexpr int64_t kCols = 16;
  for (int64_t m0 = 0; m0 < M; m0 += kCols) {
    const int64_t m1 = std::min(M, m0 + kCols);
    for (int64_t c = 0; c < C; ++c)
      for (int64_t t = 0; t < ks; ++t)
        for (int64_t m = m0; m < m1; ++m) b[(t * C + c) * ld + m] = wp[(m * C + c) * ks + t];
  }
  return b;
}

// The direct kernel's geometry for images of C channels (NCHW or NHWC) and M output channels.
DirectNhwcGeom direct_geometry(const Geom3& g, int64_t C, int64_t M, int64_t KH, int64_t KW,
                               bool nchw) {
  const int64_t H = g.in[1], W = g.in[2];
  DirectNhwcGeom dg{H,      W,      C,       M,       g.out[2], KH, KW, g.s[1], g.s[2],
                    g.d[1], g.d[2], g.pb[1], g.pb[2], 1,        1,  1};
  if (nchw) {
    dg.xs_c = H * W;
    dg.xs_h = W;
  } else {
    dg.xs_h = W * C;
    dg.xs_w = C;
  }
  return dg;
}

DwNhwcGeom depthwise_geometry(const Geom3& g, int64_t N, int64_t C, int64_t KH, int64_t KW) {
  DwNhwcGeom dg{g.in[1], g.in[2], C,      g.out[1], g.out[2], KH,      KW,
                g.s[1],  g.s[2],  g.d[1], g.d[2],   g.pb[1],  g.pb[2]};
  dg.prefetch_rows = N * g.in[1] * g.in[2] * C * int64_t{sizeof(float)} >= kPrefetchBytes;
  return dg;
}

// y = act(conv + z) where Z's shape differs from the conv's (the Add it came from broadcast):
// numpy broadcasting over the four dims, y allocated with the broadcast shape. e: the activation.
void add_broadcast_residual(KernelContext& ctx, const Tensor& conv, const Tensor& z,
                            ConvEpilogue e) {
  const Node& node = ctx.node();
  const Shape& conv_shape = conv.shape;
  RUNNX_CHECK(z.rank() <= 4, kInvalidArgument, node.label(), ": Z ", shape_str(z.shape),
              " does not broadcast with the output ", shape_str(conv_shape));
  Shape zs(4 - z.rank(), 1);
  zs.insert(zs.end(), z.shape.begin(), z.shape.end());
  Shape out(4);
  for (int i = 0; i < 4; ++i) {
    RUNNX_CHECK(zs[i] == conv_shape[i] || zs[i] == 1 || conv_shape[i] == 1, kInvalidArgument,
                node.label(), ": Z ", shape_str(z.shape), " does not broadcast with the output ",
                shape_str(conv_shape));
    out[i] = zs[i] == 1 ? conv_shape[i] : zs[i];
  }
  Tensor& y = ctx.allocate_output(0, DType::kF32, out);
  if (y.numel() == 0) return;
  // Element strides of the conv result and of Z along each output dim (0 where broadcast).
  int64_t sc[4], sz[4], c_acc = 1, z_acc = 1;
  for (int i = 3; i >= 0; --i) {
    sc[i] = conv_shape[i] == 1 ? 0 : c_acc;
    sz[i] = zs[i] == 1 ? 0 : z_acc;
    c_acc *= conv_shape[i];
    z_acc *= zs[i];
  }
  const float* cp = conv.ptr<float>();
  const float* zp = z.ptr<float>();
  float* yp = y.ptr<float>();
  int64_t o = 0;
  for (int64_t i0 = 0; i0 < out[0]; ++i0)
    for (int64_t i1 = 0; i1 < out[1]; ++i1)
      for (int64_t i2 = 0; i2 < out[2]; ++i2)
        for (int64_t i3 = 0; i3 < out[3]; ++i3, ++o) {
          const int64_t ci = i0 * sc[0] + i1 * sc[1] + i2 * sc[2] + i3 * sc[3];
          const int64_t zi = i0 * sz[0] + i1 * sz[1] + i2 * sz[2] + i3 * sz[3];
          yp[o] = cp[ci] + zp[zi];
        }
  e.bias = nullptr;
  e.residual = nullptr;
  if (!e.is_identity()) conv_simd().epilogue_rows(e, 0, 1, y.numel(), yp, 0, nullptr, 0);
}

class NhwcConvKernel : public Kernel {
 public:
  explicit NhwcConvKernel(const KernelInfo& info) : attrs_(info.node) {
    const Node& node = info.node;
    act_ = parse_conv_activation(node);
    group_ = node.get_int("group", 1);
    nchw_input_ = node.get_int("nchw_input", 0) != 0;
    const Tensor* w = info.constant_input(1);
    RUNNX_CHECK(w && w->dtype == DType::kF32 && w->rank() == 4, kInvalidModel, node.label(),
                ": NhwcConv needs a constant float32 weight of rank 4");
    M_ = w->shape[0];
    KH_ = w->shape[2];
    KW_ = w->shape[3];
    const int64_t Cg = w->shape[1];
    if (!attrs_.kernel.empty())
      RUNNX_CHECK(attrs_.kernel == std::vector<int64_t>({KH_, KW_}), kInvalidModel, node.label(),
                  ": kernel_shape attribute does not match W ", shape_str(w->shape));
    depthwise_ = group_ > 1 && Cg == 1 && group_ == M_;
    RUNNX_CHECK(group_ == 1 || depthwise_, kInvalidModel, node.label(),
                ": NhwcConv supports group 1 or depthwise (group == C == M), got group=", group_,
                " and W ", shape_str(w->shape));
    RUNNX_CHECK(!(depthwise_ && nchw_input_), kInvalidModel, node.label(),
                ": nchw_input is supported for group 1 only");
    RUNNX_CHECK(!depthwise_ || KH_ <= 16, kInvalidModel, node.label(),
                ": depthwise kernels up to 16 rows are supported");
    C_ = depthwise_ ? M_ : Cg;
    const float* wp = w->ptr<float>();
    const int64_t ks = KH_ * KW_;
    if (depthwise_) {
      wdw_ = pack_depthwise(wp, C_, ks);
    } else if (ks == 1) {
      packed_ = pack_b_f32(C_, M_, wp, C_, true);  // W [M, C] is B^T as it stands
    } else {
      const int64_t K = ks * C_;
      direct_ = C_ <= kDirectMaxChannels && ks > 1 && K <= DirectNhwcGeom::kMaxTaps;
      wino_shape_ = !direct_ && !nchw_input_ && KH_ == 3 && KW_ == 3 && all_are(attrs_.strides, 1) &&
                    all_are(attrs_.dilations, 1) && C_ % 8 == 0 && M_ % 8 == 0;
      if (direct_) {
        wdirect_ = pack_direct(wp, M_, C_, ks, true);
      } else if (wino_shape_) {
        return;  // the image size picks Winograd or im2col at run time: W is kept until then
      } else {
        packed_ = pack_im2col(wp);
      }
    }
    if (info.release_constant) info.release_constant(1);
  }

  // Every path reads residual element i before it writes y[i] (GEMM epilogue in registers, the
  // depthwise and direct stores), so y may take over Z's buffer when Z dies here.
  int inplace_input() const override { return 3; }

  std::string describe() const override {
    if (depthwise_) return "nhwc depthwise, 8 channels per vector";
    if (wino_shape_) return "nhwc Winograd F(4x4, 3x3) from 16 output tiles, else im2col + sgemm";
    if (direct_) return std::string("nhwc direct (few input channels)") +
                        (nchw_input_ ? ", reads NCHW input" : "");
    return std::string("nhwc ") + (KH_ * KW_ == 1 ? "1x1" : "im2col") + " + sgemm " +
           gemm_f32_isa() + ", W packed at load" + (nchw_input_ ? ", reads NCHW input" : "");
  }

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    const Tensor* b = ctx.input(2);
    const Tensor* z = ctx.input(3);
    RUNNX_CHECK(x.rank() == 4 && x.dtype == DType::kF32, kInvalidArgument, node.label(),
                ": X must be a float32 tensor of rank 4, got ", dtype_name(x.dtype), " ",
                shape_str(x.shape));
    const int64_t N = x.shape[0];
    const int64_t C = nchw_input_ ? x.shape[1] : x.shape[3];
    const int64_t H = nchw_input_ ? x.shape[2] : x.shape[1];
    const int64_t W = nchw_input_ ? x.shape[3] : x.shape[2];
    RUNNX_CHECK(C == C_, kInvalidArgument, node.label(), ": X ", shape_str(x.shape), " has ", C,
                " channels, the weights expect ", C_);
    RUNNX_CHECK(!b || (b->dtype == DType::kF32 && b->rank() == 1 && b->shape[0] == M_),
                kInvalidArgument, node.label(), ": B must be float32 of shape [", M_, "]");
    RUNNX_CHECK(!z || z->dtype == DType::kF32, kInvalidArgument, node.label(),
                ": the residual input Z must be float32");
    const Geom3 g = window_geometry(node, attrs_, {H, W}, {KH_, KW_});
    const Shape out = {N, g.out[1], g.out[2], M_};
    ConvEpilogue e = act_;
    e.bias = b ? b->ptr<float>() : nullptr;
    if (z && z->shape != out) return run_broadcast_residual(ctx, x, *z, g, out, e);
    Tensor& y = ctx.allocate_output(0, DType::kF32, out);
    if (y.numel() == 0) return;
    e.residual = z ? z->ptr<float>() : nullptr;
    compute(ctx, x, g, e, y.ptr<float>(), ctx.pool());
  }

 private:
  // W [M, C, KH, KW] as the channels-last im2col GEMM's packed B: rows (kh, kw, c), columns m.
  PackedB pack_im2col(const float* w, ThreadPool* pool = nullptr) const {
    return pack_b_f32(KH_ * KW_ * C_, M_, pack_direct(w, M_, C_, KH_ * KW_, false).data(), M_, false, pool);
  }

  void compute(KernelContext& ctx, const Tensor& x, const Geom3& g, const ConvEpilogue& e, float* y,
               ThreadPool& pool) const {
    if (depthwise_) return run_depthwise(x, g, e, y, pool);
    if (direct_) return run_direct(x, g, e, y, pool);
    if (wino_shape_) {
      const float* w = ctx.required_input(1).ptr<float>();
      if (winograd_pays(g.out[1], g.out[2])) {
        std::call_once(wino_once_, [&] { wino_ = std::make_unique<WinogradF43>(w, M_, C_, true, &pool); });
        return wino_->run_nhwc(x.ptr<float>(), x.shape[0], g.in[1], g.in[2], g.pb[1], g.pb[2],
                               g.out[1], g.out[2], e, y, pool);
      }
      std::call_once(packed_once_, [&] { packed_ = pack_im2col(w, &pool); });
    }
    run_gemm(x, g, e, y, pool);
  }

  void run_gemm(const Tensor& xt, const Geom3& g, const ConvEpilogue& e, float* y,
                ThreadPool& pool) const {
    const int64_t N = xt.shape[0], OH = g.out[1], OW = g.out[2], P = OH * OW;
    const int64_t rows = N * P, K = KH_ * KW_ * C_;
    GemmEpilogue epi = conv_gemm_epilogue(e, false);
    const float* x = xt.ptr<float>();
    const bool pointwise = !nchw_input_ && KH_ * KW_ == 1 && g.s[1] == 1 && g.s[2] == 1 &&
                           g.pb[1] == 0 && g.pb[2] == 0 && g.pe[1] == 0 && g.pe[2] == 0;
    if (pointwise) {
      epi.residual = e.residual;
      epi.ldr = M_;
      gemm_f32_packed(rows, x, C_, packed_, y, M_, 0.f, epi, &pool);
      return;
    }
    const int64_t H = g.in[1], W = g.in[2];
    // im2col rows [p0, p1) (pixels over the batch) into dst, K floats each.
    auto gather = [&](int64_t p0, int64_t p1, float* dst) {
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t n = p / P, oh = (p % P) / OW, ow = p % OW;
        for (int64_t kh = 0; kh < KH_; ++kh) {
          const int64_t ih = oh * g.s[1] - g.pb[1] + kh * g.d[1];
          for (int64_t kw = 0; kw < KW_; ++kw, dst += C_) {
            const int64_t iw = ow * g.s[2] - g.pb[2] + kw * g.d[2];
            if (ih < 0 || ih >= H || iw < 0 || iw >= W) {
              std::fill(dst, dst + C_, 0.f);
            } else if (nchw_input_) {
              const float* src = x + (n * C_ * H + ih) * W + iw;
              for (int64_t c = 0; c < C_; ++c) dst[c] = src[c * H * W];
            } else {
              std::memcpy(dst, x + ((n * H + ih) * W + iw) * C_, sizeof(float) * C_);
            }
          }
        }
      }
    };
    if (rows * K <= kWholeColFloats && rows * K * M_ >= kParallelMacs) {
      // All rows gathered first, then one GEMM split over the pool: the packed weights are
      // streamed once. (In chunks of a few rows, each chunk streamed all of W: ResNet-50's
      // 3x3 512 -> 512 at 7x7, 49 rows, read its 9.4 MB five times.)
      float* col = conv_scratch(0, rows * K);
      pool.parallel_for(rows, std::max<int64_t>(1, kChunkFloats / (4 * K)),
                        [&](int64_t p0, int64_t p1) { gather(p0, p1, col + p0 * K); });
      epi.residual = e.residual;
      epi.ldr = M_;
      gemm_f32_packed(rows, col, K, packed_, y, M_, 0.f, epi, &pool);
      return;
    }
    const int64_t threads = pool.num_threads();
    int64_t chunk = std::max({kMinChunkRows, kChunkFloats / std::max<int64_t>(1, K)});
    if (rows * K * M_ >= kParallelMacs)
      chunk = std::min(chunk, std::max<int64_t>(6, (rows + 2 * threads - 1) / (2 * threads)));
    chunk = std::min(chunk, rows);
    const int64_t chunks = (rows + chunk - 1) / chunk;
    pool.parallel_for(chunks, 1, [&](int64_t t0, int64_t t1) {
      float* col = conv_scratch(0, chunk * K);
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t p0 = t * chunk, p1 = std::min(rows, p0 + chunk);
        gather(p0, p1, col);
        GemmEpilogue ep = epi;
        if (e.residual) {
          ep.residual = e.residual + p0 * M_;
          ep.ldr = M_;
        }
        gemm_f32_packed(p1 - p0, col, K, packed_, y + p0 * M_, M_, 0.f, ep, nullptr);
      }
    });
  }

  void run_depthwise(const Tensor& xt, const Geom3& g, const ConvEpilogue& e, float* y,
                     ThreadPool& pool) const {
    const int64_t N = xt.shape[0], H = g.in[1], W = g.in[2], OH = g.out[1], OW = g.out[2];
    DwNhwcGeom dg = depthwise_geometry(g, N, C_, KH_, KW_);
    dg.stream_out = N * OH * OW * C_ * int64_t{sizeof(float)} >= kStreamBytes;
    const float* x = xt.ptr<float>();
    const ConvSimd& simd = conv_simd();
    const int64_t row_macs = std::max<int64_t>(1, OW * C_ * KH_ * KW_);
    pool.parallel_for(N * OH, std::max<int64_t>(1, kParallelMacs / row_macs),
                      [&](int64_t r0, int64_t r1) {
                        float* zeros = conv_scratch(3, W * C_);
                        for (int64_t r = r0; r < r1; ++r) {
                          const int64_t n = r / OH, oh = r % OH;
                          const int64_t yo = r * OW * C_;
                          simd.depthwise_nhwc_row(x + n * H * W * C_, wdw_.data(), dg, e, oh,
                                                  e.residual ? e.residual + yo : nullptr, y + yo,
                                                  zeros);
                        }
                      });
  }

  void run_direct(const Tensor& xt, const Geom3& g, const ConvEpilogue& e, float* y,
                  ThreadPool& pool) const {
    const int64_t N = xt.shape[0], H = g.in[1], W = g.in[2], OH = g.out[1], OW = g.out[2];
    const DirectNhwcGeom dg = direct_geometry(g, C_, M_, KH_, KW_, nchw_input_);
    const float* x = xt.ptr<float>();
    const ConvSimd& simd = conv_simd();
    const int64_t row_macs = std::max<int64_t>(1, OW * M_ * KH_ * KW_ * C_);
    pool.parallel_for(N * OH, std::max<int64_t>(1, kParallelMacs / row_macs),
                      [&](int64_t r0, int64_t r1) {
                        for (int64_t r = r0; r < r1; ++r) {
                          const int64_t yo = r * OW * M_;
                          simd.direct_nhwc_row(x + (r / OH) * H * W * C_, wdirect_.data(), dg, e,
                                               r % OH, e.residual ? e.residual + yo : nullptr,
                                               y + yo);
                        }
                      });
  }

  // Z of another shape than the conv's output (the Add it came from broadcast): conv + bias
  // into a temporary, then act(conv + z) with numpy broadcasting over the four dims.
  void run_broadcast_residual(KernelContext& ctx, const Tensor& x, const Tensor& z, const Geom3& g,
                              const Shape& conv_shape, const ConvEpilogue& e) const {
    Tensor conv = Tensor::empty(DType::kF32, conv_shape);
    ConvEpilogue plain;
    plain.bias = e.bias;
    if (conv.numel() > 0) compute(ctx, x, g, plain, conv.ptr<float>(), ctx.pool());
    add_broadcast_residual(ctx, conv, z, e);
  }

  WindowAttrs attrs_;
  // 3x3, stride and dilation 1, C and M multiples of 8: Winograd when the image has enough tiles,
  // its weights (or im2col's packed ones) made on first use from the kept W.
  bool wino_shape_ = false;
  mutable std::once_flag wino_once_, packed_once_;
  mutable std::unique_ptr<WinogradF43> wino_;
  ConvEpilogue act_;
  int64_t group_ = 1, M_ = 0, C_ = 0, KH_ = 1, KW_ = 1;
  bool depthwise_ = false, nchw_input_ = false, direct_ = false;
  mutable PackedB packed_;  // group 1: [KH * KW * C, M]
  std::vector<float> wdw_;  // depthwise: [C rounded up to 8 / 8][KH * KW][8]
  std::vector<float> wdirect_;  // direct: [KH * KW * C][M rounded up to 8]
};

// NhwcDwProject (com.runnx, made by nhwc_dw_project_fusion): y = conv1x1(act(dw(x) + b_dw)) +
// b_p + z. Inputs X, W_p [M, C, 1, 1], B_p, Z, W_dw [C, 1, KH, KW], B_dw; the attributes are the
// depthwise conv's (its activation included). Per band of output rows (numbered across the
// images): the depthwise rows into a per-thread scratch of ~kBandFloats (it stays in L2), then
// one sgemm of the band against W_p packed at load, bias and residual in its epilogue, into y.
// Bands are split over the pool, each thread a contiguous share, as the convs around it split.
//
// With inputs 6 and 7 (W_e [C, Cin, 1, 1], B_e; nhwc_block_fusion) X is the block's narrow input
// and the expansion e = expand_act(conv1x1(x, W_e) + B_e) runs first, so the whole inverted
// residual block is one node. Per band only the expanded rows its depthwise window reads (the
// band's rows times the stride plus the halo) are computed, into a second per-thread scratch;
// rows the band a thread ran before already expanded (the halo) are moved, not redone: the band
// above when it runs its own share front to back, the band below when it takes another's from
// the back.
// The expanded tensor (6x the channels) then never exists whole. Expansions of at most
// kPointwiseMaxK input channels with ReLU/Clip/no activation run pointwise_nhwc.h's kernel
// (bias and clamp in registers), others the sgemm. A model's stem may be the "expansion" too
// (W_e k x k on <= 4 channels, attributes expand_strides / expand_pads / expand_dilations /
// expand_nchw_input): its output rows come from the direct kernel, one row per call, and X is
// the stem's input (NCHW with expand_nchw_input). Where the halo would cost too
// much (threads' shares of a small plane: batch 1) the expansion instead runs whole over the
// pool into a scratch first. RUNNX_BLOCK_EXPANSION=banded|whole (read at
// session creation) forces one of the two for tests.
class NhwcDwProjectKernel : public Kernel {
 public:
  explicit NhwcDwProjectKernel(const KernelInfo& info) : attrs_(info.node) {
    const Node& node = info.node;
    act_ = parse_conv_activation(node);
    const Tensor* wp = info.constant_input(1);
    const Tensor* wd = info.constant_input(4);
    RUNNX_CHECK(wp && wd && wp->dtype == DType::kF32 && wd->dtype == DType::kF32 &&
                    wp->rank() == 4 && wd->rank() == 4,
                kInvalidModel, node.label(),
                ": NhwcDwProject needs constant float32 weights of rank 4 (inputs 1 and 4)");
    C_ = wd->shape[0];
    M_ = wp->shape[0];
    KH_ = wd->shape[2];
    KW_ = wd->shape[3];
    RUNNX_CHECK(wd->shape[1] == 1 && node.get_int("group", 1) == C_ && KH_ <= 16 &&
                    wp->shape[1] == C_ && wp->shape[2] == 1 && wp->shape[3] == 1,
                kInvalidModel, node.label(), ": NhwcDwProject needs a depthwise W ",
                shape_str(wd->shape), " (group = C, at most 16 rows) and a 1x1 W ",
                shape_str(wp->shape), " on its channels");
    RUNNX_CHECK(attrs_.kernel == std::vector<int64_t>({KH_, KW_}), kInvalidModel, node.label(),
                ": kernel_shape must be set and match W ", shape_str(wd->shape));
    wdw_ = pack_depthwise(wd->ptr<float>(), C_, KH_ * KW_);
    packed_ = pack_b_f32(C_, M_, wp->ptr<float>(), C_, true);  // W_p [M, C] is B^T
    const bool expand = node.inputs.size() > 6 && !node.inputs[6].empty();
    if (expand) {
      const Tensor* we = info.constant_input(6);
      RUNNX_CHECK(we && we->dtype == DType::kF32 && we->rank() == 4 && we->shape[0] == C_,
                  kInvalidModel, node.label(), ": the expansion needs a constant float32 W [",
                  C_, ", Cin, KH, KW] (input 6), got ",
                  we ? shape_str(we->shape) : std::string("a run-time value"));
      Cin_ = we->shape[1];
      const Node en = expansion_node(node);
      expand_attrs_ = WindowAttrs(en);
      KHe_ = we->shape[2];
      KWe_ = we->shape[3];
      expand_nchw_ = en.get_int("nchw_input", 0) != 0;
      const ConvEpilogue ea = parse_conv_activation(en);
      expand_act_ = conv_gemm_epilogue(ea, false);
      const int64_t ks = KHe_ * KWe_;
      stem_ = ks > 1 || expand_nchw_;
      // A 1x1 expansion runs as a plain pointwise product over every pixel: a stride or pad
      // (which shape inference would apply) has no path here.
      RUNNX_CHECK(stem_ || (all_are(expand_attrs_.strides, 1) && all_are(expand_attrs_.pads, 0) &&
                            expand_attrs_.auto_pad == AutoPad::kNotSet),
                  kInvalidModel, node.label(),
                  ": a 1x1 expansion on NHWC input takes no expand_strides, expand_pads or auto_pad");
      RUNNX_CHECK(!stem_ || Cin_ <= kDirectMaxChannels, kInvalidModel, node.label(),
                  ": an expansion of more than a 1x1 needs at most ", kDirectMaxChannels,
                  " input channels, got W ", shape_str(we->shape));
      RUNNX_CHECK(!stem_ || ks * Cin_ <= DirectNhwcGeom::kMaxTaps, kInvalidModel, node.label(),
                  ": an expansion of more than a 1x1 needs at most ", DirectNhwcGeom::kMaxTaps,
                  " taps (channels x kernel), got W ", shape_str(we->shape));
      using A = ConvActivation;
      if (stem_) {
        stem_act_ = ea;
        wstem_ = pack_direct(we->ptr<float>(), C_, Cin_, ks, true);
      } else if (ea.act == A::kNone || ea.act == A::kRelu || ea.act == A::kClip) {
        pointwise_ = pack_pointwise(we->ptr<float>(), C_, Cin_);
        const float inf = std::numeric_limits<float>::infinity();
        clamp_lo_ = ea.act == A::kClip ? ea.alpha : ea.act == A::kRelu ? 0.f : -inf;
        clamp_hi_ = ea.act == A::kClip ? ea.beta : inf;
      }
      if (!stem_ && pointwise_.empty())
        packed_e_ = pack_b_f32(Cin_, C_, we->ptr<float>(), Cin_, true);  // W_e [C, Cin] is B^T
      const char* force = std::getenv("RUNNX_BLOCK_EXPANSION");
      const std::string f = force ? force : "";
      force_ = f == "banded" ? 1 : f == "whole" ? 2 : 0;
    }
    if (info.release_constant) {
      info.release_constant(1);
      info.release_constant(4);
      if (expand) info.release_constant(6);
    }
  }

  // The GEMM reads each residual element before its only store of it (one K-block: C <= 256, or
  // 1024 with AVX-512; else it copies an overlapping residual first) and the depthwise part never
  // reads Z. When Z is X itself (MobileNetV2's first block adds its input back) the planner keeps
  // y apart: another input of the node reads that buffer.
  int inplace_input() const override { return 3; }

  std::string describe() const override {
    const char* first = stem_ ? "nhwc direct stem expansion + "
                        : use_pointwise() ? "nhwc 1x1 expansion (pointwise kernel) + "
                        : expanding()     ? "nhwc 1x1 expansion + "
                                          : "nhwc ";
    return std::string(first) +
           "depthwise + 1x1 projection per row band, sgemm " + gemm_f32_isa();
  }

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    const Tensor* bp = ctx.input(2);
    const Tensor* z = ctx.input(3);
    const Tensor* bd = ctx.input(5);
    const Tensor* be = expanding() ? ctx.input(7) : nullptr;
    const int64_t cx = expanding() ? Cin_ : C_;
    RUNNX_CHECK(x.rank() == 4 && x.dtype == DType::kF32 && x.shape[expand_nchw_ ? 1 : 3] == cx,
                kInvalidArgument, node.label(), ": X must be a float32 ",
                expand_nchw_ ? "[N, " : "[N, H, W, ", cx, expand_nchw_ ? ", H, W]" : "]",
                " tensor, got ", dtype_name(x.dtype), " ", shape_str(x.shape));
    RUNNX_CHECK(!bp || (bp->dtype == DType::kF32 && bp->rank() == 1 && bp->shape[0] == M_),
                kInvalidArgument, node.label(), ": B must be float32 of shape [", M_, "]");
    RUNNX_CHECK(!bd || (bd->dtype == DType::kF32 && bd->rank() == 1 && bd->shape[0] == C_),
                kInvalidArgument, node.label(), ": the depthwise bias must be float32 of shape [",
                C_, "]");
    RUNNX_CHECK(!be || (be->dtype == DType::kF32 && be->rank() == 1 && be->shape[0] == C_),
                kInvalidArgument, node.label(), ": the expansion bias must be float32 of shape [",
                C_, "]");
    RUNNX_CHECK(!z || z->dtype == DType::kF32, kInvalidArgument, node.label(),
                ": the residual input Z must be float32");
    std::vector<int64_t> hw = {x.shape[expand_nchw_ ? 2 : 1], x.shape[expand_nchw_ ? 3 : 2]};
    Parts p;
    if (stem_) {  // the depthwise conv reads the stem's output
      p.stem = window_geometry(node, expand_attrs_, hw, {KHe_, KWe_});
      hw = {p.stem.out[1], p.stem.out[2]};
    }
    const Geom3 g = window_geometry(node, attrs_, hw, {KH_, KW_});
    const Shape out = {x.shape[0], g.out[1], g.out[2], M_};
    p.dw = act_;
    p.dw.bias = bd ? bd->ptr<float>() : nullptr;
    p.bias = bp ? bp->ptr<float>() : nullptr;
    p.expand = expand_act_;
    p.expand.bias = be ? be->ptr<float>() : nullptr;
    if (z && z->shape != out) {  // a residual that broadcasts: through a temporary
      Tensor conv = Tensor::empty(DType::kF32, out);
      if (conv.numel() > 0) compute(x, g, p, conv.ptr<float>(), ctx.pool());
      return add_broadcast_residual(ctx, conv, *z, ConvEpilogue{});
    }
    Tensor& y = ctx.allocate_output(0, DType::kF32, out);
    if (y.numel() == 0) return;
    p.res = z ? z->ptr<float>() : nullptr;
    compute(x, g, p, y.ptr<float>(), ctx.pool());
  }

 private:
  // The run's epilogues: the depthwise conv's (bias, activation), the projection's bias and
  // residual, the expansion's (bias, activation).
  struct Parts {
    ConvEpilogue dw;
    const float* bias = nullptr;
    const float* res = nullptr;
    GemmEpilogue expand;
    Geom3 stem;  // a stem expansion's geometry (its output is the depthwise input)
  };

  bool expanding() const { return Cin_ > 0; }

  // The expansion as a node of its own: the attributes named expand_<name> as <name>.
  static Node expansion_node(const Node& node) {
    Node e;
    e.name = node.name;
    e.op_type = node.op_type;
    e.domain = node.domain;
    for (const Attribute& a : node.attrs)
      if (a.name.rfind("expand_", 0) == 0) {
        e.attrs.push_back(a);
        e.attrs.back().name = a.name.substr(std::strlen("expand_"));
      }
    return e;
  }

  // The output rows [0, rows) cut into `count` bands of at most `max` rows: ~`floats` of scratch
  // per band (`per_row` floats per output row), at least kMinBandPixels pixels, whole images once
  // a band holds one, one band per thread at least. A few bands whose count is not a multiple of
  // the threads are evened out: a few more of them (a multiple of the threads where there are rows,
  // or whole images, enough), their rows (images) shared out so that they differ by one at most,
  // and each thread's share of the job is the same. MobileNetV2's 28x28 blocks at batch 1 had 5
  // or 7 bands, one thread 3 or 4 of them and the other 2 or 3. (Fewer, larger bands instead, 4 of 7 rows rather than 6 of 4-5, ran
  // the model as fast, within the noise of paired blocks; more bands keep the scratch in L2.)
  struct Bands {
    int64_t rows = 0, unit = 1, units = 0, count = 1, max = 1;
    bool even = false;
    Bands(int64_t floats, int64_t per_row, int64_t OH, int64_t OW, int64_t n_rows, int64_t threads)
        : rows(n_rows) {
      int64_t band = std::max<int64_t>(floats / std::max<int64_t>(1, per_row),
                                       (kMinBandPixels + OW - 1) / std::max<int64_t>(1, OW));
      if (band >= OH) band = band / OH * OH;
      max = std::clamp<int64_t>(std::min(band, (rows + threads - 1) / threads), 1, rows);
      count = (rows + max - 1) / max;
      if (count % threads == 0 || count >= kEvenBandsPerThread * threads) return;
      even = true;
      unit = max % OH == 0 ? OH : 1;
      units = rows / unit;
      count = std::min(units, (count + threads - 1) / threads * threads);
      max = (units + count - 1) / count * unit;
    }
    // Band t's first row (t = count: the end). Evened out, the first bands take the odd rows: an
    // image's top band has padding rows, which it need not expand.
    int64_t first(int64_t t) const {
      if (!even) return std::min(rows, t * max);
      return (units * t + count - 1) / count * unit;
    }
  };

  void compute(const Tensor& xt, const Geom3& g, const Parts& p, float* y,
               ThreadPool& pool) const {
    const int64_t N = xt.shape[0], H = g.in[1], W = g.in[2];
    if (!expanding()) return dw_project(xt.ptr<float>(), N, g, p, y, pool);
    if (!whole_expansion(N, g, pool.num_threads()))
      return banded(xt.ptr<float>(), N, g, p, y, pool);
    // The expanded tensor made whole first (in the caller's scratch, read by every thread).
    const int64_t pixels = N * H * W;
    float* e = conv_scratch(2, pixels * C_);
    if (stem_) {
      pool.parallel_for(N * H, 1, [&](int64_t r0, int64_t r1) {
        stem_rows(xt.ptr<float>(), p, r0, r1, e + r0 * W * C_);
      });
    } else if (use_pointwise()) {
      // Tasks of at most 384 pixels, at least one per thread, cut at multiples of the kernel's 6
      // (a 7x7 plane went to one thread whole). Each element is one FMA chain whatever the cut.
      const int64_t tasks = std::max<int64_t>(pool.num_threads(), (pixels + 383) / 384);
      auto cut = [&](int64_t t) { return t >= tasks ? pixels : pixels * t / tasks / 6 * 6; };
      pool.parallel_for(tasks, 1, [&](int64_t t0, int64_t t1) {
        const int64_t p0 = cut(t0), p1 = cut(t1);
        if (p1 > p0) expand(p1 - p0, xt.ptr<float>() + p0 * Cin_, p.expand, e + p0 * C_);
      });
    } else {
      gemm_f32_packed(pixels, xt.ptr<float>(), Cin_, packed_e_, e, C_, 0.f, p.expand, &pool);
    }
    dw_project(e, N, g, p, y, pool);
  }

  bool use_pointwise() const { return !pointwise_.empty(); }

  // Rows [r0, r1) of the stem's output (numbered across the images) into e, one direct row each.
  void stem_rows(const float* x, const Parts& p, int64_t r0, int64_t r1, float* e) const {
    const Geom3& gs = p.stem;
    const DirectNhwcGeom dg = direct_geometry(gs, Cin_, C_, KHe_, KWe_, expand_nchw_);
    ConvEpilogue epi = stem_act_;
    epi.bias = p.expand.bias;
    const int64_t OH = gs.out[1], image = Cin_ * gs.in[1] * gs.in[2], row = gs.out[2] * C_;
    const ConvSimd& simd = conv_simd();
    for (int64_t r = r0; r < r1; ++r)
      simd.direct_nhwc_row(x + r / OH * image, wstem_.data(), dg, epi, r % OH, nullptr,
                           e + (r - r0) * row);
  }

  // The expansion of `pixels` input pixels x (Cin channels) into e (C channels).
  void expand(int64_t pixels, const float* x, const GemmEpilogue& epi, float* e) const {
    if (use_pointwise())
      pointwise_clamp_avx2(pixels, x, Cin_, pointwise_, epi.bias, clamp_lo_, clamp_hi_, e, C_);
    else
      gemm_f32_packed(pixels, x, Cin_, packed_e_, e, C_, 0.f, epi, nullptr);
  }

  // Expand whole when the banded halo would add more than a fifth to the expansion (each
  // thread's share of the rows redoes the KH - stride rows its window shares with the previous
  // share), or when the input plane is at most kWholePixels pixels a thread. Bench, batch 1, 2
  // threads: 7x7 planes expand 9 rows for 7, banded 1.05-1.08x the two nodes, whole 0.98-1.05x.
  // MobileNetV2's 14x14 blocks, paired in one process: whole 0.92-0.97 of banded, its 28x28 ones
  // 1.07-1.13.
  bool whole_expansion(int64_t N, const Geom3& g, int64_t threads) const {
    if (force_) return force_ == 2;
    if (threads < 2) return false;
    const int64_t halo = std::max<int64_t>(0, (KH_ - 1) * g.d[1] + 1 - g.s[1]);
    return (threads - 1) * halo * 5 > N * g.in[1] || N * g.in[1] * g.in[2] <= kWholePixels * threads;
  }

  // The depthwise conv on x (C channels) and the projection, per band of output rows.
  void dw_project(const float* x, int64_t N, const Geom3& g, const Parts& p, float* y,
                  ThreadPool& pool) const {
    const int64_t H = g.in[1], W = g.in[2], OH = g.out[1], OW = g.out[2];
    const DwNhwcGeom dg = depthwise_geometry(g, N, C_, KH_, KW_);
    // Output rows are numbered across the images (n * OH + oh; y's pixels follow that order), so
    // a band of a small plane may span images: the GEMM needs enough rows to use each packed
    // panel of W_p well. At least one band per thread.
    const int64_t rows = N * OH;
    const Bands bands(kBandFloats, OW * C_, OH, OW, rows, pool.num_threads());
    const ConvSimd& simd = conv_simd();
    pool.parallel_for(bands.count, 1, [&](int64_t t0, int64_t t1) {
      float* zeros = conv_scratch(3, W * C_);
      float* d = conv_scratch(1, bands.max * OW * C_);
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t r0 = bands.first(t), r1 = bands.first(t + 1);
        for (int64_t r = r0; r < r1; ++r)
          simd.depthwise_nhwc_row(x + r / OH * H * W * C_, wdw_.data(), dg, p.dw, r % OH,
                                  nullptr, d + (r - r0) * OW * C_, zeros);
        project(d, r0 * OW, (r1 - r0) * OW, p, y);
      }
    });
  }

  // The projection of `pixels` depthwise pixels in d, the first being output pixel p0.
  void project(const float* d, int64_t p0, int64_t pixels, const Parts& p, float* y) const {
    GemmEpilogue ep;  // bias per column (output channel), no activation
    ep.bias = p.bias;
    ep.residual = p.res ? p.res + p0 * M_ : nullptr;
    ep.ldr = M_;
    gemm_f32_packed(pixels, d, C_, packed_, y + p0 * M_, M_, 0.f, ep, nullptr);
  }

  // The expanded pixels [a, b) a thread's scratch e holds, and for which call of banded(): the
  // pool runs a thread's bands a chunk (a call of the job's function) at a time, and a band
  // reuses the halo of the band the thread ran before it, from one chunk to the next. (A chunk
  // is one band at batch 1, where the halo was redone in every band: MobileNetV2's 56x56 blocks
  // expanded 6 rows per band of 4 on 2 threads, and 4 on one.)
  struct HeldRows {
    uint64_t call = 0;
    int64_t a = 0, b = 0;
  };

  // The whole block per band: the input rows (numbered across the images, n * H + ih) the band's
  // depthwise window reads are expanded into e, then the depthwise rows into d, then projected.
  void banded(const float* x, int64_t N, const Geom3& g, const Parts& p, float* y,
              ThreadPool& pool) const {
    const int64_t H = g.in[1], W = g.in[2], OH = g.out[1], OW = g.out[2];
    const int64_t sh = g.s[1], pt = g.pb[1], reach = (KH_ - 1) * g.d[1] + 1;
    const int64_t rows = N * OH, row = W * C_, total = N * H * W;
    const Bands bands(kBlockBandFloats, sh * row + OW * C_, OH, OW, rows, pool.num_threads());
    // The input rows [lo, hi) output rows [r0, r1) read: from the first row's window to the last
    // one's (a band spanning images holds the whole images between).
    auto reads = [&](int64_t r0, int64_t r1, int64_t& lo, int64_t& hi) {
      lo = r0 / OH * H + std::clamp<int64_t>(r0 % OH * sh - pt, 0, H);
      hi = (r1 - 1) / OH * H + std::clamp<int64_t>((r1 - 1) % OH * sh - pt + reach, 0, H);
      hi = std::max(hi, lo);
    };
    // The expansion runs on the pixels [a, b) around those rows, cut at fixed chunks of the whole
    // input (kExpandChunk pixels; the last one merged into the one before when shorter): the
    // sgemm's rounding depends on a row's place in its 6-row group (1-3 row groups sum k in
    // interleaved sets), so every pixel then comes out the same whichever band or thread expands
    // it, and results do not depend on how the bands fell to the threads.
    const int64_t last_chunk = [&] {
      const int64_t c = (total - 1) / kExpandChunk * kExpandChunk;
      return c >= kExpandChunk && total - c < kExpandChunk ? c - kExpandChunk : c;
    }();
    auto expands = [&](int64_t lo, int64_t hi, int64_t& a, int64_t& b) {
      if (stem_) {  // the direct kernel works in whole rows, each the same in any call
        a = lo * W;
        b = hi * W;
        return;
      }
      a = std::min(lo * W / kExpandChunk * kExpandChunk, last_chunk);
      b = (hi * W + kExpandChunk - 1) / kExpandChunk * kExpandChunk;
      if (b > last_chunk) b = total;
    };
    int64_t cap = 1;
    for (int64_t t = 0; t < bands.count; ++t) {
      int64_t lo, hi, a, b;
      reads(bands.first(t), bands.first(t + 1), lo, hi);
      expands(lo, hi, a, b);
      cap = std::max(cap, b - a);
    }
    DwNhwcGeom dg = depthwise_geometry(g, N, C_, KH_, KW_);
    dg.prefetch_rows = false;  // the rows come from the L2 scratch
    const ConvSimd& simd = conv_simd();
    static std::atomic<uint64_t> calls{0};
    const uint64_t call = calls.fetch_add(1, std::memory_order_relaxed) + 1;
    pool.parallel_for(bands.count, 1, [&](int64_t t0, int64_t t1) {
      float* zeros = conv_scratch(3, W * C_);
      float* d = conv_scratch(1, bands.max * OW * C_);
      float* e = conv_scratch(0, cap * C_);
      thread_local HeldRows held;
      if (held.call != call) held = HeldRows{call, 0, 0};
      int64_t& ea = held.a;  // the expanded pixels e holds: [ea, eb)
      int64_t& eb = held.b;
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t r0 = bands.first(t), r1 = bands.first(t + 1);
        int64_t lo, hi, a, b;
        reads(r0, r1, lo, hi);
        expands(lo, hi, a, b);
        int64_t from = a, to = b;  // the pixels left to expand
        if (a >= ea && a < eb && eb <= b) {  // the halo the band before this one expanded
          std::memmove(e, e + (a - ea) * C_, sizeof(float) * (eb - a) * C_);
          from = eb;
        } else if (a < ea && b > ea && b <= eb) {  // ... the band after it (bands taken from
          // the back of another thread's share come in descending order)
          std::memmove(e + (ea - a) * C_, e, sizeof(float) * (b - ea) * C_);
          to = ea;
        }
        if (to > from && stem_)
          stem_rows(x, p, from / W, to / W, e + (from - a) * C_);
        else if (to > from)
          expand(to - from, x + from * Cin_, p.expand, e + (from - a) * C_);
        ea = a;
        eb = b;
        for (int64_t r = r0; r < r1; ++r) {
          // Image n's rows from `first` on sit in e: its geometry starts there.
          const int64_t n = r / OH, first = std::max(lo, n * H) - n * H;
          DwNhwcGeom gn = dg;
          gn.H = H - first;
          gn.pt = pt + first;
          simd.depthwise_nhwc_row(e + ((n * H + first) * W - a) * C_, wdw_.data(), gn, p.dw,
                                  r % OH, nullptr, d + (r - r0) * OW * C_, zeros);
        }
        project(d, r0 * OW, (r1 - r0) * OW, p, y);
      }
    });
  }

  WindowAttrs attrs_;
  ConvEpilogue act_;  // the depthwise conv's activation
  int64_t M_ = 0, C_ = 0, KH_ = 1, KW_ = 1;
  PackedB packed_;          // the projection: [C, M]
  std::vector<float> wdw_;  // [C rounded up to 8 / 8][KH * KW][8]
  int64_t Cin_ = 0;         // the expansion's input channels (0: no expansion)
  PackedB packed_e_;        // the expansion: [Cin, C]
  GemmEpilogue expand_act_;
  WindowAttrs expand_attrs_{Node{}};
  int64_t KHe_ = 1, KWe_ = 1;
  bool expand_nchw_ = false, stem_ = false;  // stem_: a k x k expansion (direct kernel)
  ConvEpilogue stem_act_;
  std::vector<float> wstem_;  // [KHe * KWe * Cin][C rounded up to 8]
  PointwiseWeights pointwise_;  // the expansion's weights when its small-K kernel serves
  float clamp_lo_ = 0.f, clamp_hi_ = 0.f;
  int force_ = 0;  // RUNNX_BLOCK_EXPANSION: 1 banded, 2 whole
};

}  // namespace

void register_nhwc_conv_ops(OpRegistry& r) {
  r.add("NhwcConv", "com.runnx", 1, [](const KernelInfo& info) -> std::unique_ptr<Kernel> {
    return std::make_unique<NhwcConvKernel>(info);
  });
  r.add("NhwcDwProject", "com.runnx", 1, [](const KernelInfo& info) -> std::unique_ptr<Kernel> {
    return std::make_unique<NhwcDwProjectKernel>(info);
  });
}

}  // namespace runnx
