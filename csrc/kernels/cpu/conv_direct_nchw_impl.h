// Direct group-1 convolution of few input channels (a stem: 7x7/s2 on RGB) from an NCHW image
// to NCHW planes, 8 output pixels per vector. Each input row is first split into its stride
// phases (phase b holds the zero-padded row's columns sw*j + b), so a tap reads one contiguous
// run for 8 neighbouring outputs. A step covers 4 output channels x up to 24 pixels: per tap
// 3 vector loads and 4 weight broadcasts feed 12 FMAs into 12 independent accumulators (the
// channels-last kernel, 2 pixels x 32 channels, reads a weight vector per FMA pair and ran the
// 7x7 stem at 56 GFLOP/s). Taps whose row lies in the padding read a zero row instead of
// leaving the tap list, so every row uses one list. Part of conv_simd_impl.h.

// Phase rows [q0, q1) of the image: q = c * H + ih, each row giving sw phase rows of phase_w().
static void direct_nchw_phases(const float* x, const runnx::DirectNchwGeom& g, int64_t q0, int64_t q1,
                               float* ph) {
  const int64_t Wq = g.phase_w();
  for (int64_t q = q0; q < q1; ++q) {
    const float* row = x + q * g.W;
    for (int64_t b = 0; b < g.sw; ++b) {
      float* dst = ph + (q * g.sw + b) * Wq;
      for (int64_t j = 0; j < Wq; ++j) {
        const int64_t iw = g.sw * j + b - g.pl;
        dst[j] = iw >= 0 && iw < g.W ? row[iw] : 0.f;
      }
    }
  }
  if (q1 == g.C * g.H)  // the zero row that taps in the vertical padding read
    for (int64_t j = 0; j < Wq; ++j) ph[g.C * g.H * g.sw * Wq + j] = 0.f;
}

template <int NV>
static void direct_nchw_block(const float* ph, const int64_t* xoff, int64_t ntaps, const float* wb,
                              int64_t j0, v8 (*acc)[3]) {
  v8 a[4][NV];
  for (int m = 0; m < 4; ++m)
    for (int v = 0; v < NV; ++v) a[m][v] = splat(0.f);
  const float* base = ph + j0;
  for (int64_t t = 0; t < ntaps; ++t, wb += 4) {
    const float* xr = base + xoff[t];
    v8 xv[NV];
    for (int v = 0; v < NV; ++v) xv[v] = load8(xr + 8 * v);
    for (int m = 0; m < 4; ++m) {
      const v8 wv = splat(wb[m]);
      for (int v = 0; v < NV; ++v) a[m][v] += wv * xv[v];
    }
  }
  for (int m = 0; m < 4; ++m)
    for (int v = 0; v < NV; ++v) acc[m][v] = a[m][v];
}

// Offsets of the taps of output row oh into the phases (a tap in the vertical padding reads the zero row).
static void direct_nchw_taps(const runnx::DirectNchwGeom& g, int64_t oh, int64_t* xoff) {
  const int64_t Wq = g.phase_w(), zero_row = g.C * g.H * g.sw * Wq;
  for (int64_t c = 0, t = 0; c < g.C; ++c)
    for (int64_t kh = 0; kh < g.kh; ++kh) {
      const int64_t ih = oh * g.sh - g.pt + kh * g.dh;
      for (int64_t kw = 0; kw < g.kw; ++kw, ++t) {
        const int64_t s = kw * g.dw;
        xoff[t] = ih < 0 || ih >= g.H ? zero_row : ((c * g.H + ih) * g.sw + s % g.sw) * Wq + s / g.sw;
      }
    }
}

// Channel m's 8 pixels from column ow of output row oh (fewer at the row's end) out through the epilogue.
static inline void direct_nchw_store(v8 acc, const runnx::DirectNchwGeom& g, const runnx::ConvEpilogue& e,
                                     int64_t oh, int64_t m, int64_t ow, const float* res, float* y) {
  const int64_t o = m * g.OH * g.OW + oh * g.OW, k = min64(8, g.OW - ow);
  v8 r = acc + splat(e.bias ? e.bias[m] : 0.f);
  if (k == 8) {
    if (res) r += load8(res + o + ow);
    store8(y + o + ow, activate(r, e));
  } else {
    for (int64_t l = 0; l < k; ++l) y[o + ow + l] = activate1(r[l] + (res ? res[o + ow + l] : 0.f), e);
  }
}

