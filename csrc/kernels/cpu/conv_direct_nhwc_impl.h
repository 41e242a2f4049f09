// Direct group-1 convolution with channels-last output for few input channels (a model's stem:
// 3x3/s2 on C=3): C * kh * kw taps, each a scalar of the input broadcast against a row of the
// weights [tap][M rounded up to 8]. Two output pixels times up to 32 channels per step (8
// accumulators, the 4 weight vectors and a broadcast: three pixels spilled an accumulator onto
// the critical path; 6 pixels x 16 channels, 12 accumulators, measured no faster) keep the FMA
// ports busy; the im2col + GEMM it replaces spent most of its time gathering 27 scalars per
// pixel. Part of conv_simd_impl.h (compiled portable and AVX2).
//
// The input is read through element strides (xs_c, xs_h, xs_w), so NCHW and NHWC images both
// work. Taps whose row falls in the padding are dropped for the whole output row; taps whose
// column does are dropped per pixel (only pixels near the left and right edges have any).

struct DirectTap {
  int64_t w_off;   // the tap's weight row: w_row * Mp floats into the weights
  int64_t offset;  // element offset from the pixel's origin (ih0, iw0)
  int64_t kw;      // kernel column (for the per-pixel column check)
};

template <int NB, int PX>
static void direct_block(const float* x, const DirectTap* taps, int64_t ntaps, const float* w,
                         int64_t m0, const int64_t* origin, v8 (*acc)[4]) {
  // Local accumulators and pixel pointers: the compiler keeps them in registers.
  v8 a[PX][NB];
  const float* xp[PX];
  for (int p = 0; p < PX; ++p) {
    xp[p] = x + origin[p];
    for (int j = 0; j < NB; ++j) a[p][j] = splat(0.f);
  }
  const float* wbase = w + m0;
  for (int64_t t = 0; t < ntaps; ++t) {
    const float* wr = wbase + taps[t].w_off;
    const int64_t off = taps[t].offset;
    v8 wv[NB];
    for (int j = 0; j < NB; ++j) wv[j] = load8(wr + 8 * j);
    for (int p = 0; p < PX; ++p) {
      const v8 xv = splat(xp[p][off]);
      for (int j = 0; j < NB; ++j) a[p][j] += xv * wv[j];
    }
  }
  for (int p = 0; p < PX; ++p)
    for (int j = 0; j < NB; ++j) acc[p][j] = a[p][j];
}

// acc of pixel ow, channels [m0, m0 + 8 * NB) -> y with bias, residual and activation: full
// vectors straight from registers (ReLU/Clip as one clamp; a call and a switch per vector took a
// third of the stem's time), a channel tail past M element by element.
template <int NB>
__attribute__((always_inline)) static inline void direct_store(
    const v8* acc, int64_t m0, const runnx::DirectNhwcGeom& g, const runnx::ConvEpilogue& e,
    const runnx::ConvEpilogue& act, const DwnClamp& clamp, int64_t ow, const float* res,
    float* y) {
  float* yp = y + ow * g.M + m0;
  const float* rp = res ? res + ow * g.M + m0 : nullptr;
  if (m0 + 8 * NB <= g.M) {
    for (int j = 0; j < NB; ++j) {
      v8 v = acc[j];
      if (e.bias) v += load8(e.bias + m0 + 8 * j);
      if (rp) v += load8(rp + 8 * j);
      store8(yp + 8 * j, clamp.apply(v, act));
    }
    return;
  }
  for (int j = 0; j < NB; ++j) {
    const int64_t m = m0 + 8 * j;
    for (int64_t l = 0; l < min64(8, g.M - m); ++l)
      yp[8 * j + l] = activate1(
          acc[j][l] + (e.bias ? e.bias[m + l] : 0.f) + (rp ? rp[8 * j + l] : 0.f), act);
  }
}

