// Conv and FusedConv (domain com.runnx: y = act(conv(x, w) + b + z), what the conv passes
// produce). float32 picks an algorithm per node and input shape:
//   depthwise (group == C, 1-D/2-D)      -> the vectorised per-plane kernel (conv_simd)
//   3x3, stride 1, dilation 1, group 1   -> Winograd F(4x4, 3x3) when the image has enough tiles
//   group 1, const W, <= 64 output pixels, >= 16 out ch.
//                                        -> the GEMM transposed (pixels as rows, W^T packed once)
//   1x1, stride 1, no pads               -> GEMM straight on the NCHW input (no im2col)
//   anything else                        -> im2col + GEMM
// (Convolution chains holding a depthwise conv run channels-last instead: NhwcConv, conv_nhwc.cc.)
// with bias, activation and residual applied per output tile while it is in cache. The GEMM
// paths are tiled over (image, group, output rows x columns) so every thread works at batch 1.
// Other element types (float64) and 3-D depthwise take the plain im2col / direct loops below.
// RUNNX_CONV_ALGO=im2col|winograd|generic (read at session creation) forces a path for tests.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "kernels/cpu/conv_simd.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/winograd.h"
#include "ops/broadcast.h"
#include "ops/conv_util.h"
#include "ops/kernel.h"
#include "ops/op_util.h"

namespace runnx {
namespace {

// An im2col tile holds at most this many elements (4 MiB of floats): it stays in L2/L3 while
// the GEMM streams it, and big images do not need a col buffer the size of the whole image.
constexpr int64_t kColBudget = int64_t{1} << 20;
constexpr int64_t kParallelMacs = int64_t{1} << 17;
// GEMM output tiles of at most kTileRows channels x kTileFloats floats (256 KiB), at least
// kTileCols wide: the epilogue finds them in L2.
constexpr int64_t kTileCols = 256;
constexpr int64_t kTileRows = 256;
constexpr int64_t kTileFloats = int64_t{1} << 16;
// Group-1 convs on at most this many input channels (stems: 7x7/s2 on RGB) run direct.
constexpr int64_t kDirectMaxChannels = 4;
// Images of at most this many output pixels run the GEMM transposed (see run_gemm_transposed).
constexpr int64_t kSmallImagePixels = 64;
// Floats of transposed input rows gathered for one GEMM (several images at batch > 1).
constexpr int64_t kTransposedRowsBudget = int64_t{1} << 20;
// With enough images for every thread, each task runs its images start to end on one thread:
// about this many floats of gathered rows or of GEMM output per task (one image at least).
constexpr int64_t kTransposedTaskFloats = int64_t{1} << 18;
// The split GEMM path (run_gemm_split): each GEMM call's B (X's columns or the im2col block) is
// at most this many floats, so the GEMM packs it into the caller's L2 and the call's output
// columns stay there too; and an image is split over the threads only when each gets at least
// kSplitMinCols output columns (below that, the shared tiles of one parallel GEMM balance better).
constexpr int64_t kSliceFloats = int64_t{1} << 16;
constexpr int64_t kSplitMinCols = 256;

// Rows [r0, r1) of the output grid (a row = one (od, oh) pair, OW positions) of the col matrix
// for one group: col[q, (r - r0) * OW + ow], q = ((c * KD + kd) * KH + kh) * KW + kw.
template <typename T>
void im2col(const T* x, int64_t channels, const Geom3& g, int64_t r0, int64_t r1, T* col) {
  const int64_t OW = g.out[2], ld = (r1 - r0) * OW;
  int64_t q = 0;
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t kd = 0; kd < g.k[0]; ++kd)
      for (int64_t kh = 0; kh < g.k[1]; ++kh)
        for (int64_t kw = 0; kw < g.k[2]; ++kw, ++q) {
          T* dst = col + q * ld;
          const int64_t woff = kw * g.d[2] - g.pb[2];
          int64_t lo, hi;
          valid_range(g.in[2], OW, g.s[2], woff, lo, hi);
          for (int64_t r = r0; r < r1; ++r, dst += OW) {
            const int64_t id = (r / g.out[1]) * g.s[0] - g.pb[0] + kd * g.d[0];
            const int64_t ih = (r % g.out[1]) * g.s[1] - g.pb[1] + kh * g.d[1];
            if (id < 0 || id >= g.in[0] || ih < 0 || ih >= g.in[1]) {
              std::fill(dst, dst + OW, T(0));
              continue;
            }
            const T* src = x + ((c * g.in[0] + id) * g.in[1] + ih) * g.in[2] + woff;
            std::fill(dst, dst + lo, T(0));
            if (g.s[2] == 1) {
              std::copy(src + lo, src + hi, dst + lo);
            } else if constexpr (std::is_same_v<T, float>) {
              conv_simd().copy_strided(src + lo * g.s[2], g.s[2], hi - lo, dst + lo);
            } else {
              for (int64_t ow = lo; ow < hi; ++ow) dst[ow] = src[ow * g.s[2]];
            }
            std::fill(dst + hi, dst + OW, T(0));
          }
        }
}

// A 1x1 window with unit strides and no pads: X itself is the GEMM's B (no im2col).
bool is_pointwise(const Geom3& g) {
  return g.k_size() == 1 && g.s == std::array<int64_t, 3>{1, 1, 1} &&
         g.pb == std::array<int64_t, 3>{0, 0, 0} && g.pe == g.pb;
}

// Column-stride phases (2-D windows, column stride >= 2, column dilation 1, k > 1 columns):
// each input row is split once into its stride phases, zero-padded, so that every tap's part of
// an output row is one contiguous run of a phase (copy_strided per tap and output row was 12% of
// a 3x3/s2 conv at 1 thread; each input row feeds KW taps and up to two output rows).
bool phased_im2col(const Geom3& g) {
  const bool planar = g.k[0] == 1 && g.in[0] == 1 && g.pb[0] == 0 && g.pe[0] == 0;
  return planar && g.s[2] >= 2 && g.d[2] == 1 && g.k[2] > 1;
}

// Floats of phase scratch for `out_rows` output rows: the input rows they read, s[2] phases each.
int64_t phase_floats(const Geom3& g, int64_t out_rows) {
  const int64_t rows = (out_rows - 1) * g.s[1] + (g.k[1] - 1) * g.d[1] + 1;
  return rows * g.s[2] * (g.out[2] + (g.k[2] - 1) / g.s[2]);
}

// im2col of output rows [r0, r1) of one channel plane x (phased_im2col geometry) into col (KH*KW
// rows of (r1 - r0) * OW), through the phase scratch ph (phase_floats(g, r1 - r0)).
void im2col_phased(const float* x, const Geom3& g, int64_t r0, int64_t r1, float* col, float* ph) {
  const int64_t OW = g.out[2], KH = g.k[1], KW = g.k[2], sh = g.s[1], sw = g.s[2], dh = g.d[1];
  const int64_t H = g.in[1], W = g.in[2], PW = OW + (KW - 1) / sw, ld = (r1 - r0) * OW;
  const int64_t ih0 = r0 * sh - g.pb[1], rows = (r1 - r0 - 1) * sh + (KH - 1) * dh + 1;
  const ConvSimd& simd = conv_simd();
  // phase p of input row ih: ph[t] = x[ih, t * sw + p - pad_left], zero outside the row
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t ih = ih0 + i;
    if (ih < 0 || ih >= H) continue;
    for (int64_t p = 0; p < sw; ++p) {
      float* dst = ph + (i * sw + p) * PW;
      const int64_t off = p - g.pb[2];
      int64_t lo, hi;
      valid_range(W, PW, sw, off, lo, hi);
      std::fill(dst, dst + lo, 0.f);
      simd.copy_strided(x + ih * W + (off + lo * sw), sw, hi - lo, dst + lo);
      std::fill(dst + hi, dst + PW, 0.f);
    }
  }
  // tap (kh, kw) at output (oh, ow) reads column ow * sw + kw - pad_left: phase kw % sw, ow + kw / sw
  for (int64_t kh = 0; kh < KH; ++kh)
    for (int64_t kw = 0; kw < KW; ++kw) {
      float* dst = col + (kh * KW + kw) * ld;
      for (int64_t r = r0; r < r1; ++r, dst += OW) {
        const int64_t i = (r - r0) * sh + kh * dh, ih = ih0 + i;
        if (ih < 0 || ih >= H)
          std::fill(dst, dst + OW, 0.f);
        else
          std::memcpy(dst, ph + (i * sw + kw % sw) * PW + kw / sw, OW * sizeof(float));
      }
    }
}

