// Body of the ConvSimd routines (see conv_simd.h), written once over 8-float GCC vectors: the
// AVX2 build turns each v8 operation into one ymm instruction (FMA contracted), the baseline
// build into two SSE ones. Include only from conv_simd.cc and avx2/conv_simd_avx2.cc, inside a
// namespace of their own; no standard-library templates here, so no AVX2 instantiation of a
// shared inline function can leak into the portable code at link time.
#include <cmath>
#include <cstdint>

#include "kernels/cpu/conv_simd.h"

typedef float v8 __attribute__((vector_size(32)));
typedef int v8i __attribute__((vector_size(32)));
// 16 floats: the channels-last stem's AVX-512 variant (AVX2 build only, under target("avx512f")).
typedef float v16 __attribute__((vector_size(64)));

static inline v8 splat(float x) { return v8{x, x, x, x, x, x, x, x}; }
#ifdef __AVX2__
// A 16-float broadcast for the AVX-512 functions (one vbroadcastss; v16{} + x would add a scalar
// zero first, and turn -0 into +0).
__attribute__((target("avx512f"), always_inline)) static inline v16 splat16(float x) {
  return v16{x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x};
}
#endif
static inline v8 load8(const float* p) {
  v8 v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
static inline void store8(float* p, v8 v) { __builtin_memcpy(p, &v, sizeof v); }
static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// Activation of a vector (Sigmoid falls back to scalar exp lane by lane).
static inline v8 activate(v8 v, const runnx::ConvEpilogue& e) {
  using A = runnx::ConvActivation;
  const v8 zero = splat(0.f);
  switch (e.act) {
    case A::kNone:
      return v;
    case A::kRelu:
      return v > zero ? v : zero;
    case A::kClip: {
      const v8 lo = splat(e.alpha), hi = splat(e.beta);
      v = v < lo ? lo : v;
      return v > hi ? hi : v;
    }
    case A::kLeakyRelu:
      return v >= zero ? v : v * splat(e.alpha);
    case A::kHardSwish: {
      v8 t = v * splat(e.alpha) + splat(e.beta);
      t = t < zero ? zero : t;
      t = t > splat(1.f) ? splat(1.f) : t;
      return v * t;
    }
    case A::kSigmoid: {
      for (int i = 0; i < 8; ++i) v[i] = 1.f / (1.f + std::exp(-v[i]));
      return v;
    }
  }
  return v;
}

static inline float activate1(float v, const runnx::ConvEpilogue& e) {
  using A = runnx::ConvActivation;
  switch (e.act) {
    case A::kNone:
      return v;
    case A::kRelu:
      return v > 0.f ? v : 0.f;
    case A::kClip:
      v = v < e.alpha ? e.alpha : v;
      return v > e.beta ? e.beta : v;
    case A::kLeakyRelu:
      return v >= 0.f ? v : v * e.alpha;
    case A::kHardSwish: {
      float t = v * e.alpha + e.beta;
      t = t < 0.f ? 0.f : (t > 1.f ? 1.f : t);
      return v * t;
    }
    case A::kSigmoid:
      return 1.f / (1.f + std::exp(-v));
  }
  return v;
}

static void epilogue_rows(const runnx::ConvEpilogue& e, int64_t m0, int64_t rows, int64_t cols,
                          float* y, int64_t ldy, const float* res, int64_t ldr) {
  for (int64_t r = 0; r < rows; ++r) {
    float* yr = y + r * ldy;
    const float* rr = res ? res + r * ldr : nullptr;
    const float b = e.bias ? e.bias[m0 + r] : 0.f;
    const v8 vb = splat(b);
    int64_t j = 0;
    for (; j + 8 <= cols; j += 8) {
      v8 v = load8(yr + j) + vb;
      if (rr) v += load8(rr + j);
      store8(yr + j, activate(v, e));
    }
    for (; j < cols; ++j) yr[j] = activate1(yr[j] + b + (rr ? rr[j] : 0.f), e);
  }
}

// ---- depthwise -------------------------------------------------------------------------------

// The zero-padded plane split into sh x sw stride phases, each Hq x Wq: phase (a, b) holds
// xpad[sh*r + a, sw*c + b]. An output (oh, ow) and tap (kh, kw) then reads phase
// (kh*dh % sh, kw*dw % sw) at (oh + kh*dh / sh, ow + kw*dw / sw), so over the flat index
// q = oh * Wq + ow every tap is one contiguous run: the whole plane is a single vector loop,
// however small its rows (columns ow >= OW are computed and dropped).
static void split_phases(const float* x, const runnx::DepthwiseGeom& g, float* ph) {
  const int64_t Hq = g.phase_h(), Wq = g.phase_w();
  for (int64_t b = 0; b < g.sw; ++b) {
    // Columns c of phase b read iw = sw*c + b - pl: the range [c0, c1) lands inside the row.
    const int64_t first = g.pl - b;  // c0 = ceil(first / sw) when first > 0
    int64_t c0 = first > 0 ? (first + g.sw - 1) / g.sw : 0;
    int64_t c1 = (g.W - 1 - b + g.pl) >= 0 ? (g.W - 1 - b + g.pl) / g.sw + 1 : 0;
    c0 = c0 < Wq ? c0 : Wq;
    c1 = c1 < Wq ? c1 : Wq;
    c1 = c1 > c0 ? c1 : c0;
    for (int64_t a = 0; a < g.sh; ++a) {
      float* dst = ph + (a * g.sw + b) * Hq * Wq;
      for (int64_t r = 0; r < Hq; ++r, dst += Wq) {
        const int64_t ih = g.sh * r + a - g.pt;
        if (ih < 0 || ih >= g.H) {
          for (int64_t c = 0; c < Wq; ++c) dst[c] = 0.f;
          continue;
        }
        const float* row = x + ih * g.W;  // column c reads row[sw * c + b - pl]
        for (int64_t c = 0; c < c0; ++c) dst[c] = 0.f;
        if (g.sw == 1) {
          if (c1 > c0) __builtin_memcpy(dst + c0, row + c0 + b - g.pl, sizeof(float) * (c1 - c0));
        } else {
          for (int64_t c = c0; c < c1; ++c) dst[c] = row[g.sw * c + b - g.pl];
        }
        for (int64_t c = c1; c < Wq; ++c) dst[c] = 0.f;
      }
    }
  }
}

// acc[q] = sum over taps of w[t] * tap[t][q] for q < n; NT > 0: tap count known at compile time.
template <int NT>
static void depthwise_flat(const float* const* tap, const float* w, int ntaps, float b,
                           int64_t n, float* acc) {
  const int nt = NT > 0 ? NT : ntaps;
  int64_t q = 0;
  if (NT > 0) {
    v8 wv[NT > 0 ? NT : 1];  // the weights stay in registers across the plane
    for (int t = 0; t < NT; ++t) wv[t] = splat(w[t]);
    for (; q + 8 <= n; q += 8) {
      v8 s = splat(b);
      for (int t = 0; t < NT; ++t) s += wv[t] * load8(tap[t] + q);
      store8(acc + q, s);
    }
  }
  for (; q + 8 <= n; q += 8) {
    v8 s = splat(b);
    for (int t = 0; t < nt; ++t) s += splat(w[t]) * load8(tap[t] + q);
    store8(acc + q, s);
  }
  for (; q < n; ++q) {
    float s = b;
    for (int t = 0; t < nt; ++t) s += w[t] * tap[t][q];
    acc[q] = s;
  }
}

#include "kernels/cpu/dwconv_3x3_impl.h"

static void depthwise_plane(const float* x, const float* w, const runnx::DepthwiseGeom& g,
                            const runnx::ConvEpilogue& e, int64_t m, const float* res, float* y,
                            float* scratch) {
  if (g.is_3x3()) return dw3x3_plane(x, w, g, e, m, res, y, scratch);
  const int64_t Hq = g.phase_h(), Wq = g.phase_w();
  float* acc = scratch + g.sh * g.sw * Hq * Wq;
  split_phases(x, g, scratch);
  const float* tap[256];
  int nt = 0;
  for (int64_t kh = 0; kh < g.kh; ++kh)
    for (int64_t kw = 0; kw < g.kw; ++kw) {
      const int64_t th = kh * g.dh, tw = kw * g.dw;
      tap[nt++] = scratch + ((th % g.sh) * g.sw + tw % g.sw) * Hq * Wq + (th / g.sh) * Wq +
                  tw / g.sw;
    }
  // Rows run up to OW inside the last row: fewer than OH * Wq, so no tap reads past its phase.
  const int64_t n = (g.OH - 1) * Wq + g.OW;
  const float b = e.bias ? e.bias[m] : 0.f;
  if (nt == 9)
    depthwise_flat<9>(tap, w, nt, b, n, acc);
  else
    depthwise_flat<0>(tap, w, nt, b, n, acc);
  // Rows out of the flat accumulator (plus the residual), then the activation over the whole
  // contiguous plane: vector work even when rows are shorter than a vector.
  for (int64_t oh = 0; oh < g.OH; ++oh) {
    const float* a = acc + oh * Wq;
    float* yr = y + oh * g.OW;
    if (res) {
      const float* rr = res + oh * g.OW;
      for (int64_t ow = 0; ow < g.OW; ++ow) yr[ow] = a[ow] + rr[ow];
    } else {
      for (int64_t ow = 0; ow < g.OW; ++ow) yr[ow] = a[ow];
    }
  }
  if (e.act == runnx::ConvActivation::kNone) return;
  const int64_t P = g.OH * g.OW;
  int64_t q = 0;
  for (; q + 8 <= P; q += 8) store8(y + q, activate(load8(y + q), e));
  for (; q < P; ++q) y[q] = activate1(y[q], e);
}

// ---- Winograd F(4x4, 3x3) --------------------------------------------------------------------

// B^T d for one column of six values (each lane a different tile). Templates over the vector
// type (v8, or v16 in the AVX-512 transforms, into which they are inlined); constants fold.
template <typename V>
__attribute__((always_inline)) static inline void bt6(const V* d, int64_t s, V* o, int64_t so) {
  const V d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s], d5 = d[5 * s];
  const V four = V{} + 4.f, five = V{} + 5.f, two = V{} + 2.f;
  o[0] = four * d0 - five * d2 + d4;
  o[so] = d4 + d3 - four * (d1 + d2);
  o[2 * so] = d4 - d3 + four * (d1 - d2);
  o[3 * so] = d4 - d2 + two * (d3 - d1);
  o[4 * so] = d4 - d2 - two * (d3 - d1);
  o[5 * so] = four * d1 - five * d3 + d5;
}

