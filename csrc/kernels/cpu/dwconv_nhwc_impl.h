// Depthwise convolution on channels-last (NHWC) activations, one output row at a time: the
// channels of a pixel are contiguous, so a vector holds 8 channels of one pixel and every tap is
// one load and one FMA, with no shuffles and no padded plane copy. Part of conv_simd_impl.h (uses
// its v8 helpers; compiled portable and AVX2).
//
// Rows that fall in the padding read a zero row instead (no per-tap checks on them). 3x3 at
// dilation 1, stride 1 or 2, with at most one padding column a side (MobileNet's) runs steps of
// 8, 4, 2 and 1 pixels (dwn_3x3_run) and a one-pixel step with the padded tap left out at each
// padded edge; other kernels take the checked per-pixel loop. Weights are blocked
// [C / 8][kh * kw][8] so a channel block's taps sit at constant offsets from one pointer.

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

// P output pixels of a 3x3 kernel at dilation 1 and stride S, whose windows start at input column
// iw0: the step reads columns iw0 .. iw0 + (P - 1) * S + 2. L: the first of them is left padding,
// R: the last is right padding (their taps are left out at compile time). Each input vector is
// loaded once per kernel row and fed to every output it touches, FMA straight into P independent
// accumulators (P = 8: 8 chains hide the FMA latency; 3 weights + 8 accumulators + the input stay
// in registers). Channels are innermost, so the few input pixels a step reads stay in L1 across
// the channel blocks.
// ReLU, Clip or no activation as one clamp in registers (no switch per vector); NaN passes.
struct DwnClamp {
  bool on;
  v8 lo, hi;
  explicit DwnClamp(const runnx::ConvEpilogue& e) {
    using A = runnx::ConvActivation;
    on = e.act == A::kNone || e.act == A::kRelu || e.act == A::kClip;
    lo = splat(e.act == A::kRelu ? 0.f : e.act == A::kClip ? e.alpha : -__builtin_inff());
    hi = splat(e.act == A::kClip ? e.beta : __builtin_inff());
  }
  v8 apply(v8 v, const runnx::ConvEpilogue& act) const {
    if (!on) return activate(v, act);
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
  }
};

// Not inlined: the row function would otherwise hold all seven step variants in one body.
template <int S, int P, bool L, bool R>
__attribute__((noinline)) static void dwn_3x3_run(const float* const* rows, const float* w,
                                                  int64_t C, int64_t iw0,
                                                  const runnx::ConvEpilogue& act,
                                                  const DwnClamp& clamp, const float* bias,
                                                  const float* res, float* y, bool nt) {
  constexpr int NC = (P - 1) * S + 3;
  const int64_t x0 = (iw0 + L) * C;  // the first column read; column j sits at (j - L) * C
  int64_t c = 0;
  for (; c + 8 <= C; c += 8) {
    v8 a[P];
    const v8 b = bias ? load8(bias + c) : splat(0.f);
#pragma GCC unroll 8
    for (int o = 0; o < P; ++o) a[o] = b;
    const float* wb = w + c * 9;
#pragma GCC unroll 1
    for (int kh = 0; kh < 3; ++kh) {
      // A running pointer, one add per column (indexed offsets took a register each, spilled).
      const float* p = rows[kh] + x0 + c;
      const v8 w0 = load8(wb + kh * 24), w1 = load8(wb + kh * 24 + 8);
      const v8 w2 = load8(wb + kh * 24 + 16);
#pragma GCC unroll 32
      for (int j = L; j < NC - R; ++j) {
        const v8 x = load8(p);
        p += C;
        // Column j is tap t of output o when o * S + t == j.
        if (j % S == 0 && j / S < P) a[j / S] += w0 * x;
        if ((j - 1) % S == 0 && j >= 1 && (j - 1) / S < P) a[(j - 1) / S] += w1 * x;
        if ((j - 2) % S == 0 && j >= 2 && (j - 2) / S < P) a[(j - 2) / S] += w2 * x;
      }
    }
    float* q = y + c;
    if (clamp.on && !res && !nt) {  // the common case without a branch per vector
#pragma GCC unroll 8
      for (int o = 0; o < P; ++o, q += C) store8(q, clamp.apply(a[o], act));
      continue;
    }
#pragma GCC unroll 8
    for (int o = 0; o < P; ++o, q += C) {
      v8 v = a[o];
      if (res) v += load8(res + o * C + c);
      v = clamp.apply(v, act);
      if (nt)
        dwn_store8_nt(q, v);
      else
        store8(q, v);
    }
  }
  for (; c < C; ++c)
    for (int o = 0; o < P; ++o) {
      const int64_t kw0 = L && o == 0 ? 1 : 0, kw1 = R && o == P - 1 ? 2 : 3;
      const runnx::DwNhwcGeom g{0, 0, C, 0, 0, 3, 3, S, S, 1, 1, 0, 0};
      const float v = dwn_pixel1(rows, 3, w, g, iw0 + o * S, kw0, kw1, c, bias ? bias[c] : 0.f);
      y[o * C + c] = activate1(v + (res ? res[o * C + c] : 0.f), act);
    }
}