// im2col of output rows [r0, r1) for channels [c0, c1) of one group's image xg (channel planes IP
// floats apart) into col (ks rows per channel, `cols` = (r1 - r0) * OW columns).
void im2col_channels(const float* xg, int64_t IP, const Geom3& g, int64_t c0, int64_t c1, int64_t r0,
                     int64_t r1, float* col, int64_t cols) {
  const int64_t ks = g.k_size();
  if (phased_im2col(g)) {
    float* ph = conv_scratch(1, phase_floats(g, r1 - r0));
    for (int64_t c = c0; c < c1; ++c) im2col_phased(xg + c * IP, g, r0, r1, col + c * ks * cols, ph);
    return;
  }
  for (int64_t c = c0; c < c1; ++c) im2col<float>(xg + c * IP, 1, g, r0, r1, col + c * ks * cols);
}

// Depthwise: output plane m reads only input plane m / mult. y += w * x over each kernel tap,
// with the valid output range per tap computed once so the inner loop has no bounds checks.
template <typename T>
void depthwise_plane(const T* x, const T* w, T bias, const Geom3& g, T* y) {
  const int64_t OW = g.out[2];
  std::fill(y, y + g.out_size(), bias);
  for (int64_t od = 0; od < g.out[0]; ++od)
    for (int64_t oh = 0; oh < g.out[1]; ++oh) {
      T* yr = y + (od * g.out[1] + oh) * OW;
      for (int64_t kd = 0; kd < g.k[0]; ++kd) {
        const int64_t id = od * g.s[0] - g.pb[0] + kd * g.d[0];
        if (id < 0 || id >= g.in[0]) continue;
        for (int64_t kh = 0; kh < g.k[1]; ++kh) {
          const int64_t ih = oh * g.s[1] - g.pb[1] + kh * g.d[1];
          if (ih < 0 || ih >= g.in[1]) continue;
          const T* xr = x + (id * g.in[1] + ih) * g.in[2];
          for (int64_t kw = 0; kw < g.k[2]; ++kw) {
            const T wv = w[(kd * g.k[1] + kh) * g.k[2] + kw];
            const int64_t off = kw * g.d[2] - g.pb[2];
            int64_t lo, hi;
            valid_range(g.in[2], OW, g.s[2], off, lo, hi);
            const T* xs = xr + off;
            if (g.s[2] == 1) {
              for (int64_t ow = lo; ow < hi; ++ow) yr[ow] += wv * xs[ow];
            } else {
              for (int64_t ow = lo; ow < hi; ++ow) yr[ow] += wv * xs[ow * g.s[2]];
            }
          }
        }
      }
    }
}

// dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols, in 8 x 8 blocks (both sides' lines
// stay in L1).
void transpose_block(int64_t rows, int64_t cols, const float* src, int64_t lds, float* dst, int64_t ldd) {
  for (int64_t r0 = 0; r0 < rows; r0 += 8)
    for (int64_t c0 = 0; c0 < cols; c0 += 8) {
      const int64_t r1 = std::min(rows, r0 + 8), c1 = std::min(cols, c0 + 8);
      for (int64_t c = c0; c < c1; ++c)
        for (int64_t r = r0; r < r1; ++r) dst[c * ldd + r] = src[r * lds + c];
    }
}

// The part of one input plane that a small image's windows read, gathered into a dense
// PH x PW plane: dst[r, c] = x[row0 + r * rs, col0 + c * cs], zero outside the input. With unit
// steps and row0/col0 the negative pads it is the zero-padded plane (im2row then needs no bounds
// checks); with the strides as steps it is a 1x1 strided conv's subsampled input.
void gather_plane(const float* x, int64_t H, int64_t W, int64_t row0, int64_t col0, int64_t rs,
                  int64_t cs, int64_t PH, int64_t PW, float* dst) {
  int64_t lo = 0, hi = PW;  // columns of dst inside the input
  while (lo < PW && col0 + lo * cs < 0) ++lo;
  while (hi > lo && col0 + (hi - 1) * cs >= W) --hi;
  for (int64_t r = 0; r < PH; ++r, dst += PW) {
    const int64_t ih = row0 + r * rs;
    if (ih < 0 || ih >= H) {
      std::fill(dst, dst + PW, 0.f);
      continue;
    }
    const float* src = x + ih * W + col0;
    std::fill(dst, dst + lo, 0.f);
    if (cs == 1)
      std::memcpy(dst + lo, src + lo, (hi - lo) * sizeof(float));
    else
      for (int64_t c = lo; c < hi; ++c) dst[c] = src[c * cs];
    std::fill(dst + hi, dst + PW, 0.f);
  }
}

