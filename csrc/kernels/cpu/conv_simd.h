// The vectorised inner pieces of the convolution algorithms (epilogue, depthwise planes, Winograd
// transforms). One source, conv_simd_impl.h, is compiled twice: for baseline x86-64
// (conv_simd.cc) and with -mavx2 -mfma (avx2/conv_simd_avx2.cc); conv_simd() picks one by cpuid
// (RUNNX_DISABLE_AVX2=1 forces the portable copy).
#pragma once
#include <cstdint>

#include "kernels/cpu/conv_epilogue.h"

namespace runnx {

// 2-D depthwise geometry of one plane (one input channel -> one output channel).
struct DepthwiseGeom {
  int64_t H, W, OH, OW;
  int64_t kh, kw, sh, sw, dh, dw;
  int64_t pt, pl;  // pads at the top / left (bottom and right follow from OH, OW)
  // The padded plane is split into sh x sw stride phases of phase_h() x phase_w().
  int64_t phase_h() const { return OH + ((kh - 1) * dh) / sh; }
  int64_t phase_w() const { return OW + ((kw - 1) * dw) / sw; }
  // 3x3, dilation 1, stride 2 or stride 1 with rows < 40: the row kernel (dwconv_3x3_impl.h)
  // with padded rows of dw3x3_row() floats (whole 8-wide output chunks and the loads past them).
  // Wide stride-1 planes keep the flat loop: bench/conv.py (1 thread, CPU time) gave it 28-31
  // GFLOP/s at 56x56 and 112x112 in every build, the row kernel 24-33 from build to build; the
  // row kernel wins clearly at 14x14 (16-20 vs 11) and 7x7 (10 vs 5), ties at 28x28.
  bool is_3x3() const {
    return kh == 3 && kw == 3 && dh == 1 && dw == 1 && sh == sw &&
           (sh == 2 || (sh == 1 && OW < 40));
  }
  int64_t dw3x3_row() const { return sw == 1 ? 8 * ((OW + 7) / 8) + 8 : 16 * ((OW + 7) / 8) + 8; }
  // Floats of scratch depthwise_plane needs: the padded 3x3 plane, or the phases and one
  // accumulator plane.
  int64_t scratch_floats() const {
    if (is_3x3()) return ((OH - 1) * sh + 3) * dw3x3_row();
    return (sh * sw + 1) * phase_h() * phase_w();
  }
};

// Winograd F(4x4, 3x3) on one image: tiles of 4x4 outputs read 6x6 inputs, 36 = 6x6 points.
struct WinogradGeom {
  int64_t C, M, OH, OW;
  int64_t th, tw;  // tile rows / columns: ceil(OH / 4), ceil(OW / 4)
  int64_t tiles() const { return th * tw; }
  // Floats between channels in V and Mo ([xi][channel][tile]): the tiles and at least 8 more, so
  // a group of 8 tiles that is only partly in the row (tw = 7, 14) is stored and loaded whole.
  int64_t tile_stride() const { return (tiles() + 15) / 8 * 8; }
  int64_t pad_h() const { return 4 * th + 2; }  // the zero-padded input plane copy
  int64_t pad_w() const { return 32 * ((tw + 7) / 8) + 2; }  // whole groups of 8 tiles
};

// Depthwise (channel multiplier 1) on one channels-last image [H, W, C]: kernel kh x kw (kh <= 16).
struct DwNhwcGeom {
  int64_t H, W, C, OH, OW;
  int64_t kh, kw, sh, sw, dh, dw;
  int64_t pt, pl;  // pads at the top / left
  // For tensors far larger than the caches (they live in DRAM): prefetch the input rows the next
  // output row adds, and store y with non-temporal writes (skips reading each line before writing
  // it; honoured where C % 8 == 0 and y is 32-byte aligned).
  bool prefetch_rows = false, stream_out = false;
  int64_t padded_c() const { return (C + 7) / 8 * 8; }  // weights: [padded_c / 8][kh * kw][8]
};

// Direct group-1 conv of few input channels (a stem) to a channels-last output row: the input
// read through element strides (NCHW or NHWC), weights [(kh * kw_ + kw) * C + c][M rounded up
// to 8] (zero past M).
struct DirectNhwcGeom {
  static constexpr int64_t kMaxTaps = 256;  // C * kh * kw
  int64_t H, W, C, M, OW;
  int64_t kh, kw, sh, sw, dh, dw;
  int64_t pt, pl;
  int64_t xs_c, xs_h, xs_w;  // element strides of the input image
};

// Direct group-1 conv of few input channels to NCHW planes (conv_direct_nchw_impl.h): the image's
// rows split into stride phases of phase_w() floats ([C][H][sw] rows, then one zero row), weights
// [M rounded up to 4 / 4][C * kh * kw][4] (zero past M).
struct DirectNchwGeom {
  static constexpr int64_t kMaxTaps = 256;  // C * kh * kw
  int64_t C, H, W, M, OH, OW;
  int64_t kh, kw, sh, sw, dh, dw;
  int64_t pt, pl;
  // Whole 16-float vectors of output columns (the AVX-512 row reads them) plus the taps' reach.
  int64_t phase_w() const { return (OW + 15) / 16 * 16 + ((kw - 1) * dw) / sw; }
  int64_t phases_floats() const { return (C * H * sw + 1) * phase_w(); }
};

// One plane of a 1-D/2-D float MaxPool (max_pool_impl.h); pads at the top / left, the bottom and
// right follow from OH, OW (ceil_mode windows past the end read lowest()).
struct MaxPoolGeom {
  int64_t H, W, OH, OW;
  int64_t kh, kw, sh, sw, dh, dw;
  int64_t pt, pl;
  int64_t out_w_padded() const { return (OW + 7) / 8 * 8; }
  int64_t phase_w() const { return out_w_padded() + ((kw - 1) * dw) / sw; }  // floats read per phase
  int64_t phase_stride() const { return (phase_w() + 7) / 8 * 8; }
  int64_t scratch_floats() const { return out_w_padded() + 2 * sw * phase_stride(); }
};

struct ConvSimd {
  // y[r, 0:cols] = act(y + bias[m0 + r] + res[r, 0:cols]) for rows r of a tile (channels m0...);
  // res (may be null) is the residual at the tile's position, ldr floats per row.
  void (*epilogue_rows)(const ConvEpilogue& e, int64_t m0, int64_t rows, int64_t cols, float* y,
                        int64_t ldy, const float* res, int64_t ldr);
  // One output plane: y = epilogue(conv(x, w)), bias/act from e for channel m, res the residual
  // plane or null. scratch holds g.scratch_floats() floats.
  void (*depthwise_plane)(const float* x, const float* w, const DepthwiseGeom& g,
                          const ConvEpilogue& e, int64_t m, const float* res, float* y,
                          float* scratch);
  // V[xi][c][t] (xi < 36, t < tiles, channels tile_stride() apart) for channel c from its
  // zero-padded plane xp (pad_h x pad_w, the input shifted by the top/left pads); ldv = floats
  // between xi planes (C * tile_stride()). Values past the tiles land in the stride's padding.
  void (*winograd_input)(const float* xp, const WinogradGeom& g, int64_t c, float* V, int64_t ldv);
  // y plane of channel m = epilogue(A^T Mo A) from Mo[xi][m][t] (ldm floats between xi planes,
  // channels tile_stride() apart; the padding is read, its results dropped).
  void (*winograd_output)(const float* Mo, int64_t ldm, const WinogradGeom& g, int64_t m,
                          const ConvEpilogue& e, const float* res, float* y);
  // Channels-last Winograd (C and M multiples of 8): tiles [t0, t1) of image x [H, W, C] into
  // V[xi][t][c] (rows of C floats, ldv floats between xi planes); window positions outside the
  // image (pt, pl: the top/left pads) read as zero.
  void (*winograd_input_nhwc)(const float* x, int64_t H, int64_t W, int64_t pt, int64_t pl,
                              const WinogradGeom& g, int64_t t0, int64_t t1, float* V, int64_t ldv);
  // Tiles [t0, t1) of y [OH, OW, M] = epilogue(A^T Mo A) from Mo[xi][t][m] (rows of M floats, ldm
  // between xi planes); res, the residual [OH, OW, M], may be y itself.
  void (*winograd_output_nhwc)(const float* Mo, int64_t ldm, const WinogradGeom& g, int64_t t0,
                               int64_t t1, const ConvEpilogue& e, const float* res, float* y);
  // Output row oh ([OW, C]) of a channels-last depthwise conv: y = epilogue(conv(x, w)) with
  // x the image [H, W, C], w [padded_c / 8][kh * kw][8] (zero past C), e.bias per channel, res the
  // residual row or null. zeros: scratch of W * C floats (rows in the padding read it).
  void (*depthwise_nhwc_row)(const float* x, const float* w, const DwNhwcGeom& g,
                             const ConvEpilogue& e, int64_t oh, const float* res, float* y,
                             float* zeros);
  // Output row oh ([OW, M]) of a direct conv (DirectNhwcGeom): y = epilogue(conv(x, w)).
  void (*direct_nhwc_row)(const float* x, const float* w, const DirectNhwcGeom& g,
                          const ConvEpilogue& e, int64_t oh, const float* res, float* y);
  // Phase rows [q0, q1) (q = c * H + ih) of image x for direct_nchw_row; the call that ends at
  // C * H also zeroes the trailing zero row.
  void (*direct_nchw_phases)(const float* x, const DirectNchwGeom& g, int64_t q0, int64_t q1,
                             float* ph);
  // Output row oh of planes [m_begin, m_end) of y ([M, OH, OW]; m_begin a multiple of 4) =
  // epilogue(conv), res the residual image or null, from the phases ph.
  void (*direct_nchw_row)(const float* ph, const float* w, const DirectNchwGeom& g,
                          const ConvEpilogue& e, int64_t oh, int64_t m_begin, int64_t m_end,
                          const float* res, float* y);
  // dst[i] = src[i * stride] for i < n (im2col's rows under a stride; stride 2 by shuffles).
  void (*copy_strided)(const float* src, int64_t stride, int64_t n, float* dst);
  // Output rows [oh0, oh1) of one MaxPool plane: y[OH, OW] from x[H, W]; scratch holds
  // g.scratch_floats() floats.
  void (*max_pool_plane)(const float* x, const MaxPoolGeom& g, int64_t oh0, int64_t oh1, float* y,
                         float* scratch);
};

const ConvSimd& conv_simd();
const ConvSimd& conv_simd_portable();  // conv_simd.cc
const ConvSimd& conv_simd_avx2();      // avx2/conv_simd_avx2.cc (call only with AVX2+FMA)

}  // namespace runnx