// PX pixels from ow on, channels [m0, m0 + 8 * NB).
template <int NB, int PX>
__attribute__((always_inline)) static inline void direct_step(
    const float* x, const DirectTap* taps, int64_t ntaps, const float* w, int64_t m0,
    const runnx::DirectNhwcGeom& g, const runnx::ConvEpilogue& e, const runnx::ConvEpilogue& act,
    const DwnClamp& clamp, int64_t ih0, int64_t ow, const float* res, float* y) {
  v8 acc[PX][4];
  int64_t org[PX];
  for (int p = 0; p < PX; ++p) org[p] = ih0 * g.xs_h + ((ow + p) * g.sw - g.pl) * g.xs_w;
  direct_block<NB, PX>(x, taps, ntaps, w, m0, org, acc);
  for (int p = 0; p < PX; ++p) direct_store<NB>(acc[p], m0, g, e, act, clamp, ow + p, res, y);
}

template <int NB>
static void direct_range(const float* x, const DirectTap* taps, int64_t ntaps, const float* w,
                         int64_t m0, const runnx::DirectNhwcGeom& g, const runnx::ConvEpilogue& e,
                         const runnx::ConvEpilogue& act, int64_t ih0, int64_t ow0, int64_t ow1,
                         const float* res, float* y) {
  const DwnClamp clamp(act);
  int64_t ow = ow0;
  for (; ow + 2 <= ow1; ow += 2)
    direct_step<NB, 2>(x, taps, ntaps, w, m0, g, e, act, clamp, ih0, ow, res, y);
  if (ow < ow1) direct_step<NB, 1>(x, taps, ntaps, w, m0, g, e, act, clamp, ih0, ow, res, y);
}

#ifdef __AVX2__
// 32 channels of 4 pixels in 512-bit registers (the AVX2 build, on a CPU with AVX-512F): per tap
// 8 FMAs of 16 lanes against 2 weight vectors and 4 broadcasts. The 256-bit 2-pixel step's 8
// accumulators each wait out the FMA latency every tap (its 8 FMAs issue in 4 cycles, the latency
// of one); here the 8 FMAs take 8 cycles, so the chains have slack. MobileNetV2's stem block
// (3x3/s2 3 -> 32 at 224, fused with the depthwise and project), b1 2 threads: 382 -> 342 us;
// 6 or 8 pixels: no faster. Pixels past a multiple of 4 take direct_range<4>.
__attribute__((target("avx512f"))) static void direct_range_512(
    const float* x, const DirectTap* taps, int64_t ntaps, const float* w, int64_t m0,
    const runnx::DirectNhwcGeom& g, const runnx::ConvEpilogue& e, const runnx::ConvEpilogue& act,
    int64_t ih0, int64_t ow0, int64_t ow1, const float* res, float* y) {
  const DwnClamp clamp(act);
  const float* wbase = w + m0;
  // Whole vectors with None/ReLU/Clip: the epilogue stays in 512-bit registers (through
  // direct_store's 8-float vectors it was ~a fifth of the step).
  const bool fast = clamp.on && m0 + 32 <= g.M;
  const v16 lo = splat16(clamp.lo[0]), hi = splat16(clamp.hi[0]);
  v16 bias[2] = {};
  if (e.bias && fast) {  // only then are channels m0 .. m0 + 31 all there
    __builtin_memcpy(&bias[0], e.bias + m0, sizeof(v16));
    __builtin_memcpy(&bias[1], e.bias + m0 + 16, sizeof(v16));
  }
  int64_t ow = ow0;
  for (; ow + 4 <= ow1; ow += 4) {
    const float* xp[4];
    v16 a[4][2];
    for (int p = 0; p < 4; ++p) {
      xp[p] = x + ih0 * g.xs_h + ((ow + p) * g.sw - g.pl) * g.xs_w;
      a[p][0] = a[p][1] = v16{};
    }
    for (int64_t t = 0; t < ntaps; ++t) {
      const float* wr = wbase + taps[t].w_off;
      const int64_t off = taps[t].offset;
      v16 w0, w1;
      __builtin_memcpy(&w0, wr, sizeof w0);
      __builtin_memcpy(&w1, wr + 16, sizeof w1);
      for (int p = 0; p < 4; ++p) {
        const v16 xv = splat16(xp[p][off]);  // a broadcast load
        a[p][0] += xv * w0;
        a[p][1] += xv * w1;
      }
    }
    if (fast) {  // bias, residual and clamp in 512-bit registers
      for (int p = 0; p < 4; ++p) {
        float* yp = y + (ow + p) * g.M + m0;
        const float* rp = res ? res + (ow + p) * g.M + m0 : nullptr;
        for (int h = 0; h < 2; ++h) {
          v16 v = a[p][h] + bias[h];
          if (rp) {
            v16 r;
            __builtin_memcpy(&r, rp + 16 * h, sizeof r);
            v += r;
          }
          v = v < lo ? lo : v;
          v = v > hi ? hi : v;
          __builtin_memcpy(yp + 16 * h, &v, sizeof v);
        }
      }
      continue;
    }
    for (int p = 0; p < 4; ++p) {
      v8 acc[4];
      __builtin_memcpy(acc, a[p], sizeof acc);
      direct_store<4>(acc, m0, g, e, act, clamp, ow + p, res, y);
    }
  }
  if (ow < ow1) direct_range<4>(x, taps, ntaps, w, m0, g, e, act, ih0, ow, ow1, res, y);
}
#endif