// Pixels [p0, p1) of one image's transposed col matrix, from its planes zero-padded by
// gather_plane (C planes of PH x PW): row p holds the K = C * KH * KW taps of output pixel p in
// W's order, q = (c * KH + kh) * KW + kw. Rows are written front to back (one store stream: the
// buffer is larger than L2). A 3-tap kernel row is one 4-float copy whose extra float the next
// copy overwrites (the per-tap, bounds-checked loop was a fifth of ResNet-50's 3x3 convs at 7x7).
// The pixel's last kernel row is copied tap by tap: its extra float would land in the next
// pixel's row, which may be another thread's or past the buffer. (The extra float read stays
// inside the planes: the last plane's last row is never read with a 4-float copy.)
void im2row_padded(const float* xp, int64_t C, int64_t PH, int64_t PW, const Geom3& g, int64_t p0,
                   int64_t p1, float* rows) {
  const int64_t OW = g.out[2], KH = g.k[1], KW = g.k[2], dh = g.d[1], dw = g.d[2];
  const int64_t plane = PH * PW, K = C * KH * KW;
  const bool three = KW == 3 && dw == 1;
  for (int64_t p = p0; p < p1; ++p) {
    const float* base = xp + (p / OW) * g.s[1] * PW + (p % OW) * g.s[2];
    float* dst = rows + (p - p0) * K;
    for (int64_t c = 0; c < C; ++c, base += plane)
      for (int64_t kh = 0; kh < KH; ++kh, dst += KW) {
        const float* src = base + kh * dh * PW;
        if (three && (c + 1 < C || kh + 1 < KH)) {
          std::memcpy(dst, src, 4 * sizeof(float));
          continue;
        }
        for (int64_t kw = 0; kw < KW; ++kw) dst[kw] = src[kw * dw];
      }
  }
}

enum class ForceAlgo { kAuto, kIm2col, kWinograd, kGeneric };

ForceAlgo forced_algo() {
  const char* s = std::getenv("RUNNX_CONV_ALGO");
  if (!s) return ForceAlgo::kAuto;
  const std::string v = s;
  if (v == "im2col") return ForceAlgo::kIm2col;
  if (v == "winograd") return ForceAlgo::kWinograd;
  if (v == "generic") return ForceAlgo::kGeneric;
  return ForceAlgo::kAuto;
}

}  // namespace

// The GEMM's form of a conv epilogue: bias per output channel, which is per row of W * X (NCHW)
// or per column of X^T * W^T (channels-last, transposed small images).
GemmEpilogue conv_gemm_epilogue(const ConvEpilogue& e, bool bias_per_row) {
  using A = GemmEpilogue::Act;
  GemmEpilogue g;
  g.bias = e.bias;
  g.bias_per_row = bias_per_row;
  switch (e.act) {
    case ConvActivation::kNone: break;
    case ConvActivation::kRelu: g.act = A::kRelu; break;
    case ConvActivation::kClip: g.act = A::kClip, g.clip_lo = e.alpha, g.clip_hi = e.beta; break;
    case ConvActivation::kSigmoid: g.act = A::kSigmoid; break;
    case ConvActivation::kLeakyRelu: g.act = A::kLeakyRelu, g.alpha = e.alpha; break;
    case ConvActivation::kHardSwish: g.act = A::kHardSwish, g.alpha = e.alpha, g.shift = e.beta; break;
  }
  return g;
}

// FusedConv's activation attribute (and its parameters) as an epilogue.
ConvEpilogue parse_conv_activation(const Node& node) {
  ConvEpilogue e;
  const std::string act = node.get_string("activation", "");
  const std::vector<float> p = node.get_floats("activation_params");
  auto params = [&](size_t n) {
    RUNNX_CHECK(p.size() == n || p.empty(), kInvalidModel, node.label(), ": activation '", act,
                "' takes ", n, " activation_params, got ", p.size());
  };
  if (act.empty() || act == "Identity") {
    e.act = ConvActivation::kNone;
  } else if (act == "Relu") {
    e.act = ConvActivation::kRelu;
  } else if (act == "Clip") {
    params(2);
    e.act = ConvActivation::kClip;
    e.alpha = p.empty() ? -3.4028235e38f : p[0];
    e.beta = p.empty() ? 3.4028235e38f : p[1];
  } else if (act == "Sigmoid") {
    e.act = ConvActivation::kSigmoid;
  } else if (act == "LeakyRelu") {
    params(1);
    e.act = ConvActivation::kLeakyRelu;
    e.alpha = p.empty() ? 0.01f : p[0];
  } else if (act == "HardSwish") {
    e.act = ConvActivation::kHardSwish;
    e.alpha = 1.f / 6.f;
    e.beta = 0.5f;
  } else {
    fail(ErrorKind::kInvalidModel, node.label(), ": activation '", act,
         "' is not supported (Relu, Clip, Sigmoid, LeakyRelu, HardSwish)");
  }
  return e;
}

namespace {

class ConvKernel : public Kernel {
 public:
  ConvKernel(const KernelInfo& info, bool fused) : attrs_(info.node), fused_(fused) {
    group_ = info.node.get_int("group", 1);
    RUNNX_CHECK(group_ >= 1, kInvalidModel, info.node.label(), ": group must be >= 1, got ",
                group_);
    if (fused_) act_ = parse_conv_activation(info.node);
    const_w_ = info.constant_input(1) != nullptr;
    force_ = forced_algo();
    prepare_at_load(info);
  }

  // y may take over Z's buffer on the paths prepared at load that read each residual element
  // before the store to that element or copy it first: the GEMM's (gemm_f32_packed_a keeps an
  // overlapping residual apart), the transposed GEMM (epilogue on a copy) and direct. ResNet-50
  // b32 kept the bottleneck's output and Z (each 103 MB) live together.
  int inplace_input() const override {
    const bool ok = load_path_ && (*load_path_ == Path::kGemm || *load_path_ == Path::kTransposed ||
                                   *load_path_ == Path::kDirect);
    return fused_ && ok ? 3 : -1;
  }