#ifdef __AVX2__
// The AVX-512 block (AVX2 build, on a CPU with AVX-512F): 4 channels x NV vectors of 16 pixels, the
// 8-pixel block's loop in 512-bit registers, which Zen 5 runs at twice the 256-bit FMA rate.
template <int NV>
__attribute__((target("avx512f"))) static void direct_nchw_block_512(const float* ph, const int64_t* xoff,
                                                                      int64_t ntaps, const float* wb, int64_t j0,
                                                                      v16 (*acc)[4]) {
  v16 a[4][NV];
  for (int m = 0; m < 4; ++m)
    for (int v = 0; v < NV; ++v) a[m][v] = v16{};
  const float* base = ph + j0;
  for (int64_t t = 0; t < ntaps; ++t, wb += 4) {
    const float* xr = base + xoff[t];
    v16 xv[NV];
    for (int v = 0; v < NV; ++v) __builtin_memcpy(&xv[v], xr + 16 * v, sizeof(v16));
    for (int m = 0; m < 4; ++m) {
      const v16 wv = splat16(wb[m]);  // a broadcast load
      for (int v = 0; v < NV; ++v) a[m][v] += wv * xv[v];
    }
  }
  for (int m = 0; m < 4; ++m)
    for (int v = 0; v < NV; ++v) acc[m][v] = a[m][v];
}

// direct_nchw_row in 16-pixel vectors, a row's vectors in blocks of at most 4 cut evenly (7 as 4 + 3,
// not 3 + 3 + 1: a block of one vector has 4 FMA chains, too few for the FMA latency).
// ResNet-50's 7x7/s2 stem (112 columns), b1 on 2 threads, Zen 5: 1164 -> 715 us.
__attribute__((target("avx512f"))) static void direct_nchw_row_512(const float* ph, const float* w,
                                                                    const runnx::DirectNchwGeom& g,
                                                                    const runnx::ConvEpilogue& e, int64_t oh,
                                                                    int64_t m_begin, int64_t m_end,
                                                                    const float* res, float* y) {
  const int64_t T = g.C * g.kh * g.kw;
  int64_t xoff[runnx::DirectNchwGeom::kMaxTaps];
  direct_nchw_taps(g, oh, xoff);
  const int64_t vecs = (g.OW + 15) / 16, blocks = (vecs + 3) / 4;
  v16 acc[4][4];
  for (int64_t m0 = m_begin; m0 < m_end; m0 += 4) {
    const float* wb = w + m0 * T;  // [T][4] for channels m0..m0+3
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t v0 = b * vecs / blocks, nv = (b + 1) * vecs / blocks - v0, j0 = 16 * v0;
      switch (nv) {
        case 4: direct_nchw_block_512<4>(ph, xoff, T, wb, j0, acc); break;
        case 3: direct_nchw_block_512<3>(ph, xoff, T, wb, j0, acc); break;
        case 2: direct_nchw_block_512<2>(ph, xoff, T, wb, j0, acc); break;
        default: direct_nchw_block_512<1>(ph, xoff, T, wb, j0, acc); break;
      }
      for (int64_t m = m0; m < min64(m_end, m0 + 4); ++m)
        for (int64_t v = 0; v < nv; ++v)
          for (int64_t h = 0; h < 2 && j0 + 16 * v + 8 * h < g.OW; ++h) {
            v8 half;
            __builtin_memcpy(&half, reinterpret_cast<const float*>(&acc[m - m0][v]) + 8 * h, sizeof half);
            direct_nchw_store(half, g, e, oh, m, j0 + 16 * v + 8 * h, res, y);
          }
    }
  }
}
#endif

static void direct_nchw_row(const float* ph, const float* w, const runnx::DirectNchwGeom& g,
                            const runnx::ConvEpilogue& e, int64_t oh, int64_t m_begin, int64_t m_end,
                            const float* res, float* y) {
#ifdef __AVX2__
  if (runnx::sgemm_avx2_uses_avx512()) return direct_nchw_row_512(ph, w, g, e, oh, m_begin, m_end, res, y);
#endif
  const int64_t T = g.C * g.kh * g.kw;
  int64_t xoff[runnx::DirectNchwGeom::kMaxTaps];
  direct_nchw_taps(g, oh, xoff);
  const int64_t vecs = (g.OW + 7) / 8;
  v8 acc[4][3];
  for (int64_t m0 = m_begin; m0 < m_end; m0 += 4) {
    const float* wb = w + m0 * T;  // [T][4] for channels m0..m0+3
    for (int64_t v0 = 0; v0 < vecs; v0 += 3) {
      const int64_t nv = min64(3, vecs - v0), j0 = 8 * v0;
      if (nv == 3) direct_nchw_block<3>(ph, xoff, T, wb, j0, acc);
      else if (nv == 2) direct_nchw_block<2>(ph, xoff, T, wb, j0, acc);
      else direct_nchw_block<1>(ph, xoff, T, wb, j0, acc);
      for (int64_t m = m0; m < min64(m_end, m0 + 4); ++m)
        for (int64_t v = 0; v < nv; ++v) direct_nchw_store(acc[m - m0][v], g, e, oh, m, j0 + 8 * v, res, y);
    }
  }
}