// A^T m for six values -> four.
template <typename V>
__attribute__((always_inline)) static inline void at6(const V* m, int64_t s, V* o, int64_t so) {
  const V m0 = m[0], m1 = m[s], m2 = m[2 * s], m3 = m[3 * s], m4 = m[4 * s], m5 = m[5 * s];
  const V a = m1 + m2, b = m1 - m2, c = m3 + m4, d = m3 - m4;
  o[0] = m0 + a + c;
  o[so] = b + (V{} + 2.f) * d;
  o[2 * so] = a + (V{} + 4.f) * c;
  o[3 * so] = b + (V{} + 8.f) * d + m5;
}

// 32 floats p[0..31] (8 tiles x 4 columns: p[0..15] at lo, p[16..31] at hi) -> c[s][l] = p[4l + s], s < 4.
static inline void deinterleave4(const float* lo, const float* hi, v8* c) {
  const v8 a0 = load8(lo), a1 = load8(lo + 8), a2 = load8(hi), a3 = load8(hi + 8);
  const v8 t0 = __builtin_shuffle(a0, a1, v8i{0, 4, 8, 12, 1, 5, 9, 13});
  const v8 t1 = __builtin_shuffle(a0, a1, v8i{2, 6, 10, 14, 3, 7, 11, 15});
  const v8 t2 = __builtin_shuffle(a2, a3, v8i{0, 4, 8, 12, 1, 5, 9, 13});
  const v8 t3 = __builtin_shuffle(a2, a3, v8i{2, 6, 10, 14, 3, 7, 11, 15});
  c[0] = __builtin_shuffle(t0, t2, v8i{0, 1, 2, 3, 8, 9, 10, 11});
  c[1] = __builtin_shuffle(t0, t2, v8i{4, 5, 6, 7, 12, 13, 14, 15});
  c[2] = __builtin_shuffle(t1, t3, v8i{0, 1, 2, 3, 8, 9, 10, 11});
  c[3] = __builtin_shuffle(t1, t3, v8i{4, 5, 6, 7, 12, 13, 14, 15});
}