  std::string describe() const override {
    if (!load_choice_) return "";  // chosen per input shape at run time
    switch (*load_choice_) {
      case Path::kGeneric: return "generic loops";
      case Path::kDepthwise: return "depthwise planes";
      case Path::kDirect: return "direct (few input channels), W reordered at load";
      case Path::kWinograd: return "Winograd F(4x4, 3x3), weights transformed on first use";
      case Path::kTransposed: return "GEMM transposed (pixels as rows), W^T packed at load";
      case Path::kGemm:
        return std::string(load_pointwise_ ? "1x1 GEMM on the NCHW input"
                           : load_phased_  ? "im2col (column-stride phases) + GEMM"
                                           : "im2col + GEMM") +
               " " + gemm_f32_isa() + ", W packed at load";
    }
    return "";
  }

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    const Tensor& w = ctx.required_input(1);
    const Tensor* b = ctx.input(2);
    const Tensor* z = fused_ ? ctx.input(3) : nullptr;
    RUNNX_CHECK(
        x.rank() >= 3 && w.rank() == x.rank(), kInvalidArgument, node.label(),
        ": X must be [N, C, spatial...] and W [M, C/group, kernel...] of the same rank, got ",
        shape_str(x.shape), " and ", shape_str(w.shape));
    RUNNX_CHECK(x.dtype == w.dtype && (!b || b->dtype == x.dtype), kInvalidArgument, node.label(),
                ": X, W and B must have one element type");
    const int64_t N = x.shape[0], C = x.shape[1], M = w.shape[0];
    RUNNX_CHECK(C == w.shape[1] * group_ && M % group_ == 0, kInvalidArgument, node.label(), ": X ",
                shape_str(x.shape), " and W ", shape_str(w.shape), " do not fit group=", group_);
    RUNNX_CHECK(!b || (b->rank() == 1 && b->shape[0] == M), kInvalidArgument, node.label(),
                ": B must have shape [", M, "], got ", shape_str(b ? b->shape : Shape{}));
    const std::vector<int64_t> in(x.shape.begin() + 2, x.shape.end());
    const std::vector<int64_t> k(w.shape.begin() + 2, w.shape.end());
    if (!attrs_.kernel.empty())
      RUNNX_CHECK(attrs_.kernel == k, kInvalidArgument, node.label(),
                  ": kernel_shape attribute does not match W ", shape_str(w.shape));
    const Geom3 g = window_geometry(node, attrs_, in, k);
    Shape out = {N, M};
    for (size_t i = 0; i < in.size(); ++i) out.push_back(g.out[3 - in.size() + i]);
    if (fused_) {
      RUNNX_CHECK(x.dtype == DType::kF32, kUnsupportedOp, node.label(),
                  ": FusedConv supports float32 only, got ", dtype_name(x.dtype));
      RUNNX_CHECK(!z || z->dtype == DType::kF32, kInvalidArgument, node.label(),
                  ": the residual input Z must be float32, got ", dtype_name(z->dtype));
      if (z && z->shape != out) return run_broadcast_residual(ctx, x, w, b, *z, g, out);
    }
    Tensor& y = ctx.allocate_output(0, x.dtype, out);
    if (y.numel() == 0) return;
    switch (x.dtype) {
      case DType::kF32: {
        ConvEpilogue e = act_;
        e.bias = b ? b->ptr<float>() : nullptr;
        e.residual = z ? z->ptr<float>() : nullptr;
        return run_f32(x, w, g, e, y, ctx.pool());
      }
      case DType::kF64:
        return run_generic<double>(x, w, b, g, y, ctx.pool());
      default:
        fail(ErrorKind::kUnsupportedOp, node.label(), ": element type ", dtype_name(x.dtype),
             " is not supported");
    }
  }

 private:
  enum class Path { kGeneric, kDepthwise, kDirect, kWinograd, kTransposed, kGemm };

  // The float32 algorithm for C input and M output channels at geometry g.
  Path choose_path(int64_t C, int64_t M, const Geom3& g) const {
    const int64_t G = group_, Cg = C / G;
    // 1-D or 2-D: one depth slice in and out (a padded depth would add output slices)
    const bool planar = g.k[0] == 1 && g.in[0] == 1 && g.pb[0] == 0 && g.pe[0] == 0;
    const bool unit = g.s == std::array<int64_t, 3>{1, 1, 1} && g.d == g.s;
    if (force_ == ForceAlgo::kGeneric) return Path::kGeneric;
    if (force_ != ForceAlgo::kIm2col && Cg == 1 && G > 1 && planar && g.k[1] <= 16 && g.k[2] <= 16)
      return Path::kDepthwise;
    if (force_ == ForceAlgo::kAuto && G == 1 && planar && const_w_ && C <= kDirectMaxChannels &&
        g.k_size() > 1 && C * g.k_size() <= DirectNchwGeom::kMaxTaps && M >= 8)
      return Path::kDirect;
    const bool wino_shape = G == 1 && planar && unit && g.k[1] == 3 && g.k[2] == 3 && const_w_;
    if (wino_shape && (force_ == ForceAlgo::kWinograd ||
                       (force_ == ForceAlgo::kAuto && winograd_pays(g.out[1], g.out[2]) && C >= 8 && M >= 8)))
      return Path::kWinograd;
    // With the shapes known at load the packed W^T replaces the original; else it is a second copy.
    if (force_ == ForceAlgo::kAuto && G == 1 && planar && const_w_ &&
        g.out_size() <= kSmallImagePixels && M >= 16)
      return Path::kTransposed;
    return Path::kGemm;
  }

  // The constant weights in the form `path` reads (each made once, whichever comes first: here
  // at load or on the first run, then on `pool`).
  void prepare_weights(Path path, const float* w, int64_t C, int64_t M, const Geom3& g,
                       ThreadPool* pool = nullptr) const {
    const int64_t G = group_, Mg = M / G, K = (C / G) * g.k_size();
    switch (path) {
      case Path::kWinograd:
        std::call_once(wino_once_, [&] { wino_ = std::make_unique<WinogradF43>(w, M, C, false, pool); });
        break;
      case Path::kDirect:
        std::call_once(direct_once_, [&] {
          // [M rounded up to 4 / 4][C * taps][4], zero past M: 4 channels' weights per tap.
          const int64_t T = C * g.k_size(), Mp = (M + 3) / 4 * 4;
          wdirect_.assign(static_cast<size_t>(Mp * T), 0.f);
          for (int64_t m = 0; m < M; ++m)
            for (int64_t t = 0; t < T; ++t) wdirect_[(m / 4 * T + t) * 4 + m % 4] = w[m * T + t];
        });
        break;
      case Path::kTransposed:
        std::call_once(wt_once_, [&] { wt_packed_ = pack_b_f32(K, M, w, K, true); });
        break;
      case Path::kGemm:
        std::call_once(packed_once_, [&] {
          for (int64_t gi = 0; gi < G; ++gi) packed_w_.push_back(pack_a_f32(Mg, K, w + gi * Mg * K, K));
        });
        break;
      default:
        break;
    }
  }

  // When X's channels and spatial dims are fixed at load (the batch may vary: no path depends on
  // it), the one path every run takes is known: a GEMM path's weights are packed now and the
  // original given back (ResNet-50 kept both copies, ~80 MB). Winograd's transform stays on first
  // use: it cost ResNet-50 65 ms of creation for 17 MB. Depthwise and forced paths read the original.
  void prepare_at_load(const KernelInfo& info) {
    const Tensor* w = info.constant_input(1);
    if (!w || w->dtype != DType::kF32 || w->rank() < 3 || force_ != ForceAlgo::kAuto || !info.input_dims ||
        !info.release_constant)
      return;
    const std::vector<int64_t> xd = info.input_dims(0);
    if (xd.size() != w->shape.size() || xd[1] != w->shape[1] * group_ || w->shape[0] % group_ != 0) return;
    for (size_t i = 1; i < xd.size(); ++i)
      if (xd[i] <= 0) return;
    Geom3 g;
    try {
      g = window_geometry(info.node, attrs_, {xd.begin() + 2, xd.end()}, {w->shape.begin() + 2, w->shape.end()});
    } catch (const Error&) {
      return;  // run() reports a bad geometry with the actual shapes
    }
    const Path path = choose_path(xd[1], w->shape[0], g);
    load_choice_ = path;
    load_pointwise_ = is_pointwise(g);
    load_phased_ = phased_im2col(g);
    if (path != Path::kTransposed && path != Path::kGemm && path != Path::kDirect) return;
    prepare_weights(path, w->ptr<float>(), xd[1], w->shape[0], g);
    load_path_ = path;
    info.release_constant(1);
  }

