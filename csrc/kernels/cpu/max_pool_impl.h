// 2-D (and 1-D) float MaxPool of one plane, separably: each input row's max over the kernel's
// columns (a row of hm), then each output row's max over kernel rows of hm. A row is first
// copied with its padding as lowest() and split into its stride phases (stride 2 by shuffles),
// so every tap is one contiguous vector max. ResNet-50's 3x3/s2 pool walked a strided scalar
// loop per tap (680 us at 1 thread vs onnxruntime's 220). NaN inputs never win a comparison,
// as in the scalar pool. Part of conv_simd_impl.h.

// The running max acc and a new value v: a NaN v never replaces acc.
static inline v8 vmax(v8 acc, v8 v) { return v > acc ? v : acc; }

static void max_pool_plane(const float* x, const runnx::MaxPoolGeom& g, float* y, float* scratch) {
  const float lowest = -3.4028234663852886e38f;
  const int64_t OWp = g.out_w_padded(), Wq = g.phase_w(), Wr = g.phase_stride();
  float* hm = scratch;          // [H][OWp]
  float* xp = hm + g.H * OWp;   // the padded row, sw * Wr floats
  float* ph = xp + g.sw * Wr;   // sw phases of Wr floats (stride 1 reads xp itself)
  const int64_t L = g.sw * Wr;
  for (int64_t ih = 0; ih < g.H; ++ih) {
    const float* row = x + ih * g.W;
    // xp[i] = row[i - pl] inside the row, lowest() elsewhere.
    const int64_t lo = g.pl < L ? g.pl : L, hi = min64(L, g.pl + g.W) > lo ? min64(L, g.pl + g.W) : lo;
    for (int64_t i = 0; i < lo; ++i) xp[i] = lowest;
    for (int64_t i = lo; i < hi; ++i) xp[i] = row[i - g.pl];
    for (int64_t i = hi; i < L; ++i) xp[i] = lowest;
    const float* phase = xp;
    if (g.sw == 2) {
      for (int64_t j = 0; j < Wr; j += 8) {
        const v8 a = load8(xp + 2 * j), b = load8(xp + 2 * j + 8);
        store8(ph + j, __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14));
        store8(ph + Wr + j, __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15));
      }
      phase = ph;
    } else if (g.sw > 2) {
      for (int64_t b = 0; b < g.sw; ++b)
        for (int64_t j = 0; j < Wr; ++j) ph[b * Wr + j] = xp[g.sw * j + b];
      phase = ph;
    }
    // Tap by tap over the whole row (kw may be large: no per-vector divisions or tap arrays).
    float* h = hm + ih * OWp;
    for (int64_t kw = 0; kw < g.kw; ++kw) {
      const int64_t t = kw * g.dw;
      const float* src = phase + (t % g.sw) * Wr + t / g.sw;
      const v8 low = splat(lowest);
      for (int64_t ow = 0; ow < OWp; ow += 8)
        store8(h + ow, vmax(kw == 0 ? low : load8(h + ow), load8(src + ow)));
    }
  }
  for (int64_t oh = 0; oh < g.OH; ++oh) {
    float* yr = y + oh * g.OW;
    for (int64_t ow = 0; ow < OWp; ow += 8) {
      v8 acc = splat(lowest);
      for (int64_t kh = 0; kh < g.kh; ++kh) {
        const int64_t ih = oh * g.sh - g.pt + kh * g.dh;
        if (ih >= 0 && ih < g.H) acc = vmax(acc, load8(hm + ih * OWp + ow));
      }
      if (ow + 8 <= g.OW) {
        store8(yr + ow, acc);
      } else {
        for (int64_t l = 0; ow + l < g.OW; ++l) yr[ow + l] = acc[l];
      }
    }
  }
}