// The inverse: c[s][l] -> out[4l + s] as four vectors of 8 consecutive floats.
static inline void interleave4(const v8* c, v8* out) {
  const v8 u0 = __builtin_shuffle(c[0], c[1], v8i{0, 8, 1, 9, 2, 10, 3, 11});
  const v8 u1 = __builtin_shuffle(c[0], c[1], v8i{4, 12, 5, 13, 6, 14, 7, 15});
  const v8 u2 = __builtin_shuffle(c[2], c[3], v8i{0, 8, 1, 9, 2, 10, 3, 11});
  const v8 u3 = __builtin_shuffle(c[2], c[3], v8i{4, 12, 5, 13, 6, 14, 7, 15});
  out[0] = __builtin_shuffle(u0, u2, v8i{0, 1, 8, 9, 2, 3, 10, 11});
  out[1] = __builtin_shuffle(u0, u2, v8i{4, 5, 12, 13, 6, 7, 14, 15});
  out[2] = __builtin_shuffle(u1, u3, v8i{0, 1, 8, 9, 2, 3, 10, 11});
  out[3] = __builtin_shuffle(u1, u3, v8i{4, 5, 12, 13, 6, 7, 14, 15});
}

// Eight horizontally adjacent tiles at once, lane l = tile tj0 + l: a 6x6 input window row is 34
// consecutive floats of the padded plane, split into its six columns by shuffles (no gathers).
// The plane is padded to whole groups of 8 tiles, so a partial group reads zeros, not past it,
// and is stored whole: its extra lanes land on the next tile row's first tiles (stored after
// them, in order) or in the channel's padding (lane by lane, ResNet-50's 7- and 4-tile rows at
// 28x28 and 14x14 spent most of the transform extracting lanes).
// Rows of exactly 4 tiles (14x14 and 16x16 outputs) take two tile rows per group: lanes 0-3 are
// row ti, lanes 4-7 row ti + 1 (8 consecutive tiles in V); one row per group left half the
// lanes idle in both transforms.
static void winograd_input(const float* xp, const runnx::WinogradGeom& g, int64_t c, float* V,
                           int64_t ldv) {
  const int64_t pw = g.pad_w(), Tp = g.tile_stride();
  const bool pairs = g.tw == 4;
  v8 d[36], t[36];
  for (int64_t ti = 0; ti < g.th; ti += pairs ? 2 : 1)
    for (int64_t tj0 = 0; tj0 < g.tw; tj0 += 8) {
      const float* base = xp + 4 * ti * pw + 4 * tj0;
      // The second tile row's window (the first again past the last row: its lanes land in the padding).
      const float* base2 = pairs && ti + 1 < g.th ? base + 4 * pw : base;
      for (int r = 0; r < 6; ++r) {
        const float* row = base + r * pw;
        v8 col[4];
        if (pairs) {
          const float* row2 = base2 + r * pw;
          deinterleave4(row, row2, col);
          // Column 4 (5) of lane l is column 0 (1) of lane l + 1, but of row[16] (17) for lane 3
          // and row2[16] (17) for lane 7.
          const v8 e4 = v8{0.f, 0.f, 0.f, row[16], 0.f, 0.f, 0.f, row2[16]};
          const v8 e5 = v8{0.f, 0.f, 0.f, row[17], 0.f, 0.f, 0.f, row2[17]};
          d[r * 6 + 4] = __builtin_shuffle(col[0], e4, v8i{1, 2, 3, 11, 5, 6, 7, 15});
          d[r * 6 + 5] = __builtin_shuffle(col[1], e5, v8i{1, 2, 3, 11, 5, 6, 7, 15});
        } else {
          deinterleave4(row, row + 16, col);
          d[r * 6 + 4] = __builtin_shuffle(col[0], splat(row[32]), v8i{1, 2, 3, 4, 5, 6, 7, 8});
          d[r * 6 + 5] = __builtin_shuffle(col[1], splat(row[33]), v8i{1, 2, 3, 4, 5, 6, 7, 8});
        }
        d[r * 6 + 0] = col[0];
        d[r * 6 + 1] = col[1];
        d[r * 6 + 2] = col[2];
        d[r * 6 + 3] = col[3];
      }
      for (int s = 0; s < 6; ++s) bt6(d + s, 6, t + s, 6);  // columns
      for (int r = 0; r < 6; ++r) bt6(t + r * 6, 1, d + r * 6, 1);  // rows
      float* out = V + c * Tp + ti * g.tw + tj0;
      for (int xi = 0; xi < 36; ++xi) store8(out + xi * ldv, d[xi]);
    }
}