  void run_f32(const Tensor& x, const Tensor& w, const Geom3& g, const ConvEpilogue& e,
               Tensor& y, ThreadPool& pool) const {
    const int64_t C = x.shape[1], M = w.shape[0];
    const Path path = choose_path(C, M, g);
    // Shapes fixed at load cannot change, so this is a broken invariant, not a user error.
    RUNNX_CHECK(!load_path_ || *load_path_ == path, kRuntime,
                "convolution: X's shape at run time takes another path than the one prepared at load "
                "(its original weights were released); please report this model");
    if (const_w_) prepare_weights(path, w.ptr<float>(), C, M, g, &pool);
    switch (path) {
      case Path::kGeneric:
        run_generic<float>(x, w, nullptr, g, y, pool);
        return apply_epilogue(e, y, pool);
      case Path::kDepthwise:
        return run_depthwise(x, w, g, e, y, pool);
      case Path::kWinograd:
        return wino_->run(x.ptr<float>(), x.shape[0], g.in[1], g.in[2], g.pb[1], g.pb[2], g.out[1],
                          g.out[2], e, y.ptr<float>(), pool);
      case Path::kDirect:
        return run_direct(x, g, e, y, pool);
      case Path::kTransposed:
        return run_gemm_transposed(x, w, g, e, y, pool);
      case Path::kGemm:
        return run_gemm(x, w, g, e, y, pool);
    }
  }