#ifdef __AVX2__
// dwn_3x3_run over blocks of 16 channels in 512-bit registers (the AVX2 build, on a CPU with
// AVX-512F; C a multiple of 16): a weight vector joins the taps of two 8-channel blocks (once per
// kernel row), and each tap is one 64-byte load and one FMA. Zen 5 runs these at twice the 256-bit rate.
template <int S, int P, bool L, bool R>
__attribute__((noinline, target("avx512f"))) static void dwn_3x3_run_512(
    const float* const* rows, const float* w, int64_t C, int64_t iw0, const runnx::ConvEpilogue& act,
    const DwnClamp& clamp, const float* bias, const float* res, float* y, bool nt) {
  constexpr int NC = (P - 1) * S + 3;
  const int64_t x0 = (iw0 + L) * C;
  const v16 lo = splat16(clamp.lo[0]), hi = splat16(clamp.hi[0]);
  for (int64_t c = 0; c < C; c += 16) {
    v16 a[P];
    v16 b = v16{};
    if (bias) __builtin_memcpy(&b, bias + c, sizeof b);
#pragma GCC unroll 8
    for (int o = 0; o < P; ++o) a[o] = b;
    const float* wb = w + c * 9;  // blocks c / 8 and c / 8 + 1, 72 floats apart
#pragma GCC unroll 1
    for (int kh = 0; kh < 3; ++kh) {
      const float* p = rows[kh] + x0 + c;
      v16 wt[3];
      for (int t = 0; t < 3; ++t)  // two loads and an insert (halves written to memory stall the load)
        wt[t] = __builtin_shufflevector(load8(wb + kh * 24 + t * 8), load8(wb + 72 + kh * 24 + t * 8), 0, 1, 2,
                                        3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#pragma GCC unroll 32
      for (int j = L; j < NC - R; ++j) {
        v16 x;
        __builtin_memcpy(&x, p, sizeof x);
        p += C;
        if (j % S == 0 && j / S < P) a[j / S] += wt[0] * x;
        if ((j - 1) % S == 0 && j >= 1 && (j - 1) / S < P) a[(j - 1) / S] += wt[1] * x;
        if ((j - 2) % S == 0 && j >= 2 && (j - 2) / S < P) a[(j - 2) / S] += wt[2] * x;
      }
    }
    float* q = y + c;
#pragma GCC unroll 8
    for (int o = 0; o < P; ++o, q += C) {
      v16 v = a[o];
      if (res) {
        v16 r;
        __builtin_memcpy(&r, res + o * C + c, sizeof r);
        v += r;
      }
      if (clamp.on && !nt) {
        v = v < lo ? lo : v;
        v = v > hi ? hi : v;
        __builtin_memcpy(q, &v, sizeof v);
        continue;
      }
      for (int h = 0; h < 2; ++h) {  // 8 channels at a time: the other activations, streamed stores
        v8 u;
        __builtin_memcpy(&u, reinterpret_cast<const float*>(&v) + 8 * h, sizeof u);
        u = clamp.apply(u, act);
        if (nt)
          dwn_store8_nt(q + 8 * h, u);
        else
          store8(q + 8 * h, u);
      }
    }
  }
}
#endif

// One step of P pixels: in 512-bit registers when `wide` (dwn_3x3_run_512), else dwn_3x3_run.
template <int S, int P, bool L, bool R>
static inline void dwn_3x3_step(bool wide, const float* const* rows, const float* w, int64_t C, int64_t iw0,
                                const runnx::ConvEpilogue& act, const DwnClamp& clamp, const float* bias,
                                const float* res, float* y, bool nt) {
#ifdef __AVX2__
  if (wide) return dwn_3x3_run_512<S, P, L, R>(rows, w, C, iw0, act, clamp, bias, res, y, nt);
#endif
  (void)wide;
  dwn_3x3_run<S, P, L, R>(rows, w, C, iw0, act, clamp, bias, res, y, nt);
}

// The 3x3 / dilation 1 / stride 1 or 2 row with at most one column of padding on each side:
// an edge pixel that reads padding takes a one-pixel step with that tap left out, the rest
// steps of 8, 4, 2 and 1 pixels.
template <int S>
static void dwn_3x3_row(const float* const* rows, const float* w, const runnx::DwNhwcGeom& g,
                        const runnx::ConvEpilogue& act, const float* bias, const float* res,
                        float* y, const float* const* next, int nnext, bool nt) {
  const int64_t C = g.C, OW = g.OW;
  const bool left = g.pl == 1, right = (OW - 1) * S - g.pl + 2 >= g.W;
  auto at = [&](int64_t ow) { return res ? res + ow * C : nullptr; };
  const DwnClamp clamp(act);
#ifdef __AVX2__
  const bool wide = C % 16 == 0 && runnx::sgemm_avx2_uses_avx512();
#else
  const bool wide = false;
#endif
  if (OW == 1 && left && right)
    return dwn_3x3_step<S, 1, true, true>(wide, rows, w, C, -1, act, clamp, bias, res, y, nt);
  int64_t ow = 0, end = OW - right;
  if (left) dwn_3x3_step<S, 1, true, false>(wide, rows, w, C, -1, act, clamp, bias, res, y, nt), ow = 1;
  for (; ow + 8 <= end; ow += 8) {
    const int64_t x0 = (ow * S - g.pl) * C;
    for (int r = 0; r < nnext; ++r)
      for (int64_t i = 0; i < 8 * S * C; i += 16) __builtin_prefetch(next[r] + x0 + i, 0, 2);
    dwn_3x3_step<S, 8, false, false>(wide, rows, w, C, ow * S - g.pl, act, clamp, bias, at(ow),
                                     y + ow * C, nt);
  }
  if (ow + 4 <= end) {
    dwn_3x3_step<S, 4, false, false>(wide, rows, w, C, ow * S - g.pl, act, clamp, bias, at(ow),
                                     y + ow * C, nt);
    ow += 4;
  }
  if (ow + 2 <= end) {
    dwn_3x3_step<S, 2, false, false>(wide, rows, w, C, ow * S - g.pl, act, clamp, bias, at(ow),
                                     y + ow * C, nt);
    ow += 2;
  }
  if (ow < end) {
    dwn_3x3_step<S, 1, false, false>(wide, rows, w, C, ow * S - g.pl, act, clamp, bias, at(ow),
                                     y + ow * C, nt);
    ++ow;
  }
  if (right)
    dwn_3x3_step<S, 1, false, true>(wide, rows, w, C, ow * S - g.pl, act, clamp, bias, at(ow),
                                    y + ow * C, nt);
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
  // An input beyond the caches (prefetch_rows): the rows the next output row adds (1 or 2, the
  // stride) are prefetched a step's share at a time while this row runs; the hardware prefetcher
  // falls behind on the channels-last rows (bench: 144ch @56 s1, b32, 1 thread, 614 -> 462 us
  // per image). From the caches (batch 1) the extra instructions only cost (s2: 268 -> 295 us).
  const float* next[2];
  int nnext = 0;
  for (int64_t ih = oh * g.sh - g.pt + (g.kh - 1) * g.dh + 1;
       g.prefetch_rows && nnext < 2 && nnext < g.sh && ih < g.H; ++ih)
    if (ih >= 0) next[nnext++] = x + ih * g.W * g.C;
  if (g.kh == 3 && g.kw == 3 && g.dh == 1 && g.dw == 1 && g.pl <= 1 &&
      (g.sw == 1 || g.sw == 2) && (g.OW - 1) * g.sw - g.pl + 2 <= g.W) {
    const bool nt = g.stream_out && g.C % 8 == 0 && reinterpret_cast<uintptr_t>(y) % 32 == 0;
    if (g.sw == 1)
      dwn_3x3_row<1>(rows, w, g, act, bias, res, y, next, nnext, nt);
    else
      dwn_3x3_row<2>(rows, w, g, act, bias, res, y, next, nnext, nt);
    if (nt) __builtin_ia32_sfence();  // order the streamed row before the job's completion
    return;
  }
  for (int64_t ow = 0; ow < g.OW; ++ow) dwn_pixel_checked(rows, w, g, act, bias, ow, res, y);
}