static void winograd_output(const float* Mo, int64_t ldm, const runnx::WinogradGeom& g, int64_t m,
                            const runnx::ConvEpilogue& e, const float* res, float* y) {
  const int64_t Tp = g.tile_stride();
  runnx::ConvEpilogue act = e;
  act.bias = nullptr;
  const v8 vb = splat(e.bias ? e.bias[m] : 0.f);
  const bool pairs = g.tw == 4;  // lanes 4-7 are tile row ti + 1 (see winograd_input)
  v8 d[36], t[24], o[16];
  alignas(32) float tmp[32];
  for (int64_t ti = 0; ti < g.th; ti += pairs ? 2 : 1)
    for (int64_t tj0 = 0; tj0 < g.tw; tj0 += 8) {
      // A partial group's extra lanes read the next tiles or the padding; their outputs are dropped.
      const float* in = Mo + m * Tp + ti * g.tw + tj0;
      for (int xi = 0; xi < 36; ++xi) d[xi] = load8(in + xi * ldm);
      for (int s = 0; s < 6; ++s) at6(d + s, 6, t + s, 6);  // columns: t is 4 x 6
      for (int r = 0; r < 4; ++r) at6(t + r * 6, 1, o + r * 4, 1);  // rows: o is 4 x 4
      // Output row oh0 + r, columns 4*tj0 .. +32: interleave the four column vectors (in pairs,
      // row[0..1] are row oh0 + r's 16 columns, row[2..3] row oh0 + 4 + r's).
      const int64_t ow0 = 4 * tj0, n = min64(pairs ? 16 : 32, g.OW - ow0);
      // n outputs from v[0..] at off: whole vectors, then the last n % 8 through tmp.
      auto put = [&](const v8* v, int64_t off) {
        const int64_t full = n / 8;
        for (int64_t q = 0; q < full; ++q) {
          v8 u = v[q] + vb;
          if (res) u += load8(res + off + 8 * q);
          store8(y + off + 8 * q, activate(u, act));
        }
        if (8 * full < n) {
          store8(tmp, v[full] + vb);
          for (int64_t k = 8 * full; k < n; ++k)
            y[off + k] = activate1(tmp[k - 8 * full] + (res ? res[off + k] : 0.f), act);
        }
      };
      for (int r = 0; r < 4 && 4 * ti + r < g.OH; ++r) {
        v8 row[4];
        interleave4(o + r * 4, row);
        put(row, (4 * ti + r) * g.OW + ow0);
        if (pairs && 4 * ti + 4 + r < g.OH) put(row + 2, (4 * ti + 4 + r) * g.OW + ow0);
      }
    }
}