  // Few input channels (a stem): direct from the image's stride phases, 4 channels x 24 pixels
  // per step (conv_direct_nchw_impl.h). im2col + GEMM spent a third of ResNet-50's 7x7/s2 stem
  // gathering the 147-tap columns and packing them again for the GEMM.
  void run_direct(const Tensor& xt, const Geom3& g, const ConvEpilogue& e, Tensor& yt,
                  ThreadPool& pool) const {
    const int64_t N = xt.shape[0], C = xt.shape[1], M = yt.shape[1];
    const DirectNchwGeom dg{C,      g.in[1], g.in[2], M,      g.out[1], g.out[2], g.k[1],
                            g.k[2], g.s[1],  g.s[2],  g.d[1], g.d[2],   g.pb[1],  g.pb[2]};
    const int64_t IP = g.in_size(), P = g.out_size(), rows = C * dg.H;
    const float* x = xt.ptr<float>();
    float* y = yt.ptr<float>();
    const ConvSimd& simd = conv_simd();
    float* ph = conv_scratch(3, dg.phases_floats());
    // Tasks of one output row and a range of 4-channel blocks: few rows (1-D signals) split
    // the channels too, so every thread has work.
    const int64_t blocks = (M + 3) / 4, threads = pool.num_threads();
    const int64_t parts = std::clamp<int64_t>((4 * threads + dg.OH - 1) / dg.OH, 1, blocks);
    const int64_t task_macs = std::max<int64_t>(1, dg.OW * M * C * g.k_size() / parts);
    for (int64_t n = 0; n < N; ++n) {
      pool.parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, dg.W)),
                        [&](int64_t q0, int64_t q1) { simd.direct_nchw_phases(x + n * C * IP, dg, q0, q1, ph); });
      const float* res = e.residual ? e.residual + n * M * P : nullptr;
      pool.parallel_for(dg.OH * parts, std::max<int64_t>(1, kParallelMacs / task_macs), [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t part = t % parts, m0 = part * blocks / parts * 4;
          const int64_t m1 = std::min(M, (part + 1) * blocks / parts * 4);
          simd.direct_nchw_row(ph, wdirect_.data(), dg, e, t / parts, m0, m1, res, y + n * M * P);
        }
      });
    }
  }

  // Small images (ResNet's 7x7 stage): y^T[P, M] = col^T[P, K] * W^T[K, M] with W^T packed once.
  // Straight, the P = 49 pixels are the GEMM's columns and fill four 16-wide panels 77%; as rows
  // they fill the 6-row tiles 91%, the channels fill whole panels, and at batch > 1 the images
  // stack into one GEMM. col^T is gathered from zero-padded planes (im2row_padded), and the
  // gathers and the transposes in and out are split over the pool by pixels / channels: they are
  // a few % of the multiply-adds, but ran on one thread at batch 1. 3x3 kernels take this path too (ResNet-50's 3x3 convs at 7x7 output:
  // 64 -> 78 GFLOP/s at 1 thread); with the weights packed at load the original is released.
  void run_gemm_transposed(const Tensor& xt, const Tensor& wt, const Geom3& g,
                           const ConvEpilogue& e, Tensor& yt, ThreadPool& pool) const {
    const int64_t N = xt.shape[0], C = xt.shape[1], M = wt.shape[0];
    const int64_t ks = g.k_size(), K = C * ks, P = g.out_size(), IP = g.in_size();
    // 1x1 (strided or padded: the input subsampled first) transposes channel blocks; larger
    // kernels gather rows of taps from zero-padded planes.
    const bool one_tap = ks == 1;
    const bool pointwise = is_pointwise(g);
    // At batch >= 2 per thread the pool runs whole tasks of images, each on one thread: the
    // gathered rows, the GEMM's output and the transpose back stay in that core's L2 (ResNet-50's
    // 7x7 stage at batch 32: the three phases, each split over both threads, streamed 4-13 MB
    // buffers through L3). Inside a task the pool's calls run inline (the GEMM gets no pool); had
    // the outer call run inline (another caller drives the workers) they would use the pool.
    const int64_t threads = pool.num_threads();
    const bool per_thread = threads > 1 && N >= 2 * threads && N * M * P * K >= kParallelMacs;
    const int64_t per_group =
        per_thread ? std::clamp<int64_t>(kTransposedTaskFloats / (P * std::max(K, M)), 1, N / (2 * threads))
                   : std::clamp<int64_t>(kTransposedRowsBudget / (P * K), 1, N);
    // Planes gathered first (all but pointwise): the padded input (im2row) or the subsample (1x1).
    const int64_t PH = one_tap ? g.out[1] : (g.out[1] - 1) * g.s[1] + (g.k[1] - 1) * g.d[1] + 1;
    const int64_t PW = one_tap ? g.out[2] : (g.out[2] - 1) * g.s[2] + (g.k[2] - 1) * g.d[2] + 1;
    const int64_t GP = PH * PW;
    // Gather tasks per image: channel blocks (1x1) or pixel blocks (im2row), ~16K floats.
    const int64_t in_step = one_tap ? 64 : std::max<int64_t>(1, 16384 / K);
    const int64_t in_parts = one_tap ? (C + in_step - 1) / in_step : (P + in_step - 1) / in_step;
    constexpr int64_t kOutStep = 64;  // output channels per transpose-back task
    const int64_t out_parts = (M + kOutStep - 1) / kOutStep;
    const float* x = xt.ptr<float>();
    float* y = yt.ptr<float>();
    const bool res_in_y = e.residual && e.residual < y + N * M * P && y < e.residual + N * M * P;
    const ConvSimd& simd = conv_simd();
    // Images [n0, n0 + nn) through the three phases (gather, GEMM, transpose back).
    auto group = [&](int64_t n0) {
      const int64_t nn = std::min(per_group, N - n0);
      float* at = conv_scratch(0, per_group * P * K);
      float* ct = conv_scratch(1, per_group * P * M);
      float* xp = pointwise ? nullptr : conv_scratch(3, per_group * C * GP);
      if (!pointwise)
        pool.parallel_for(nn * C, std::max<int64_t>(1, 16384 / std::max(GP, IP)), [&](int64_t q0, int64_t q1) {
          for (int64_t q = q0; q < q1; ++q)
            gather_plane(x + (n0 * C + q) * IP, g.in[1], g.in[2], -g.pb[1], -g.pb[2],
                         one_tap ? g.s[1] : 1, one_tap ? g.s[2] : 1, PH, PW, xp + q * GP);
        });
      pool.parallel_for(nn * in_parts, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t i = t / in_parts, j0 = (t % in_parts) * in_step;
          float* ai = at + i * P * K;
          if (one_tap) {
            const float* xi = pointwise ? x + (n0 + i) * C * P : xp + i * C * P;
            transpose_block(std::min(C, j0 + in_step) - j0, P, xi + j0 * P, P, ai + j0, K);
          } else {
            im2row_padded(xp + i * C * GP, C, PH, PW, g, j0, std::min(P, j0 + in_step), ai + j0 * K);
          }
        }
      });
      gemm_f32_packed(nn * P, at, K, wt_packed_, ct, M, 0.f, GemmEpilogue{}, per_thread ? nullptr : &pool);
      pool.parallel_for(nn * out_parts, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t i = t / out_parts, m0 = (t % out_parts) * kOutStep;
          const int64_t m1 = std::min(M, m0 + kOutStep), n = n0 + i;
          const float* ci = ct + i * P * M;
          float* yn = y + n * M * P;
          const float* res = e.residual ? e.residual + (n * M + m0) * P : nullptr;
          // y may hold Z itself (inplace_input): the epilogue then runs on a copy before the store.
          float* dst = res_in_y ? conv_scratch(2, (m1 - m0) * P) : yn + m0 * P;
          transpose_block(P, m1 - m0, ci + m0, M, dst, P);
          if (!e.is_identity()) simd.epilogue_rows(e, m0, m1 - m0, P, dst, P, res, P);
          if (res_in_y) std::copy(dst, dst + (m1 - m0) * P, yn + m0 * P);
        }
      });
    };
    const int64_t groups = (N + per_group - 1) / per_group;
    if (per_thread)
      pool.parallel_for(groups, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) group(t * per_group);
      });
    else
      for (int64_t t = 0; t < groups; ++t) group(t * per_group);
  }

  // Packed W, every thread on its own output columns: the (image, group) column ranges are cut
  // into slices of about kSliceFloats floats of B (whole output rows under im2col, 16-column
  // panels pointwise), dealt out as contiguous runs to at most 4 tasks per thread, each slice run
  // on one thread: im2col (if any), the GEMM's packing of B and the tile stores stay in that
  // core's L2, no thread reads panels another one packed, and each thread gets the same number
  // of columns (one parallel GEMM over 3136 columns made 7 tiles for 2 threads).
  void run_gemm_split(const Tensor& xt, const Geom3& g, const ConvEpilogue& e, Tensor& yt,
                      ThreadPool& pool) const {
    const int64_t N = xt.shape[0], C = xt.shape[1], M = yt.shape[1], G = group_;
    const int64_t Cg = C / G, Mg = M / G, ks = g.k_size(), K = Cg * ks;
    const int64_t P = g.out_size(), IP = g.in_size(), OW = g.out[2];
    const bool pointwise = is_pointwise(g);
    const float* x = xt.ptr<float>();
    float* y = yt.ptr<float>();
    // Slices of about `step` units: output rows (im2col) or 16-column panels (pointwise), cut
    // evenly; their count a multiple of the threads when an image is split over them.
    const int64_t units = pointwise ? (P + 15) / 16 : g.out[0] * g.out[1];
    const int64_t unit_cols = pointwise ? 16 : OW;
    // At least as many floats of B as of W per slice: W (M x K, from L2 or L3) is read once per slice.
    const int64_t slice_floats = std::max(kSliceFloats, Mg * K);
    const int64_t step = std::clamp<int64_t>(slice_floats / std::max<int64_t>(1, K * unit_cols), 1, units);
    const int64_t images = N * G;
    const int64_t threads = N * M * P * K >= kParallelMacs ? pool.num_threads() : 1;
    const bool split = images < 2 * threads;
    int64_t slices = (units + step - 1) / step;
    if (split) slices = std::min(units, (slices + threads - 1) / threads * threads);
    // Tasks: whole images when there are enough, else runs of slices, a multiple of the threads.
    int64_t parts = 1;
    if (split) {
      parts = std::min<int64_t>(slices, 4 * threads);
      if (parts >= threads) parts -= parts % threads;
    }
    GemmEpilogue ge0 = conv_gemm_epilogue(e, true);
    ge0.ldr = P;
    auto slice = [&](int64_t n, int64_t gi, int64_t u0, int64_t u1) {
      const int64_t c0 = u0 * unit_cols, c1 = std::min(P, u1 * unit_cols), cols = c1 - c0;
      const float* xg = x + (n * C + gi * Cg) * IP;
      const int64_t yoff = (n * M + gi * Mg) * P + c0;
      const float* B = xg + c0;
      int64_t ldb = P;
      if (!pointwise) {
        float* col = conv_scratch(0, K * cols);
        im2col_channels(xg, IP, g, 0, Cg, u0, u1, col, cols);
        B = col;
        ldb = cols;
      }
      GemmEpilogue ge = ge0;
      if (ge.bias) ge.bias += gi * Mg;
      ge.residual = e.residual ? e.residual + yoff : nullptr;
      gemm_f32_packed_a(packed_w_[gi], cols, B, ldb, y + yoff, P, 0.f, ge, nullptr);
    };
    pool.parallel_for(images * parts, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t img = t / parts, part = t % parts;
        const int64_t s0 = part * slices / parts, s1 = (part + 1) * slices / parts;
        for (int64_t s = s0; s < s1; ++s)
          slice(img / G, img % G, s * units / slices, (s + 1) * units / slices);
      }
    });
  }

  // Pointwise / im2col + GEMM, tiled, epilogue per tile.
  void run_gemm(const Tensor& xt, const Tensor& wt, const Geom3& g, const ConvEpilogue& e,
                Tensor& yt, ThreadPool& pool) const {
    const int64_t N = xt.shape[0], C = xt.shape[1], M = wt.shape[0], G = group_;
    const int64_t Cg = C / G, Mg = M / G, ks = g.k_size(), K = Cg * ks;
    const int64_t P = g.out_size(), IP = g.in_size();
    const float* x = xt.ptr<float>();
    const float* w = wt.ptr<float>();
    float* y = yt.ptr<float>();
    const bool pointwise = is_pointwise(g);
    const int64_t rows = g.out[0] * g.out[1], OW = g.out[2];
    const int64_t chunk =
        pointwise ? rows : std::clamp<int64_t>(kColBudget / std::max<int64_t>(1, K * OW), 1, rows);
    const int64_t threads = pool.num_threads();
    const bool big = N * M * P * K >= kParallelMacs;
    const bool per_image = !big || threads == 1 || N * G >= 2 * threads;
    const ConvSimd& simd = conv_simd();
    const std::vector<PackedA>& packed = packed_w_;  // prepared by run_f32 for constant W
    if (!packed.empty() && (per_image || P >= kSplitMinCols * threads))
      return run_gemm_split(xt, g, e, yt, pool);

    // Output rows [r0, r1) of image n, group gi; `par` spreads im2col and the tiles over the pool.
    auto chunk_fn = [&](int64_t n, int64_t gi, int64_t r0, int64_t r1, bool par) {
      const int64_t cols = (r1 - r0) * OW;
      const float* xg = x + (n * C + gi * Cg) * IP;
      const int64_t yoff = (n * M + gi * Mg) * P + r0 * OW;
      float* yg = y + yoff;
      const float* rg = e.residual ? e.residual + yoff : nullptr;
      const float* B = xg + r0 * OW;
      int64_t ldb = P;
      if (!pointwise) {
        float* col = conv_scratch(0, K * cols);
        auto fill = [&](int64_t c0, int64_t c1) { im2col_channels(xg, IP, g, c0, c1, r0, r1, col, cols); };
        if (par)
          pool.parallel_for(Cg, std::max<int64_t>(1, 16384 / (ks * cols) + 1), fill);
        else
          fill(0, Cg);
        B = col;
        ldb = cols;
      }
      if (!packed.empty()) {
        // W packed at first use: one product over all Mg rows, so B is packed once per chunk,
        // and bias/residual/activation are applied in the GEMM's registers.
        GemmEpilogue ge = conv_gemm_epilogue(e, true);
        if (ge.bias) ge.bias += gi * Mg;
        ge.residual = rg;
        ge.ldr = P;
        gemm_f32_packed_a(packed[gi], cols, B, ldb, yg, P, 0.f, ge, par ? &pool : nullptr);
        return;
      }
      // Tiles of about kTileFloats: wide when there are few output channels (a GEMM call has a
      // fixed cost), but enough of them for every thread.
      int64_t mt_rows = std::min(Mg, kTileRows);
      int64_t tile_cols = std::clamp<int64_t>((kTileFloats / mt_rows + 15) / 16 * 16, kTileCols,
                                              16 * kTileCols);
      if (par)
        tile_cols = std::min(
            tile_cols, std::max<int64_t>(kTileCols, (cols / (2 * threads) + 15) / 16 * 16));
      const int64_t ct = (cols + tile_cols - 1) / tile_cols;
      if (par) {
        const int64_t want_m = std::max<int64_t>(1, (4 * threads + ct - 1) / ct);
        mt_rows = std::min(mt_rows, std::max<int64_t>(24, ((Mg + want_m - 1) / want_m + 7) / 8 * 8));
      }
      const int64_t mt = (Mg + mt_rows - 1) / mt_rows;
      auto tiles = [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t m0 = (t / ct) * mt_rows, m1 = std::min(Mg, m0 + mt_rows);
          const int64_t c0 = (t % ct) * tile_cols, c1 = std::min(cols, c0 + tile_cols);
          float* yt_ = yg + m0 * P + c0;
          gemm_f32(m1 - m0, c1 - c0, K, w + (gi * Mg + m0) * K, K, B + c0, ldb, yt_, P, 0.f,
                   nullptr);
          if (!e.is_identity())
            simd.epilogue_rows(e, gi * Mg + m0, m1 - m0, c1 - c0, yt_, P,
                               rg ? rg + m0 * P + c0 : nullptr, P);
        }
      };
      if (par)
        pool.parallel_for(mt * ct, 1, tiles);
      else
        tiles(0, mt * ct);
    };
    auto image = [&](int64_t n, int64_t gi, bool par) {
      for (int64_t r0 = 0; r0 < rows; r0 += chunk) chunk_fn(n, gi, r0, std::min(rows, r0 + chunk), par);
    };
    if (per_image && big && threads > 1) {
      pool.parallel_for(N * G, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) image(t / G, t % G, false);
      });
    } else {
      for (int64_t t = 0; t < N * G; ++t) image(t / G, t % G, big && threads > 1);
    }
  }

  void run_depthwise(const Tensor& xt, const Tensor& wt, const Geom3& g, const ConvEpilogue& e,
                     Tensor& yt, ThreadPool& pool) const {
    const int64_t N = xt.shape[0], C = xt.shape[1], M = wt.shape[0], mult = M / C;
    const int64_t P = g.out_size(), IP = g.in_size(), ks = g.k_size();
    const DepthwiseGeom dg{g.in[1], g.in[2], g.out[1], g.out[2], g.k[1], g.k[2], g.s[1], g.s[2],
                           g.d[1],  g.d[2],  g.pb[1],  g.pb[2]};
    const float* x = xt.ptr<float>();
    const float* w = wt.ptr<float>();
    float* y = yt.ptr<float>();
    const ConvSimd& simd = conv_simd();
    pool.parallel_for(N * M, std::max<int64_t>(1, kParallelMacs / std::max<int64_t>(1, P * ks)),
                      [&](int64_t p0, int64_t p1) {
                        float* scratch = conv_scratch(2, dg.scratch_floats());
                        for (int64_t p = p0; p < p1; ++p) {
                          const int64_t n = p / M, m = p % M;
                          simd.depthwise_plane(x + (n * C + m / mult) * IP, w + m * ks, dg, e, m,
                                               e.residual ? e.residual + p * P : nullptr,
                                               y + p * P, scratch);
                        }
                      });
  }

  // Z of another shape than the conv's output (the Add it came from broadcast): conv + bias
  // into a temporary, then act(conv + z) with numpy broadcasting into the output.
  void run_broadcast_residual(KernelContext& ctx, const Tensor& x, const Tensor& w,
                              const Tensor* b, const Tensor& z, const Geom3& g,
                              const Shape& conv_shape) const {
    const Shape out = broadcast_shapes({&conv_shape, &z.shape}, ctx.node());
    Tensor conv = Tensor::empty(DType::kF32, conv_shape);
    ConvEpilogue e;
    e.bias = b ? b->ptr<float>() : nullptr;
    run_f32(x, w, g, e, conv, ctx.pool());
    Tensor& y = ctx.allocate_output(0, DType::kF32, out);
    if (y.numel() == 0) return;
    BroadcastLoop<2> loop({&conv_shape, &z.shape}, out);
    const float* c = conv.ptr<float>();
    const float* zp = z.ptr<float>();
    float* yp = y.ptr<float>();
    const int64_t s0 = loop.inner_stride(0), s1 = loop.inner_stride(1);
    loop.run(ctx.pool(), [&](int64_t o, const std::array<int64_t, 2>& off, int64_t n) {
      for (int64_t i = 0; i < n; ++i) yp[o + i] = c[off[0] + i * s0] + zp[off[1] + i * s1];
    });
    ConvEpilogue act = act_;
    const int64_t rows = out[0], cols = y.numel() / std::max<int64_t>(1, rows);
    if (!act.is_identity())
      conv_simd().epilogue_rows(act, 0, rows, cols, yp, cols, nullptr, 0);
  }

  // The whole output through the epilogue (the generic path computes the plain conv first).
  static void apply_epilogue(const ConvEpilogue& e, Tensor& y, ThreadPool& pool) {
    if (e.is_identity()) return;
    const int64_t N = y.shape[0], M = y.shape[1], P = y.numel() / std::max<int64_t>(1, N * M);
    const ConvSimd& simd = conv_simd();
    pool.parallel_for(N, 1, [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n)
        simd.epilogue_rows(e, 0, M, P, y.ptr<float>() + n * M * P, P,
                           e.residual ? e.residual + n * M * P : nullptr, P);
    });
  }

  // The plain path for any element type: per image, group and tile of output rows.
  template <typename T>
  void run_generic(const Tensor& xt, const Tensor& wt, const Tensor* bt, const Geom3& g,
                   Tensor& yt, ThreadPool& pool) const {
    const int64_t N = xt.shape[0], C = xt.shape[1], M = wt.shape[0], G = group_;
    const int64_t Cg = C / G, Mg = M / G, K = Cg * g.k_size(), P = g.out_size(), IP = g.in_size();
    const T* x = xt.ptr<T>();
    const T* w = wt.ptr<T>();
    const T* bias = bt ? bt->ptr<T>() : nullptr;
    T* y = yt.ptr<T>();
    if (Cg == 1 && G > 1) {
      const int64_t mult = Mg;
      const int64_t work = P * g.k_size();
      pool.parallel_for(N * M, std::max<int64_t>(1, kParallelMacs / std::max<int64_t>(1, work)),
                        [&](int64_t p0, int64_t p1) {
                          for (int64_t p = p0; p < p1; ++p) {
                            const int64_t n = p / M, m = p % M;
                            depthwise_plane<T>(x + (n * C + m / mult) * IP, w + m * g.k_size(),
                                               bias ? bias[m] : T(0), g, y + p * P);
                          }
                        });
      return;
    }
    // A 1x1 kernel with unit strides and no padding reads X as the col matrix itself.
    const bool pointwise = is_pointwise(g);
    const int64_t rows = g.out[0] * g.out[1], OW = g.out[2];
    int64_t tile =
        pointwise ? rows : std::clamp<int64_t>(kColBudget / std::max<int64_t>(1, K * OW), 1, rows);
    // Enough tiles for every thread when images x groups alone are too few.
    const int64_t threads = pool.num_threads();
    const bool big = N * M * P * K >= kParallelMacs;
    if (big && N * G < threads)
      tile = std::min(tile, std::max<int64_t>(1, (rows * N * G + threads - 1) / threads));
    const int64_t tiles = (rows + tile - 1) / tile, tasks = N * G * tiles;
    const bool outer = big && tasks >= threads;  // parallel over tasks, serial GEMMs inside
    auto body = [&](int64_t t0, int64_t t1) {
      std::vector<T> col;
      if (!pointwise) col.resize(static_cast<size_t>(K * std::min(tile, rows) * OW));
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t n = t / (G * tiles), gi = (t / tiles) % G, r0 = (t % tiles) * tile;
        const int64_t r1 = std::min(rows, r0 + tile), cols = (r1 - r0) * OW;
        const T* xg = x + (n * C + gi * Cg) * IP;
        T* yg = y + (n * M + gi * Mg) * P + r0 * OW;
        const T* B = xg + r0 * OW;
        int64_t ldb = P;
        if (!pointwise) {
          im2col<T>(xg, Cg, g, r0, r1, col.data());
          B = col.data();
          ldb = cols;
        }
        if (bias)
          for (int64_t m = 0; m < Mg; ++m)
            std::fill(yg + m * P, yg + m * P + cols, bias[gi * Mg + m]);
        gemm<T>(Mg, cols, K, w + gi * Mg * K, K, B, ldb, yg, P, bias ? T(1) : T(0),
                outer ? nullptr : &pool);
      }
    };
    if (outer)
      pool.parallel_for(tasks, 1, body);
    else
      body(0, tasks);
  }

  WindowAttrs attrs_;
  int64_t group_ = 1;
  bool fused_ = false, const_w_ = false;
  ConvEpilogue act_;  // FusedConv's activation (bias and residual are bound per run)
  ForceAlgo force_ = ForceAlgo::kAuto;
  // Constant weights prepared per path (prepare_weights), at load when the path is known then.
  mutable std::once_flag wino_once_;  // Winograd's transformed weights
  mutable std::unique_ptr<WinogradF43> wino_;
  mutable std::once_flag direct_once_;  // the direct path's weights [M / 4][taps][4]
  mutable std::vector<float> wdirect_;
  mutable std::once_flag wt_once_;  // W^T packed for run_gemm_transposed
  mutable PackedB wt_packed_;
  mutable std::once_flag packed_once_;  // W packed per group for run_gemm
  mutable std::vector<PackedA> packed_w_;
  std::optional<Path> load_path_;  // set when the weights were prepared at load and released
  std::optional<Path> load_choice_;  // the path X's shape at load takes (for describe)
  bool load_pointwise_ = false, load_phased_ = false;
};

}  // namespace

void register_conv_transpose_ops(OpRegistry& r);  // ops/conv_transpose.cc
void register_nhwc_conv_ops(OpRegistry& r);       // ops/conv_nhwc.cc

void register_conv_ops(OpRegistry& r) {
  r.add("Conv", "", 7, [](const KernelInfo& info) -> std::unique_ptr<Kernel> {
    return std::make_unique<ConvKernel>(info, false);
  });
  // y = act(Conv(x, w) + b + z): made by the conv fusion passes (inputs X, W, B?, Z?).
  r.add("FusedConv", "com.runnx", 1, [](const KernelInfo& info) -> std::unique_ptr<Kernel> {
    return std::make_unique<ConvKernel>(info, true);
  });
  register_conv_transpose_ops(r);
  register_nhwc_conv_ops(r);
}

}  // namespace runnx
