// Depthwise 3x3, stride 1 or 2, dilation 1, any pads: the case MobileNet-style models spend their
// depthwise time in. Part of conv_simd_impl.h (uses its v8 helpers; compiled portable and AVX2).
//
// The plane is copied once into a zero-bordered scratch plane whose rows are long enough for
// whole 8-wide output chunks, then each output row is computed chunk by chunk straight into y
// with bias, residual and activation applied in registers (no accumulator plane, no second pass).
// Stride 2 splits even/odd input columns with in-lane shuffles of four loads per tap row.
// A chunk that runs past the row end writes into the next row, which is computed (and
// overwritten) after it; only a chunk that would leave the plane stores element by element.
// Row length and scratch size: DepthwiseGeom::dw3x3_row() / scratch_floats().

// Rows of wp floats (a multiple of 8): zeros, the input row at column pl. GCC would turn the
// short zero and copy loops into memset/memcpy calls, one per row: on a 7x7 plane those calls
// cost more than the convolution.
__attribute__((optimize("no-tree-loop-distribute-patterns"))) static void dw3x3_pad_plane(
    const float* x, const runnx::DepthwiseGeom& g, int64_t rows, int64_t wp, float* xp) {
  const int64_t lo = min64(g.pl, wp);           // first column holding input
  const int64_t n = min64(g.W, wp - lo);        // input columns that fit
  const v8 zero = splat(0.f);
  for (int64_t r = 0; r < rows; ++r) {
    float* dst = xp + r * wp;
    for (int64_t c = 0; c < wp; c += 8) store8(dst + c, zero);
    const int64_t ih = r - g.pt;
    if (ih < 0 || ih >= g.H) continue;
    const float* src = x + ih * g.W;
    int64_t c = 0;
    for (; c + 8 <= n; c += 8) store8(dst + lo + c, load8(src + c));
    if (c < n && (ih * g.W + c + 8 <= g.H * g.W) && lo + c + 8 <= wp) {
      // The row's tail as one vector: the load runs on into the plane's next rows (it stays
      // inside the plane), the lanes past this row are zeroed.
      const v8i lane = {0, 1, 2, 3, 4, 5, 6, 7};
      const int k = static_cast<int>(n - c);
      const v8i keep = lane < v8i{k, k, k, k, k, k, k, k};
      store8(dst + lo + c, keep ? load8(src + c) : zero);
      continue;
    }
    for (; c < n; ++c) dst[lo + c] = src[c];
  }
}

// One tap row for 8 outputs at padded column j (stride 1): w0*r[j] + w1*r[j+1] + w2*r[j+2].
static inline v8 dw_row_s1(const float* r, v8 w0, v8 w1, v8 w2) {
  return w0 * load8(r) + w1 * load8(r + 1) + w2 * load8(r + 2);
}

// Stride 2: outputs read r[2o], r[2o+1], r[2o+2] for o = 0..7 (r points at 2 * chunk start).
// In-lane shuffles only (one cycle each): every tap vector holds outputs in the order
// 0 1 4 5 2 3 6 7, and dw_s2_order puts the chunk's sum back in order once.
static inline v8 dw_row_s2(const float* r, v8 w0, v8 w1, v8 w2) {
  const v8 a = load8(r), b = load8(r + 8), c = load8(r + 2), d = load8(r + 10);
  const v8 even = __builtin_shuffle(a, b, v8i{0, 2, 8, 10, 4, 6, 12, 14});
  const v8 odd = __builtin_shuffle(a, b, v8i{1, 3, 9, 11, 5, 7, 13, 15});
  const v8 next = __builtin_shuffle(c, d, v8i{0, 2, 8, 10, 4, 6, 12, 14});
  return w0 * even + w1 * odd + w2 * next;
}

static inline v8 dw_s2_order(v8 v) { return __builtin_shuffle(v, v8i{0, 1, 4, 5, 2, 3, 6, 7}); }

template <int S>
static void dw3x3_rows(const float* xp, int64_t wp, const float* w, const runnx::DepthwiseGeom& g,
                       const runnx::ConvEpilogue& act, float b, const float* res, float* y) {
  v8 wv[9];
  for (int t = 0; t < 9; ++t) wv[t] = splat(w[t]);
  const v8 vb = splat(b);
  for (int64_t oh = 0; oh < g.OH; ++oh) {
    const float* r0 = xp + oh * S * wp;
    const float* r1 = r0 + wp;
    const float* r2 = r1 + wp;
    float* yr = y + oh * g.OW;
    const float* rr = res ? res + oh * g.OW : nullptr;
    const int64_t room = g.OH * g.OW - oh * g.OW;  // floats of the plane from yr on
    for (int64_t j = 0; j < g.OW; j += 8) {
      v8 v;
      if (S == 1) {
        v = vb + dw_row_s1(r0 + j, wv[0], wv[1], wv[2]);
        v += dw_row_s1(r1 + j, wv[3], wv[4], wv[5]) + dw_row_s1(r2 + j, wv[6], wv[7], wv[8]);
      } else {
        v = vb + dw_s2_order(dw_row_s2(r0 + 2 * j, wv[0], wv[1], wv[2]) +
                             dw_row_s2(r1 + 2 * j, wv[3], wv[4], wv[5]) +
                             dw_row_s2(r2 + 2 * j, wv[6], wv[7], wv[8]));
      }
      if (j + 8 <= room) {
        if (rr) v += load8(rr + j);
        store8(yr + j, activate(v, act));
      } else {  // the plane's last chunk: residual and store through a full vector
        float t[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
        const int64_t k = room - j;
        if (rr) __builtin_memcpy(t, rr + j, sizeof(float) * k);
        store8(t, activate(v + load8(t), act));
        __builtin_memcpy(yr + j, t, sizeof(float) * k);
      }
    }
  }
}

static void dw3x3_plane(const float* x, const float* w, const runnx::DepthwiseGeom& g,
                        const runnx::ConvEpilogue& e, int64_t m, const float* res, float* y,
                        float* scratch) {
  const int64_t wp = g.dw3x3_row(), rows = (g.OH - 1) * g.sh + 3;
  dw3x3_pad_plane(x, g, rows, wp, scratch);
  runnx::ConvEpilogue act = e;
  act.bias = nullptr;
  const float b = e.bias ? e.bias[m] : 0.f;
  if (g.sh == 1)
    dw3x3_rows<1>(scratch, wp, w, g, act, b, res, y);
  else
    dw3x3_rows<2>(scratch, wp, w, g, act, b, res, y);
}