static void direct_channels(const float* x, const DirectTap* taps, int64_t ntaps, const float* w,
                            const runnx::DirectNhwcGeom& g, const runnx::ConvEpilogue& e,
                            const runnx::ConvEpilogue& act, int64_t ih0, int64_t ow0, int64_t ow1,
                            const float* res, float* y) {
  const int64_t Mp = (g.M + 7) / 8 * 8;
  for (int64_t m0 = 0; m0 < Mp; m0 += 32) {
#ifdef __AVX2__
    if (Mp - m0 >= 32 && ow1 - ow0 >= 4 && runnx::sgemm_avx2_uses_avx512()) {
      direct_range_512(x, taps, ntaps, w, m0, g, e, act, ih0, ow0, ow1, res, y);
      continue;
    }
#endif
    switch (min64(4, (Mp - m0) / 8)) {
      case 4: direct_range<4>(x, taps, ntaps, w, m0, g, e, act, ih0, ow0, ow1, res, y); break;
      case 3: direct_range<3>(x, taps, ntaps, w, m0, g, e, act, ih0, ow0, ow1, res, y); break;
      case 2: direct_range<2>(x, taps, ntaps, w, m0, g, e, act, ih0, ow0, ow1, res, y); break;
      default: direct_range<1>(x, taps, ntaps, w, m0, g, e, act, ih0, ow0, ow1, res, y); break;
    }
  }
}

static void direct_nhwc_row(const float* x, const float* w, const runnx::DirectNhwcGeom& g,
                            const runnx::ConvEpilogue& e, int64_t oh, const float* res, float* y) {
  runnx::ConvEpilogue act = e;
  act.bias = nullptr;
  act.residual = nullptr;
  const int64_t ih0 = oh * g.sh - g.pt;
  DirectTap taps[runnx::DirectNhwcGeom::kMaxTaps];
  int64_t n = 0;
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t kh = 0; kh < g.kh; ++kh) {
      const int64_t ih = ih0 + kh * g.dh;
      if (ih < 0 || ih >= g.H) continue;
      for (int64_t kw = 0; kw < g.kw; ++kw)
        taps[n++] = {((kh * g.kw + kw) * g.C + c) * ((g.M + 7) / 8 * 8),
                     c * g.xs_c + kh * g.dh * g.xs_h + kw * g.dw * g.xs_w, kw};
    }
  int64_t o0 = 0;
  while (o0 < g.OW && o0 * g.sw - g.pl < 0) ++o0;
  int64_t o1 = g.OW;
  while (o1 > o0 && (o1 - 1) * g.sw - g.pl + (g.kw - 1) * g.dw >= g.W) --o1;
  // Edge pixels: the taps whose column lands inside.
  DirectTap edge[runnx::DirectNhwcGeom::kMaxTaps];
  for (int64_t ow = 0; ow < g.OW; ++ow) {
    if (ow == o0) ow = o1;
    if (ow >= g.OW) break;
    const int64_t iw0 = ow * g.sw - g.pl;
    int64_t ne = 0;
    for (int64_t t = 0; t < n; ++t) {
      const int64_t iw = iw0 + taps[t].kw * g.dw;
      if (iw >= 0 && iw < g.W) edge[ne++] = taps[t];
    }
    direct_channels(x, edge, ne, w, g, e, act, ih0, ow, ow + 1, res, y);
  }
  if (o1 > o0) direct_channels(x, taps, n, w, g, e, act, ih0, o0, o1, res, y);
}
