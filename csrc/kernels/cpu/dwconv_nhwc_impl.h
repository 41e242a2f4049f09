// Depthwise convolution on channels-last (NHWC) activations, one output row at a time: the
// channels of a pixel are contiguous, so a vector holds 8 channels of one pixel and every tap is
// one load and one FMA, with no shuffles and no padded plane copy. Part of conv_simd_impl.h (uses
// its v8 helpers; compiled portable and AVX2).
//
// Rows that fall in the padding read a zero row instead (no per-tap checks on them); columns
// that fall in the padding are only possible for the first and last few outputs, which take the
// checked per-pixel loop. 3x3 at dilation 1 runs four output pixels per step (four independent
// accumulator chains hide the FMA latency) with channels innermost, so the 3 x (3 + 3 * stride)
// input pixels a step reads stay in L1 across the channel blocks. Weights are blocked
// [C / 8][kh * kw][8] so a channel block's taps sit at constant offsets from one pointer, and the
// kernel rows run as a (not unrolled) loop: unrolled, GCC kept 27 tap addresses in stack slots
// and reloaded one per input load.

// One pixel, channels [c0, c0 + 8), kernel columns [kw0, kw1) only (the rest is padding).
static inline v8 dwn_pixel8(const float* const* rows, int64_t kh_n, const float* w,
                            const runnx::DwNhwcGeom& g, int64_t iw0, int64_t kw0, int64_t kw1,
                            int64_t c0, v8 acc) {
  const float* wb = w + c0 * g.kh * g.kw;  // the block of channels c0 .. c0 + 7
  for (int64_t kh = 0; kh < kh_n; ++kh) {
    const float* r = rows[kh] + c0;
    for (int64_t kw = kw0; kw < kw1; ++kw)
      acc += load8(wb + (kh * g.kw + kw) * 8) * load8(r + (iw0 + kw * g.dw) * g.C);
  }
  return acc;
}

// A non-temporal store of 8 floats to a 32-byte aligned address (builtins: this file is included
// inside a namespace, where intrinsic headers cannot go).
static inline void dwn_store8_nt(float* p, v8 v) {
#ifdef __AVX__
  __builtin_ia32_movntps256(p, v);
#else
  typedef float v4 __attribute__((vector_size(16)));
  __builtin_ia32_movntps(p, v4{v[0], v[1], v[2], v[3]});
  __builtin_ia32_movntps(p + 4, v4{v[4], v[5], v[6], v[7]});
#endif
}

static inline float dwn_pixel1(const float* const* rows, int64_t kh_n, const float* w,
                               const runnx::DwNhwcGeom& g, int64_t iw0, int64_t kw0, int64_t kw1,
                               int64_t c, float acc) {
  const float* wb = w + (c / 8) * 8 * g.kh * g.kw + c % 8;
  for (int64_t kh = 0; kh < kh_n; ++kh)
    for (int64_t kw = kw0; kw < kw1; ++kw)
      acc += wb[(kh * g.kw + kw) * 8] * rows[kh][(iw0 + kw * g.dw) * g.C + c];
  return acc;
}

// Output pixel ow of the row, all channels, with bounds checks on the kernel columns.
static void dwn_pixel_checked(const float* const* rows, const float* w,
                              const runnx::DwNhwcGeom& g, const runnx::ConvEpilogue& act,
                              const float* bias, int64_t ow, const float* res, float* y) {
  const int64_t iw0 = ow * g.sw - g.pl;
  int64_t kw0 = 0, kw1 = g.kw;
  while (kw0 < kw1 && iw0 + kw0 * g.dw < 0) ++kw0;
  while (kw1 > kw0 && iw0 + (kw1 - 1) * g.dw >= g.W) --kw1;
  const float* rp = res ? res + ow * g.C : nullptr;
  float* yp = y + ow * g.C;
  int64_t c = 0;
  for (; c + 8 <= g.C; c += 8) {
    v8 v = dwn_pixel8(rows, g.kh, w, g, iw0, kw0, kw1, c, bias ? load8(bias + c) : splat(0.f));
    if (rp) v += load8(rp + c);
    store8(yp + c, activate(v, act));
  }
  for (; c < g.C; ++c) {
    float v = dwn_pixel1(rows, g.kh, w, g, iw0, kw0, kw1, c, bias ? bias[c] : 0.f);
    yp[c] = activate1(v + (rp ? rp[c] : 0.f), act);
  }
}