// Channels-last: each lane a channel, a tile's 36 window vectors loaded straight from the image
// (no padded copy: a position outside it is a zero vector), one vector V of channels at a time
// (v8; v16 under AVX-512, below). Inlined into each entry point, so it takes that one's ISA.
template <typename V>
__attribute__((always_inline)) static inline void winograd_input_nhwc_body(
    const float* x, int64_t H, int64_t W, int64_t pt, int64_t pl, const runnx::WinogradGeom& g, int64_t t0,
    int64_t t1, float* Vout, int64_t ldv) {
  constexpr int64_t L = sizeof(V) / sizeof(float);
  const int64_t C = g.C;
  const float* src[36];
  V d[36], t[36];
  for (int64_t tile = t0; tile < t1; ++tile) {
    const int64_t ih0 = 4 * (tile / g.tw) - pt, iw0 = 4 * (tile % g.tw) - pl;
    for (int r = 0; r < 6; ++r)
      for (int s = 0; s < 6; ++s) {
        const int64_t ih = ih0 + r, iw = iw0 + s;
        src[r * 6 + s] = ih >= 0 && ih < H && iw >= 0 && iw < W ? x + (ih * W + iw) * C : nullptr;
      }
    float* out = Vout + tile * C;
    for (int64_t c = 0; c < C; c += L) {
      for (int i = 0; i < 36; ++i) {
        d[i] = V{};
        if (src[i]) __builtin_memcpy(&d[i], src[i] + c, sizeof(V));
      }
      for (int s = 0; s < 6; ++s) bt6(d + s, 6, t + s, 6);  // columns
      for (int r = 0; r < 6; ++r) bt6(t + r * 6, 1, d + r * 6, 1);  // rows
      for (int xi = 0; xi < 36; ++xi) __builtin_memcpy(out + xi * ldv + c, &d[xi], sizeof(V));
    }
  }
}

