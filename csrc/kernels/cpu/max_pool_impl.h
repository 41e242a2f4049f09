// 2-D (and 1-D) float MaxPool of one plane, separably and vertical first: for each output row,
// the max over its kernel's input rows (contiguous vector maxes straight into a padded row
// buffer), then the max over the kernel's columns of that one row. The padded row is split into
// its stride phases (stride 2 by shuffles), so every column tap is one contiguous vector max.
// Horizontal first did the column pass for every input row, twice the rows of a stride-2 pool:
// ResNet-50's 3x3/s2 pool at 112x112 ran 2x onnxruntime's time. NaN inputs never win a
// comparison, as in the scalar pool. Part of conv_simd_impl.h.

// The running max acc and a new value v: a NaN v never replaces acc.
static inline v8 vmax(v8 acc, v8 v) { return v > acc ? v : acc; }
static inline float smax(float acc, float v) { return v > acc ? v : acc; }

static void max_pool_plane(const float* x, const runnx::MaxPoolGeom& g, int64_t oh0, int64_t oh1, float* y,
                           float* scratch) {
  const float lowest = -3.4028234663852886e38f;
  const v8 low = splat(lowest);
  const int64_t OWp = g.out_w_padded(), Wr = g.phase_stride(), L = g.sw * Wr;
  float* h = scratch;      // one output row, OWp floats
  float* xp = h + OWp;     // the padded row: xp[i] = column i - pl, lowest() outside the row
  float* ph = xp + L;      // sw phases of Wr floats (stride 1 reads xp itself)
  // Columns [lo, hi) of xp lie inside the input row; the rest stays lowest() for every row.
  const int64_t lo = min64(g.pl, L), hi = min64(L, g.pl + g.W) > lo ? min64(L, g.pl + g.W) : lo;
  const int64_t n = hi - lo;
  const float* row0 = n > 0 ? x + (lo - g.pl) : x;  // (no input column read when n == 0)
  for (int64_t i = 0; i < lo; ++i) xp[i] = lowest;
  for (int64_t i = hi; i < L; ++i) xp[i] = lowest;
  float* vm = xp + lo;
  for (int64_t oh = oh0; oh < oh1; ++oh) {
    // The window's rows inside the input, maxed in registers up to kRows at a time.
    constexpr int kRows = 8;
    const float* rows[kRows];
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) store8(vm + j, low);
    for (; j < n; ++j) vm[j] = lowest;
    for (int64_t kh = 0; kh < g.kh;) {
      int nr = 0;
      for (; kh < g.kh && nr < kRows; ++kh) {
        const int64_t ih = oh * g.sh - g.pt + kh * g.dh;
        if (ih >= 0 && ih < g.H) rows[nr++] = row0 + ih * g.W;
      }
      for (j = 0; j + 8 <= n; j += 8) {
        v8 acc = load8(vm + j);
        for (int r = 0; r < nr; ++r) acc = vmax(acc, load8(rows[r] + j));
        store8(vm + j, acc);
      }
      for (; j < n; ++j)
        for (int r = 0; r < nr; ++r) vm[j] = smax(vm[j], rows[r][j]);
    }
    const float* phase = xp;
    if (g.sw == 2) {
      for (int64_t q = 0; q < Wr; q += 8) {
        const v8 a = load8(xp + 2 * q), b = load8(xp + 2 * q + 8);
        store8(ph + q, __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14));
        store8(ph + Wr + q, __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15));
      }
      phase = ph;
    } else if (g.sw > 2) {
      for (int64_t b = 0; b < g.sw; ++b)
        for (int64_t q = 0; q < Wr; ++q) ph[b * Wr + q] = xp[g.sw * q + b];
      phase = ph;
    }
    // Tap by tap over the whole row (kw may be large: no per-vector divisions or tap arrays).
    for (int64_t kw = 0; kw < g.kw; ++kw) {
      const int64_t t = kw * g.dw;
      const float* src = phase + (t % g.sw) * Wr + t / g.sw;
      for (int64_t ow = 0; ow < OWp; ow += 8) store8(h + ow, vmax(kw == 0 ? low : load8(h + ow), load8(src + ow)));
    }
    __builtin_memcpy(y + oh * g.OW, h, g.OW * sizeof(float));
  }
}