// Four pixels ow .. ow+3, all inside horizontally, 3x3 kernel at dilation 1.
template <int S, bool NT>
static void dwn_3x3_quad(const float* const* rows, const float* w, const runnx::DwNhwcGeom& g,
                         const runnx::ConvEpilogue& act, const float* bias, int64_t ow,
                         const float* res, float* y, const float* const* next, int nnext) {
  const int64_t C = g.C, x0 = (ow * S - g.pl) * C;
  for (int r = 0; r < nnext; ++r)
    for (int64_t i = 0; i < 4 * S * C; i += 16) __builtin_prefetch(next[r] + x0 + i, 0, 2);
  float* yp = y + ow * C;
  const float* rp = res ? res + ow * C : nullptr;
  int64_t c = 0;
  for (; c + 8 <= C; c += 8) {
    const v8 b = bias ? load8(bias + c) : splat(0.f);
    v8 a0 = b, a1 = b, a2 = b, a3 = b;
    const float* wb = w + c * 9;
#pragma GCC unroll 1
    for (int kh = 0; kh < 3; ++kh) {
      const float* p = rows[kh] + x0 + c;  // input column 0 of the step; column j at p + j * C
      const float* q = p + 3 * C;
      const v8 w0 = load8(wb + kh * 24), w1 = load8(wb + kh * 24 + 8);
      const v8 w2 = load8(wb + kh * 24 + 16);
      if (S == 1) {
        const v8 x1 = load8(p + C), x2 = load8(p + 2 * C), x3 = load8(q), x4 = load8(q + C);
        a0 += w0 * load8(p) + w1 * x1 + w2 * x2;
        a1 += w0 * x1 + w1 * x2 + w2 * x3;
        a2 += w0 * x2 + w1 * x3 + w2 * x4;
        a3 += w0 * x3 + w1 * x4 + w2 * load8(q + 2 * C);
      } else {
        const float* r = q + 3 * C;
        const v8 x2 = load8(p + 2 * C), x4 = load8(q + C), x6 = load8(r);
        a0 += w0 * load8(p) + w1 * load8(p + C) + w2 * x2;
        a1 += w0 * x2 + w1 * load8(q) + w2 * x4;
        a2 += w0 * x4 + w1 * load8(q + 2 * C) + w2 * x6;
        a3 += w0 * x6 + w1 * load8(r + C) + w2 * load8(r + 2 * C);
      }
    }
    if (rp) {
      a0 += load8(rp + c);
      a1 += load8(rp + C + c);
      a2 += load8(rp + 2 * C + c);
      a3 += load8(rp + 3 * C + c);
    }
    if (NT) {
      dwn_store8_nt(yp + c, activate(a0, act));
      dwn_store8_nt(yp + C + c, activate(a1, act));
      dwn_store8_nt(yp + 2 * C + c, activate(a2, act));
      dwn_store8_nt(yp + 3 * C + c, activate(a3, act));
    } else {
      store8(yp + c, activate(a0, act));
      store8(yp + C + c, activate(a1, act));
      store8(yp + 2 * C + c, activate(a2, act));
      store8(yp + 3 * C + c, activate(a3, act));
    }
  }
  for (; c < C; ++c)
    for (int q = 0; q < 4; ++q) {
      const float v = dwn_pixel1(rows, 3, w, g, (ow + q) * S - g.pl, 0, 3, c, bias ? bias[c] : 0.f);
      yp[q * C + c] = activate1(v + (rp ? rp[q * C + c] : 0.f), act);
    }
}

static void depthwise_nhwc_row(const float* x, const float* w, const runnx::DwNhwcGeom& g,
                               const runnx::ConvEpilogue& e, int64_t oh, const float* res,
                               float* y, float* zeros) {
  const float* rows[16];
  bool zeroed = false;
  for (int64_t kh = 0; kh < g.kh; ++kh) {
    const int64_t ih = oh * g.sh - g.pt + kh * g.dh;
    if (ih >= 0 && ih < g.H) {
      rows[kh] = x + ih * g.W * g.C;
    } else {
      if (!zeroed)
        for (int64_t i = 0; i < g.W * g.C; ++i) zeros[i] = 0.f;
      zeroed = true;
      rows[kh] = zeros;
    }
  }
  runnx::ConvEpilogue act = e;
  act.bias = nullptr;
  const float* bias = e.bias;
  // Outputs [o0, o1) read only columns inside the row.
  int64_t o0 = 0;
  while (o0 < g.OW && o0 * g.sw - g.pl < 0) ++o0;
  int64_t o1 = g.OW;
  while (o1 > o0 && (o1 - 1) * g.sw - g.pl + (g.kw - 1) * g.dw >= g.W) --o1;
  // An input beyond the caches (prefetch_rows): the rows the next output row adds (1 or 2, the
  // stride) are prefetched a quad's share at a time while this row runs; the hardware prefetcher
  // falls behind on the channels-last rows (bench: 144ch @56 s1, b32, 1 thread, 614 -> 462 us
  // per image). From the caches (batch 1) the extra instructions only cost (s2: 268 -> 295 us).
  const float* next[2];
  int nnext = 0;
  for (int64_t ih = oh * g.sh - g.pt + (g.kh - 1) * g.dh + 1;
       g.prefetch_rows && nnext < 2 && nnext < g.sh && ih < g.H; ++ih)
    if (ih >= 0) next[nnext++] = x + ih * g.W * g.C;
  int64_t ow = 0;
  for (; ow < o0; ++ow) dwn_pixel_checked(rows, w, g, act, bias, ow, res, y);
  if (g.kh == 3 && g.kw == 3 && g.dh == 1 && g.dw == 1 && (g.sw == 1 || g.sw == 2)) {
    const bool nt = g.stream_out && g.C % 8 == 0 && reinterpret_cast<uintptr_t>(y) % 32 == 0;
    for (; ow + 4 <= o1; ow += 4) {
      if (g.sw == 1 && nt)
        dwn_3x3_quad<1, true>(rows, w, g, act, bias, ow, res, y, next, nnext);
      else if (g.sw == 1)
        dwn_3x3_quad<1, false>(rows, w, g, act, bias, ow, res, y, next, nnext);
      else if (nt)
        dwn_3x3_quad<2, true>(rows, w, g, act, bias, ow, res, y, next, nnext);
      else
        dwn_3x3_quad<2, false>(rows, w, g, act, bias, ow, res, y, next, nnext);
    }
    if (nt) __builtin_ia32_sfence();  // order the streamed row before the job's completion
  }
  for (; ow < g.OW; ++ow) dwn_pixel_checked(rows, w, g, act, bias, ow, res, y);
}