template <typename V>
__attribute__((always_inline)) static inline void winograd_output_nhwc_body(
    const float* Mo, int64_t ldm, const runnx::WinogradGeom& g, int64_t t0, int64_t t1,
    const runnx::ConvEpilogue& e, const float* res, float* y) {
  constexpr int64_t L = sizeof(V) / sizeof(float);
  const int64_t M = g.M;
  V d[36], t[24], o[16];
  for (int64_t tile = t0; tile < t1; ++tile) {
    const int64_t oh0 = 4 * (tile / g.tw), ow0 = 4 * (tile % g.tw);
    const int64_t rows = min64(4, g.OH - oh0), cols = min64(4, g.OW - ow0);
    const float* in = Mo + tile * M;
    for (int64_t m = 0; m < M; m += L) {
      for (int xi = 0; xi < 36; ++xi) __builtin_memcpy(&d[xi], in + xi * ldm + m, sizeof(V));
      for (int s = 0; s < 6; ++s) at6(d + s, 6, t + s, 6);  // columns: t is 4 x 6
      for (int r = 0; r < 4; ++r) at6(t + r * 6, 1, o + r * 4, 1);  // rows: o is 4 x 4
      V vb = V{};
      if (e.bias) __builtin_memcpy(&vb, e.bias + m, sizeof(V));
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t s = 0; s < cols; ++s) {
          const int64_t off = ((oh0 + r) * g.OW + ow0 + s) * M + m;
          const V u = o[r * 4 + s] + vb;
          for (int64_t h = 0; h < L; h += 8) {  // the epilogue 8 channels at a time
            v8 w;
            __builtin_memcpy(&w, reinterpret_cast<const float*>(&u) + h, sizeof w);
            if (res) w += load8(res + off + h);
            store8(y + off + h, activate(w, e));
          }
        }
    }
  }
}

#ifdef __AVX2__
// The transforms in 512-bit registers (a CPU with AVX-512F; channels a multiple of 16): half the
// loads, stores and arithmetic of the 8-channel steps, which Zen 5 runs at the same rate per
// instruction (ResNet-50 b1: the two transforms held ~7% of its samples).
__attribute__((target("avx512f"))) static void winograd_input_nhwc_512(
    const float* x, int64_t H, int64_t W, int64_t pt, int64_t pl, const runnx::WinogradGeom& g, int64_t t0,
    int64_t t1, float* V, int64_t ldv) {
  winograd_input_nhwc_body<v16>(x, H, W, pt, pl, g, t0, t1, V, ldv);
}

__attribute__((target("avx512f"))) static void winograd_output_nhwc_512(
    const float* Mo, int64_t ldm, const runnx::WinogradGeom& g, int64_t t0, int64_t t1,
    const runnx::ConvEpilogue& e, const float* res, float* y) {
  winograd_output_nhwc_body<v16>(Mo, ldm, g, t0, t1, e, res, y);
}
#endif

static void winograd_input_nhwc(const float* x, int64_t H, int64_t W, int64_t pt, int64_t pl,
                                const runnx::WinogradGeom& g, int64_t t0, int64_t t1, float* V,
                                int64_t ldv) {
#ifdef __AVX2__
  if (g.C % 16 == 0 && runnx::sgemm_avx2_uses_avx512())
    return winograd_input_nhwc_512(x, H, W, pt, pl, g, t0, t1, V, ldv);
#endif
  winograd_input_nhwc_body<v8>(x, H, W, pt, pl, g, t0, t1, V, ldv);
}

static void winograd_output_nhwc(const float* Mo, int64_t ldm, const runnx::WinogradGeom& g,
                                 int64_t t0, int64_t t1, const runnx::ConvEpilogue& e,
                                 const float* res, float* y) {
#ifdef __AVX2__
  if (g.M % 16 == 0 && runnx::sgemm_avx2_uses_avx512())
    return winograd_output_nhwc_512(Mo, ldm, g, t0, t1, e, res, y);
#endif
  winograd_output_nhwc_body<v8>(Mo, ldm, g, t0, t1, e, res, y);
}

#include "kernels/cpu/dwconv_nhwc_impl.h"
#include "kernels/cpu/conv_direct_nhwc_impl.h"
#include "kernels/cpu/conv_direct_nchw_impl.h"
#include "kernels/cpu/max_pool_impl.h"

// Stride 2 reads 16 floats and keeps the even ones (the last vector only while it stays within
// the 2n - 1 floats the scalar loop would read).
static void copy_strided(const float* src, int64_t stride, int64_t n, float* dst) {
  int64_t i = 0;
  if (stride == 2 && n >= 9) {
    // 16 floats read per 8 out; the last 8 (overlapping) from a window one float earlier, odd
    // lanes, so nothing past src[2 * (n - 1)] is read (the scalar tail was ~10% of a 3x3/s2 conv).
    for (; i + 8 < n; i += 8) {
      const v8 a = load8(src + 2 * i), b = load8(src + 2 * i + 8);
      store8(dst + i, __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14));
    }
    const float* s = src + 2 * (n - 8) - 1;
    const v8 a = load8(s), b = load8(s + 8);
    store8(dst + n - 8, __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15));
    return;
  }
  for (; i < n; ++i) dst[i] = src[i * stride];
}

static const runnx::ConvSimd kConvSimd = {epilogue_rows, depthwise_plane, winograd_input,
                                          winograd_output, winograd_input_nhwc,
                                          winograd_output_nhwc, depthwise_nhwc_row,
                                          direct_nhwc_row, direct_nchw_phases,
                                          direct_nchw_row, copy_strided, max_pool_plane};
