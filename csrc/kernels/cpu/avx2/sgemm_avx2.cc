// f32 GEMM for AVX2+FMA: C = epilogue(A*B + beta*C), row-major.
//
// B lives in 16-column panels, K-blocked by kKc (one panel block, kKc x 16 floats = 16 KB, stays
// in L1): packed once for constant weights (sgemm_avx2_pack_b), or per K-block on the fly. Each
// task owns a tile of C (mc rows x nc columns) and runs the 6x16 register tile (12 ymm
// accumulators) over it, broadcasting A straight from its rows. The epilogue (bias, residual, activation) runs on the tile right after its last
// K-block, while it is still in cache. Tiles are sized so every thread gets work, M = 1 included.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "kernels/cpu/sgemm_avx2.h"

namespace runnx {

namespace {

constexpr int kMr = 6;
constexpr int kNr = 16;
constexpr int64_t kKc = 256;
constexpr int64_t kMc = 72;   // multiple of kMr: a tile's A block (72 x 256) is 72 KB, in L2
constexpr int64_t kNcMax = 512;
// Below this many multiply-adds (512K, ~10 us on one core) a GEMM runs on the calling thread:
// handing tiles to a worker costs more than it saves. (The pool's caller never waits for a
// sleeping worker, so a worker that wakes late only costs the caller its own wake-up call.)
constexpr int64_t kParallelMacs = int64_t{1} << 19;

// A GEMV-like product (at most kGemvRows rows) is bound by streaming B from L2, not by FMAs:
// from kGemvParallelMacs (256 KB of B at M = 1) two cores' L2s beat one.
constexpr int64_t kGemvRows = 3;
constexpr int64_t kGemvParallelMacs = int64_t{1} << 16;

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};

float* aligned_floats(int64_t n) {
  size_t bytes = (static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(float) + 63) / 64 * 64;
  auto* p = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (!p) throw std::bad_alloc();
  return p;
}

// The calling thread's buffer for B packed on the fly, grown as needed and kept: attention calls
// small GEMMs thousands of times per run. (Pool workers write into the caller's buffer; no GEMM
// runs inside another on the same thread.)
float* b_scratch(int64_t floats) {
  thread_local std::unique_ptr<float, FreeDeleter> buf;
  thread_local int64_t capacity = 0;
  if (floats > capacity) {
    buf.reset(aligned_floats(floats));
    capacity = floats;
  }
  return buf.get();
}

int64_t panels_of(int64_t N) { return (N + kNr - 1) / kNr; }

// Panels [p0, p1) of B[k0:k0+kc, :] into out (panel p at out + p*kc*16, rows of 16, zero-padded).
void pack_b_block(const float* B, int64_t ldb, bool transposed, int64_t N, int64_t k0, int64_t kc, float* out,
                  int64_t p0, int64_t p1) {
  for (int64_t p = p0; p < p1; ++p) {
    float* dst = out + p * kc * kNr;
    const int64_t c0 = p * kNr, w = std::min<int64_t>(kNr, N - c0);
    if (!transposed) {
      for (int64_t k = 0; k < kc; ++k) {
        const float* src = B + (k0 + k) * ldb + c0;
        if (w == kNr) {
          _mm256_storeu_ps(dst + k * kNr, _mm256_loadu_ps(src));
          _mm256_storeu_ps(dst + k * kNr + 8, _mm256_loadu_ps(src + 8));
        } else {
          for (int64_t j = 0; j < kNr; ++j) dst[k * kNr + j] = j < w ? src[j] : 0.f;
        }
      }
    } else {
      // B given as B^T (N x K): column j of B is row j of the source.
      for (int64_t j = 0; j < kNr; ++j) {
        const float* src = B + (c0 + j) * ldb + k0;
        for (int64_t k = 0; k < kc; ++k) dst[k * kNr + j] = j < w ? src[k] : 0.f;
      }
    }
  }
}

// ---- vectorised activations --------------------------------------------------------------

// exp(x) for x in about [-87, 88] (clamped there), relative error about 2e-7.
inline __m256 exp256(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.0f / 5040);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

inline __m256 sigmoid256(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  return _mm256_div_ps(one, _mm256_add_ps(one, exp256(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

// tanh: odd Taylor polynomial below 0.3 (no cancellation), 1 - 2/(exp(2|x|)+1) above; sign restored.
inline __m256 tanh256(__m256 x) {
  const __m256 sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0f));
  const __m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 e = exp256(_mm256_add_ps(ax, ax));
  const __m256 big = _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, one)));
  const __m256 x2 = _mm256_mul_ps(ax, ax);
  __m256 p = _mm256_set1_ps(62.0f / 2835);
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-17.0f / 315));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(2.0f / 15));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-1.0f / 3));
  p = _mm256_fmadd_ps(p, x2, one);
  const __m256 small = _mm256_mul_ps(p, ax);
  const __m256 r = _mm256_blendv_ps(big, small, _mm256_cmp_ps(ax, _mm256_set1_ps(0.3f), _CMP_LT_OQ));
  return _mm256_or_ps(r, sign);
}

// erf by Abramowitz & Stegun 7.1.26: 1 - poly(t) exp(-x^2), t = 1/(1 + 0.3275911|x|);
// absolute error below 1.5e-7 (plus float rounding).
inline __m256 erf256(__m256 x) {
  const __m256 sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0f));
  const __m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(0.3275911f), ax, one));
  __m256 p = _mm256_set1_ps(1.061405429f);
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.453152027f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
  p = _mm256_mul_ps(p, t);
  const __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(ax, ax)));
  const __m256 r = _mm256_fnmadd_ps(p, e, one);
  return _mm256_or_ps(r, sign);
}

inline __m256 activate(__m256 v, const GemmEpilogue& epi) {
  switch (epi.act) {
    case GemmEpilogue::Act::kNone: return v;
    case GemmEpilogue::Act::kRelu: return _mm256_max_ps(v, _mm256_setzero_ps());
    case GemmEpilogue::Act::kClip:
      return _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(epi.clip_lo)), _mm256_set1_ps(epi.clip_hi));
    case GemmEpilogue::Act::kSigmoid: return sigmoid256(v);
    case GemmEpilogue::Act::kTanh: return tanh256(v);
    case GemmEpilogue::Act::kGeluErf: {
      const __m256 e = erf256(_mm256_mul_ps(v, _mm256_set1_ps(0.70710678118654752f)));
      return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), v), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
    }
    case GemmEpilogue::Act::kGeluTanh: {
      const __m256 v3 = _mm256_mul_ps(_mm256_mul_ps(v, v), v);
      const __m256 u = _mm256_mul_ps(_mm256_set1_ps(0.7978845608028654f),
                                     _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), v3, v));
      return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), v),
                           _mm256_add_ps(_mm256_set1_ps(1.0f), tanh256(u)));
    }
    case GemmEpilogue::Act::kLeakyRelu:
      return _mm256_blendv_ps(v, _mm256_mul_ps(v, _mm256_set1_ps(epi.alpha)),
                              _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ));
    case GemmEpilogue::Act::kHardSwish: {
      const __m256 g = _mm256_fmadd_ps(v, _mm256_set1_ps(epi.alpha), _mm256_set1_ps(epi.shift));
      return _mm256_mul_ps(v, _mm256_min_ps(_mm256_max_ps(g, _mm256_setzero_ps()), _mm256_set1_ps(1.0f)));
    }
  }
  return v;
}

// Where a micro tile's result goes: C (already offset to the tile), the tail width, whether C
// holds earlier K-blocks' sums (accumulate) or beta * C_old is added, and on the last K-block
// the epilogue with the tile's (row, col) in C, applied in registers before the one store.
struct TileOut {
  float* C;
  int64_t ldc;
  int ncols;
  bool accumulate;
  float beta;
  const GemmEpilogue* epi;  // null: plain store
  int64_t row, col;
};

// epi with bias and residual moved to start at C's (row, col): a block of C at (0, 0) then applies it.
GemmEpilogue epilogue_at(const GemmEpilogue& epi, int64_t row, int64_t col) {
  GemmEpilogue e = epi;
  if (e.bias) e.bias += e.bias_per_row ? row : col;
  if (e.residual) e.residual += row * e.ldr + col;
  return e;
}

// Sigmoid, Tanh, GELU, HardSwish: long exp/erf/tanh chains run faster as a sweep over a whole
// tile (many independent vectors in flight) than interleaved with the stores of each 6x16 tile
// (measured: 512x768x768 + bias + residual + GELU 3-4% slower in registers). Their bias and
// residual still go in registers; the tile driver sweeps the activation (activation_sweep).
bool heavy_act(const GemmEpilogue& epi) {
  using A = GemmEpilogue::Act;
  return epi.act != A::kNone && epi.act != A::kRelu && epi.act != A::kClip && epi.act != A::kLeakyRelu;
}

// After a tile's last K-block: the heavy activation over C[m0:m1, n0:n1] (bias/residual are in).
void activation_sweep(const GemmEpilogue* epi, int64_t m0, int64_t m1, int64_t n0, int64_t n1, float* C,
                      int64_t ldc) {
  if (!epi || !heavy_act(*epi)) return;
  GemmEpilogue act_only = *epi;
  act_only.bias = nullptr;
  act_only.residual = nullptr;
  sgemm_avx2_epilogue_block(act_only, m0, m1, n0, n1, C, ldc);
}

// The MR x ncols result in `tile` (row i at tile + i*16) out to C through TileOut.
template <int MR>
inline void store_tile(const float* tile, const TileOut& o) {
  const GemmEpilogue* epi = o.epi;
  const bool heavy = epi && heavy_act(*epi);
  // Full vectors (16 columns, or the 8 of a half-width edge panel: N = 24 is 16 + 8) go straight
  // to C with the epilogue in registers; other widths go through the buffer below.
  const bool two = o.ncols == kNr;
  if (two || o.ncols == 8) {
    const __m256 vbeta = _mm256_set1_ps(o.beta);
    const bool col_bias = epi && epi->bias && !epi->bias_per_row;
    const bool row_bias = epi && epi->bias && epi->bias_per_row;
    const __m256 cb0 = col_bias ? _mm256_loadu_ps(epi->bias + o.col) : _mm256_setzero_ps();
    const __m256 cb1 = col_bias && two ? _mm256_loadu_ps(epi->bias + o.col + 8) : _mm256_setzero_ps();
    const float* res = epi ? epi->residual : nullptr;
    // The cheap activations with their constants set up once per tile: ReLU and Clip as one
    // max/min pair, LeakyRelu as a blend (activate()'s switch per vector, inlined with every
    // exp/erf chain into this unrolled loop, cost ~10% of a K = 16 GEMM).
    using Act = GemmEpilogue::Act;
    const Act act = epi && !heavy ? epi->act : Act::kNone;
    const bool clamp = act == Act::kRelu || act == Act::kClip;
    const bool leaky = act == Act::kLeakyRelu;
    const __m256 lo = _mm256_set1_ps(act == Act::kClip ? epi->clip_lo : 0.f);
    const __m256 hi = _mm256_set1_ps(act == Act::kClip ? epi->clip_hi : std::numeric_limits<float>::infinity());
    const __m256 slope = _mm256_set1_ps(leaky ? epi->alpha : 0.f);
    auto leak = [&](__m256 v) {
      return _mm256_blendv_ps(v, _mm256_mul_ps(v, slope), _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ));
    };
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      float* c = o.C + i * o.ldc;
      __m256 v0 = _mm256_load_ps(tile + i * kNr), v1 = _mm256_load_ps(tile + i * kNr + 8);
      if (o.accumulate) {
        v0 = _mm256_add_ps(v0, _mm256_loadu_ps(c));
        if (two) v1 = _mm256_add_ps(v1, _mm256_loadu_ps(c + 8));
      } else if (o.beta != 0.f) {
        v0 = _mm256_fmadd_ps(vbeta, _mm256_loadu_ps(c), v0);
        if (two) v1 = _mm256_fmadd_ps(vbeta, _mm256_loadu_ps(c + 8), v1);
      }
      if (epi) {
        if (col_bias) {
          v0 = _mm256_add_ps(v0, cb0);
          v1 = _mm256_add_ps(v1, cb1);
        } else if (row_bias) {
          const __m256 rb = _mm256_set1_ps(epi->bias[o.row + i]);
          v0 = _mm256_add_ps(v0, rb);
          v1 = _mm256_add_ps(v1, rb);
        }
        if (res) {
          const float* r = res + (o.row + i) * epi->ldr + o.col;
          v0 = _mm256_add_ps(v0, _mm256_loadu_ps(r));
          if (two) v1 = _mm256_add_ps(v1, _mm256_loadu_ps(r + 8));
        }
        if (clamp) {
          v0 = _mm256_min_ps(_mm256_max_ps(v0, lo), hi);
          v1 = _mm256_min_ps(_mm256_max_ps(v1, lo), hi);
        } else if (leaky) {
          v0 = leak(v0);
          if (two) v1 = leak(v1);
        }
      }
      _mm256_storeu_ps(c, v0);
      if (two) _mm256_storeu_ps(c + 8, v1);
    }
    return;
  }
  // A right-edge tile: finished in the buffer (the epilogue reads nothing past column ncols).
  alignas(32) float t[MR * kNr];
  for (int i = 0; i < MR; ++i) {
    const float* c = o.C + i * o.ldc;
    for (int j = 0; j < o.ncols; ++j)
      t[i * kNr + j] = tile[i * kNr + j] + (o.accumulate ? c[j] : (o.beta != 0.f ? o.beta * c[j] : 0.f));
  }
  if (epi) {
    GemmEpilogue e = epilogue_at(*epi, o.row, o.col);
    if (heavy) e.act = GemmEpilogue::Act::kNone;
    sgemm_avx2_epilogue_block(e, 0, MR, 0, o.ncols, t, kNr);
  }
  for (int i = 0; i < MR; ++i) std::memcpy(o.C + i * o.ldc, t + i * kNr, o.ncols * sizeof(float));
}

// acc(MR x 16) = A(MR rows, kc) * Bp(kc x 16), then out through store_tile. Every loop over the
// accumulators has the compile-time bound MR, so they stay in registers. Few rows give too few
// independent FMA chains to hide the FMA latency (M = 1: two chains, a quarter of the peak), so
// those kernels keep KS sets of accumulators over interleaved k and add them at the end.
// A is read in place (row i at A + i*lda; its MR x kc block stays in L1 across the panel), or,
// when PACKED_A, from a packed micro-panel (element (i, k) at A + k*6 + i). NH = 1 computes only
// the panel's first 8 columns: a right-edge panel of at most 8 (N = 24 is 16 + 8) skips the FMAs
// on its zero padding.
template <int MR, bool PACKED_A, int NH>
void micro_kernel(int64_t kc, const float* __restrict A, int64_t lda, const float* __restrict Bp,
                  const TileOut& out) {
  auto a_at = [&](int i, int64_t k) { return PACKED_A ? A + k * kMr + i : A + i * lda + k; };
  constexpr int KS = MR == 1 ? 4 : MR <= 3 ? 2 : 1;
  __m256 acc[KS][MR][NH];
#pragma GCC unroll 4
  for (int s = 0; s < KS; ++s)
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
      for (int h = 0; h < NH; ++h) acc[s][i][h] = _mm256_setzero_ps();
  int64_t k = 0;
#pragma GCC unroll 4
  for (; k + KS <= kc; k += KS) {
#pragma GCC unroll 4
    for (int s = 0; s < KS; ++s) {
      __m256 b[NH];
#pragma GCC unroll 2
      for (int h = 0; h < NH; ++h) b[h] = _mm256_load_ps(Bp + (k + s) * kNr + 8 * h);
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i) {
        const __m256 a = _mm256_broadcast_ss(a_at(i, k + s));
#pragma GCC unroll 2
        for (int h = 0; h < NH; ++h) acc[s][i][h] = _mm256_fmadd_ps(a, b[h], acc[s][i][h]);
      }
    }
  }
  for (; k < kc; ++k) {
    __m256 b[NH];
#pragma GCC unroll 2
    for (int h = 0; h < NH; ++h) b[h] = _mm256_load_ps(Bp + k * kNr + 8 * h);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 a = _mm256_broadcast_ss(a_at(i, k));
#pragma GCC unroll 2
      for (int h = 0; h < NH; ++h) acc[0][i][h] = _mm256_fmadd_ps(a, b[h], acc[0][i][h]);
    }
  }
#pragma GCC unroll 4
  for (int s = 1; s < KS; ++s)
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
      for (int h = 0; h < NH; ++h) acc[0][i][h] = _mm256_add_ps(acc[0][i][h], acc[s][i][h]);
  // Through a small L1 buffer: any loop below that indexed acc[] with a run-time bound would
  // make GCC keep the accumulators in memory during the K loop.
  alignas(32) float tile[MR * kNr];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
    for (int h = 0; h < NH; ++h) _mm256_store_ps(tile + i * kNr + 8 * h, acc[0][i][h]);
  store_tile<MR>(tile, out);
}

// 24 columns (a 16-column panel at B16 and an 8-wide edge panel at B8: MobileNetV2's 24-channel
// projections) as MR <= 4 rows x 3 vectors, 12 accumulators: one pass over A, where the 6x16 and
// 6x8 kernels take two and the 6x8's six FMA chains cannot hide the FMA latency. A in place.
template <int MR>
void micro_kernel_24(int64_t kc, const float* __restrict A, int64_t lda, const float* __restrict B16,
                     const float* __restrict B8, const TileOut& out16, const TileOut& out8) {
  __m256 acc[MR][3];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = acc[i][2] = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(B16 + k * kNr), b1 = _mm256_load_ps(B16 + k * kNr + 8);
    const __m256 b2 = _mm256_load_ps(B8 + k * kNr);
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m256 a = _mm256_broadcast_ss(A + i * lda + k);
      acc[i][0] = _mm256_fmadd_ps(a, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(a, b1, acc[i][1]);
      acc[i][2] = _mm256_fmadd_ps(a, b2, acc[i][2]);
    }
  }
  alignas(32) float t16[MR * kNr], t8[MR * kNr];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) {
    _mm256_store_ps(t16 + i * kNr, acc[i][0]);
    _mm256_store_ps(t16 + i * kNr + 8, acc[i][1]);
    _mm256_store_ps(t8 + i * kNr, acc[i][2]);
  }
  store_tile<MR>(t16, out16);
  store_tile<MR>(t8, out8);
}

using Kernel24 = void (*)(int64_t, const float*, int64_t, const float*, const float*, const TileOut&,
                          const TileOut&);
constexpr Kernel24 kKernels24[5] = {nullptr, micro_kernel_24<1>, micro_kernel_24<2>, micro_kernel_24<3>,
                                    micro_kernel_24<4>};

using MicroKernel = void (*)(int64_t, const float*, int64_t, const float*, const TileOut&);
// [A packed][panel columns in use <= 8][rows in use]: fewer than 6 rows skip the unused
// accumulators' FMAs (M = 1 GEMV), a narrow right-edge panel its zero half.
template <bool PA, int NH>
struct KernelRow {
  static constexpr MicroKernel by_rows[kMr + 1] = {
      nullptr, micro_kernel<1, PA, NH>, micro_kernel<2, PA, NH>, micro_kernel<3, PA, NH>,
      micro_kernel<4, PA, NH>, micro_kernel<5, PA, NH>, micro_kernel<6, PA, NH>};
};
constexpr const MicroKernel* kKernels[2][2] = {{KernelRow<false, 2>::by_rows, KernelRow<false, 1>::by_rows},
                                               {KernelRow<true, 2>::by_rows, KernelRow<true, 1>::by_rows}};

// ---- drivers ---------------------------------------------------------------------------------

// How C is cut into tasks: mc rows (multiple of 6) by nc columns (multiple of 16), small enough
// that every thread has a couple of tiles when the product is worth parallelising.
struct Tiling {
  int64_t mc, nc, m_tiles, n_tiles;
  bool parallel;
};

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Tiles of at most `max` that split `n` evenly (rounded up to `unit`): 128 rows become 66 + 62,
// not 72 + 56, so the threads finish together.
int64_t even_tile(int64_t n, int64_t max, int64_t unit) {
  max = std::max(unit, max / unit * unit);  // tiles start on panel / micro-panel boundaries
  const int64_t count = (n + max - 1) / max;
  return std::min(max, round_up((n + count - 1) / count, unit));
}

Tiling choose_tiling(int64_t M, int64_t N, int64_t K, ThreadPool* pool) {
  Tiling t;
  const int threads = pool ? pool->num_threads() : 1;
  t.parallel = threads > 1 && M * N * K >= kParallelMacs;
  // At most two panels wide (the narrow path streams A once, B stays in L1): taller tiles, so a
  // thread's prefetch runs on into its own next rows.
  t.mc = even_tile(M, N <= 2 * kNr ? 8 * kMc : kMc, kMr);
  t.nc = even_tile(N, kNcMax, kNr);
  auto count = [&] { return ((M + t.mc - 1) / t.mc) * ((N + t.nc - 1) / t.nc); };
  if (t.parallel) {
    // Enough tiles that dynamic scheduling evens out (3 per thread; 8 when at most two panels
    // wide, where a shorter tile costs nothing: B is tiny and A is read once either way),
    // narrowing columns first (a narrower tile repacks less of A than a shorter one re-reads of B).
    const int64_t want = (N <= 2 * kNr ? 8 : 3) * threads;
    // Rows fit one tile (M = 49 at 7x7, an MLP's batch): columns down to one panel first, so
    // each part of B is streamed from L3 once, not once per row tile.
    const int64_t min_nc = M <= kMc ? kNr : 64;
    while (count() < want && t.nc > min_nc) t.nc = even_tile(N, std::max<int64_t>(min_nc, t.nc / 2), kNr);
    while (count() < want && t.mc > kMr) t.mc = even_tile(M, std::max<int64_t>(kMr, t.mc / 2), kMr);
    while (count() < want && t.nc > kNr) t.nc = even_tile(N, std::max<int64_t>(kNr, t.nc / 2), kNr);
  }
  if (M <= kGemvRows && threads > 1 && M * N * K >= kGemvParallelMacs) {
    // One column range per thread: the caller takes the first at once and a worker the second,
    // so call after call each core streams the same part of B from its own L2.
    t.parallel = true;
    t.nc = round_up((N + threads - 1) / threads, kNr);
  }
  t.m_tiles = (M + t.mc - 1) / t.mc;
  t.n_tiles = (N + t.nc - 1) / t.nc;
  return t;
}

// C[m0:m1, n0:n1] for one K-block whose panels start at `bblock` (panel p at bblock + p*kc*16):
// each panel (in L1) meets every 6-row group of the tile's A rows (in L2) in turn. The next panel
// is prefetched into L1 a slice per row group: B of a BERT layer (2-9 MB) comes from L3, and the
// first row group of each panel otherwise stalls on it (128x3072x768: 7.3 -> 6.9 ms on one core).
// Where a tile's A rows come from: A itself (row i at A + i*lda), or A packed once
// (pack_a_block's layout: K-block k0 at A + k0*mpad, its 6-row group from row i at + i*kc).
struct ASource {
  const float* A;
  int64_t lda;     // in place
  int64_t mpad;    // packed: rows rounded up to 6 (0: in place)
  const float* at(int64_t i, int64_t k0, int64_t kc) const {
    return mpad ? A + k0 * mpad + i * kc : A + i * lda + k0;
  }
};

// The rows' residual, read at the store: fetched while the K loop runs.
inline void prefetch_residual(const GemmEpilogue* epi, int64_t i, int mr, int64_t j, int ncols) {
  if (!epi || !epi->residual) return;
  for (int r = 0; r < mr; ++r) {
    const float* res = epi->residual + (i + r) * epi->ldr + j;
    _mm_prefetch(reinterpret_cast<const char*>(res), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(res + ncols - 1), _MM_HINT_T0);
  }
}

// A tile of at most two panels (a 1x1 convolution to 16-32 channels: M = pixels, K = 96-192) is
// bound by streaming A from memory, each row read once: row groups run outer, both panels (in L1)
// inner, and the A rows two groups ahead (up to row M) are prefetched, a 6-row group per group.
void narrow_tile_kblock(int64_t m0, int64_t m1, int64_t M, int64_t n0, int64_t n1, int64_t N, int64_t k0,
                        int64_t kc, const ASource& a, const float* bblock, float* C, int64_t ldc, bool accumulate,
                        float beta, const GemmEpilogue* epi) {
  constexpr int64_t kAhead = 2 * kMr;
  // Exactly 24 columns with A in place: 4-row steps of the 24-column kernel.
  const bool cols24 = n1 - n0 == kNr + 8 && !a.mpad;
  const int64_t step = cols24 ? 4 : kMr;
  for (int64_t i = m0; i < m1; i += step) {
    const int64_t ahead = i + kAhead;
    if (ahead < M) {  // into L2 (T0, into L1, measured slower: it evicts the panels)
      if (a.mpad) {
        const char* p = reinterpret_cast<const char*>(a.at(ahead, k0, kc));
        for (int64_t b = 0; b < kMr * kc * 4; b += 64) _mm_prefetch(p + b, _MM_HINT_T1);
      } else {
        for (int64_t r = 0, rows = std::min<int64_t>(step, M - ahead); r < rows; ++r) {
          const char* p = reinterpret_cast<const char*>(a.at(ahead + r, k0, kc));
          for (int64_t b = 0; b < kc * 4; b += 64) _mm_prefetch(p + b, _MM_HINT_T1);
          _mm_prefetch(p + kc * 4 - 1, _MM_HINT_T1);
        }
      }
    }
    const int mr = static_cast<int>(std::min<int64_t>(step, m1 - i));
    if (cols24) {
      prefetch_residual(epi, i, mr, n0, 24);
      const float* b16 = bblock + (n0 / kNr) * kc * kNr;
      const TileOut out16{C + i * ldc + n0, ldc, kNr, accumulate, beta, epi, i, n0};
      const TileOut out8{C + i * ldc + n0 + kNr, ldc, 8, accumulate, beta, epi, i, n0 + kNr};
      kKernels24[mr](kc, a.at(i, k0, kc), a.lda, b16, b16 + kc * kNr, out16, out8);
      continue;
    }
    for (int64_t j = n0; j < n1; j += kNr) {
      const int ncols = static_cast<int>(std::min<int64_t>(kNr, N - j));
      prefetch_residual(epi, i, mr, j, ncols);
      const TileOut out{C + i * ldc + j, ldc, ncols, accumulate, beta, epi, i, j};
      kKernels[a.mpad != 0][ncols <= 8][mr](kc, a.at(i, k0, kc), a.lda, bblock + (j / kNr) * kc * kNr, out);
    }
  }
}

void tile_kblock(int64_t m0, int64_t m1, int64_t M, int64_t n0, int64_t n1, int64_t N, int64_t k0, int64_t kc,
                 const ASource& a, const float* bblock, float* C, int64_t ldc, bool accumulate, float beta,
                 const GemmEpilogue* epi) {
  if (n1 - n0 <= 2 * kNr)
    return narrow_tile_kblock(m0, m1, M, n0, n1, N, k0, kc, a, bblock, C, ldc, accumulate, beta, epi);
  const int64_t groups = (m1 - m0 + kMr - 1) / kMr;
  const int64_t lines = kc * kNr / 16;  // 64-byte lines per panel
  const int64_t per_group = (lines + groups - 1) / groups;
  for (int64_t j = n0; j < n1; j += kNr) {
    const float* panel = bblock + (j / kNr) * kc * kNr;
    const float* next = j + kNr < n1 ? panel + kc * kNr : nullptr;
    const int ncols = static_cast<int>(std::min<int64_t>(kNr, N - j));
    int64_t line = 0;
    for (int64_t i = m0; i < m1; i += kMr) {
      if (next)
        for (const int64_t end = std::min(lines, line + per_group); line < end; ++line)
          _mm_prefetch(reinterpret_cast<const char*>(next + line * 16), _MM_HINT_T0);
      const int mr = static_cast<int>(std::min<int64_t>(kMr, m1 - i));
      prefetch_residual(epi, i, mr, j, ncols);
      const TileOut out{C + i * ldc + j, ldc, ncols, accumulate, beta, epi, i, j};
      kKernels[a.mpad != 0][ncols <= 8][mr](kc, a.at(i, k0, kc), a.lda, panel, out);
    }
  }
}

// tile(q) for q in [0, count), on the pool when `parallel`, one tile at a time from a shared
// counter: the pool hands out at most four chunks per thread, and with ~30 equal tiles (1024^3)
// a chunk of four left one core idle for most of a chunk at the end.
template <typename F>
void run_tiles(int64_t count, bool parallel, ThreadPool* pool, const F& tile) {
  if (!parallel) {
    for (int64_t q = 0; q < count; ++q) tile(q);
    return;
  }
  std::atomic<int64_t> next{0};
  pool->parallel_for(pool->num_threads(), 1, [&](int64_t, int64_t) {
    for (int64_t q; (q = next.fetch_add(1, std::memory_order_relaxed)) < count;) tile(q);
  });
}

void scale_c(int64_t M, int64_t N, float* C, int64_t ldc, float beta) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.f ? 0.f : beta * C[i * ldc + j];
}

// Few rows of an unpacked B: C[i, :] (+)= sum_k A[i,k] * B[k, :], streaming B once, split over columns.
void gemv_like(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
               float* C, int64_t ldc, float beta, const GemmEpilogue& epi, ThreadPool* pool) {
  auto cols = [&](int64_t j0, int64_t j1) {
    for (int64_t i = 0; i < M; ++i) {
      float* c = C + i * ldc;
      if (beta == 0.f) std::fill(c + j0, c + j1, 0.f);
      else if (beta != 1.f) for (int64_t j = j0; j < j1; ++j) c[j] *= beta;
      const float* a = A + i * lda;
      for (int64_t k = 0; k < K; ++k) {
        const __m256 va = _mm256_set1_ps(a[k]);
        const float* b = B + k * ldb;
        int64_t j = j0;
        for (; j + 8 <= j1; j += 8)
          _mm256_storeu_ps(c + j, _mm256_fmadd_ps(va, _mm256_loadu_ps(b + j), _mm256_loadu_ps(c + j)));
        for (; j < j1; ++j) c[j] += a[k] * b[j];
      }
    }
    if (!epi.trivial()) sgemm_avx2_epilogue_block(epi, 0, M, j0, j1, C, ldc);
  };
  // Column blocks of 512 keep a block of C rows in L1 across the whole K loop.
  const int64_t blocks = (N + 511) / 512;
  auto run = [&](int64_t b0, int64_t b1) { cols(b0 * 512, std::min(N, b1 * 512)); };
  if (pool && pool->num_threads() > 1 && M * N * K > kParallelMacs / 4) pool->parallel_for(blocks, 1, run);
  else run(0, blocks);
}

}  // namespace

void sgemm_avx2_epilogue_block(const GemmEpilogue& epi, int64_t i0, int64_t i1, int64_t j0, int64_t j1,
                               float* C, int64_t ldc) {
  for (int64_t i = i0; i < i1; ++i) {
    float* c = C + i * ldc;
    const float* res = epi.residual ? epi.residual + i * epi.ldr : nullptr;
    const float row_bias = epi.bias && epi.bias_per_row ? epi.bias[i] : 0.f;
    const float* col_bias = epi.bias && !epi.bias_per_row ? epi.bias : nullptr;
    int64_t j = j0;
    for (; j + 8 <= j1; j += 8) {
      __m256 v = _mm256_loadu_ps(c + j);
      if (col_bias) v = _mm256_add_ps(v, _mm256_loadu_ps(col_bias + j));
      else if (row_bias != 0.f) v = _mm256_add_ps(v, _mm256_set1_ps(row_bias));
      if (res) v = _mm256_add_ps(v, _mm256_loadu_ps(res + j));
      _mm256_storeu_ps(c + j, activate(v, epi));
    }
    if (j < j1) {
      // The tail through an 8-float buffer (no reads past the rows' ends).
      const int n = static_cast<int>(j1 - j);
      alignas(32) float tc[8] = {}, tb[8] = {}, tr[8] = {};
      std::memcpy(tc, c + j, n * sizeof(float));
      if (col_bias) std::memcpy(tb, col_bias + j, n * sizeof(float));
      if (res) std::memcpy(tr, res + j, n * sizeof(float));
      __m256 v = _mm256_load_ps(tc);
      if (col_bias) v = _mm256_add_ps(v, _mm256_load_ps(tb));
      else if (row_bias != 0.f) v = _mm256_add_ps(v, _mm256_set1_ps(row_bias));
      if (res) v = _mm256_add_ps(v, _mm256_load_ps(tr));
      _mm256_store_ps(tc, activate(v, epi));
      std::memcpy(c + j, tc, n * sizeof(float));
    }
  }
}

void sgemm_avx2_softmax_rows(float* S, int64_t rows, int64_t n, int64_t ld, float scale, const float* mask,
                             int64_t mask_ld) {
  const __m256 vscale = _mm256_set1_ps(scale);
  for (int64_t i = 0; i < rows; ++i) {
    float* s = S + i * ld;
    const float* m = mask ? mask + i * mask_ld : nullptr;
    // Pass 1: x = scale*s + mask, its max; NaN anywhere sends the row to the scalar path.
    __m256 vmax = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
    __m256 vnan = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
      __m256 x = _mm256_mul_ps(_mm256_loadu_ps(s + j), vscale);
      if (m) x = _mm256_add_ps(x, _mm256_loadu_ps(m + j));
      _mm256_storeu_ps(s + j, x);
      vnan = _mm256_or_ps(vnan, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
      vmax = _mm256_max_ps(vmax, x);
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, vmax);
    float mx = lanes[0];
    for (int q = 1; q < 8; ++q) mx = std::max(mx, lanes[q]);
    bool nan = _mm256_movemask_ps(vnan) != 0;
    for (; j < n; ++j) {
      s[j] = s[j] * scale + (m ? m[j] : 0.f);
      nan |= s[j] != s[j];
      mx = std::max(mx, s[j]);
    }
    if (nan || mx == -std::numeric_limits<float>::infinity() || mx == std::numeric_limits<float>::infinity()) {
      // NaN, or a row of -inf / +inf: the plain formula gives the reference's NaNs.
      float sum = 0.f;
      for (int64_t c = 0; c < n; ++c) sum += (s[c] = std::exp(s[c] - mx));
      for (int64_t c = 0; c < n; ++c) s[c] /= sum;
      continue;
    }
    // Pass 2: exp(x - max) and the sum; pass 3: normalise.
    const __m256 vm = _mm256_set1_ps(mx);
    __m256 vsum = _mm256_setzero_ps();
    for (j = 0; j + 8 <= n; j += 8) {
      const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
      _mm256_storeu_ps(s + j, e);
      vsum = _mm256_add_ps(vsum, e);
    }
    _mm256_store_ps(lanes, vsum);
    float sum = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
    for (; j < n; ++j) sum += (s[j] = std::exp(s[j] - mx));
    const __m256 inv = _mm256_set1_ps(1.0f / sum);
    for (j = 0; j + 8 <= n; j += 8) _mm256_storeu_ps(s + j, _mm256_mul_ps(_mm256_loadu_ps(s + j), inv));
    for (; j < n; ++j) s[j] *= 1.0f / sum;
  }
}

int64_t sgemm_avx2_k_block() { return kKc; }

int64_t sgemm_avx2_packed_floats(int64_t K, int64_t N) { return std::max<int64_t>(K, 1) * panels_of(N) * kNr; }

void sgemm_avx2_pack_b(int64_t K, int64_t N, const float* B, int64_t ldb, bool transposed, float* out,
                       ThreadPool* pool) {
  const int64_t panels = panels_of(N);
  const int64_t npad = panels * kNr;
  const int64_t kblocks = (K + kKc - 1) / kKc;
  auto run = [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t k0 = t * kKc, kc = std::min(kKc, K - k0);
      pack_b_block(B, ldb, transposed, N, k0, kc, out + k0 * npad, 0, panels);
    }
  };
  if (pool && pool->num_threads() > 1 && K * N > (1 << 16)) pool->parallel_for(kblocks, 1, run);
  else run(0, kblocks);
}

namespace {

// C[:, 0:N] over all of K with B packed whole (panel blocks at Bp + k0*npad): each tile keeps its C
// block in cache across the K-blocks and applies the epilogue in registers on the last one.
void packed_tiles(int64_t M, int64_t N, int64_t K, const ASource& a, const float* Bp, int64_t npad, float* C,
                  int64_t ldc, float beta, const GemmEpilogue& epi, ThreadPool* pool) {
  const GemmEpilogue* fused = epi.trivial() ? nullptr : &epi;
  const Tiling t = choose_tiling(M, N, K, pool);
  run_tiles(t.m_tiles * t.n_tiles, t.parallel, pool, [&](int64_t q) {
    const int64_t m0 = (q % t.m_tiles) * t.mc, m1 = std::min(M, m0 + t.mc);
    const int64_t n0 = (q / t.m_tiles) * t.nc, n1 = std::min(N, n0 + t.nc);
    for (int64_t k0 = 0; k0 < K; k0 += kKc) {
      const int64_t kc = std::min(kKc, K - k0);
      tile_kblock(m0, m1, M, n0, n1, N, k0, kc, a, Bp + k0 * npad, C, ldc, k0 > 0, beta,
                  k0 + kc >= K ? fused : nullptr);
    }
    activation_sweep(fused, m0, m1, n0, n1, C, ldc);
  });
}

// M <= 0, N <= 0 or K <= 0: nothing to multiply (true when the call is done).
bool degenerate(int64_t M, int64_t N, int64_t K, float* C, int64_t ldc, float beta, const GemmEpilogue& epi) {
  if (M <= 0 || N <= 0) return true;
  if (K > 0) return false;
  scale_c(M, N, C, ldc, beta);
  if (!epi.trivial()) sgemm_avx2_epilogue_block(epi, 0, M, 0, N, C, ldc);
  return true;
}

}  // namespace

void sgemm_avx2_packed(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* Bp,
                       float* C, int64_t ldc, float beta, const GemmEpilogue& epi, ThreadPool* pool) {
  if (degenerate(M, N, K, C, ldc, beta, epi)) return;
  packed_tiles(M, N, K, ASource{A, lda, 0}, Bp, panels_of(N) * kNr, C, ldc, beta, epi, pool);
}

namespace {

// t[i][j] (rows kSgemmDotCols apart) = A row i . Bt row j for R rows and N <= kSgemmDotCols columns:
// two accumulators per row over interleaved 8-float steps of k, the tail of K in scalars.
template <int R>
void dot_rows(int64_t N, int64_t K, const float* A, int64_t lda, const float* Bt, float* t) {
  for (int64_t j = 0; j < N; ++j) {
    const float* b = Bt + j * K;
    __m256 acc0[R], acc1[R];
    for (int i = 0; i < R; ++i) acc0[i] = acc1[i] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
      const __m256 b0 = _mm256_loadu_ps(b + k), b1 = _mm256_loadu_ps(b + k + 8);
      for (int i = 0; i < R; ++i) {
        acc0[i] = _mm256_fmadd_ps(_mm256_loadu_ps(A + i * lda + k), b0, acc0[i]);
        acc1[i] = _mm256_fmadd_ps(_mm256_loadu_ps(A + i * lda + k + 8), b1, acc1[i]);
      }
    }
    if (k + 8 <= K) {
      const __m256 b0 = _mm256_loadu_ps(b + k);
      for (int i = 0; i < R; ++i) acc0[i] = _mm256_fmadd_ps(_mm256_loadu_ps(A + i * lda + k), b0, acc0[i]);
      k += 8;
    }
    for (int i = 0; i < R; ++i) {
      const __m256 v = _mm256_add_ps(acc0[i], acc1[i]);
      __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
      h = _mm_add_ps(h, _mm_movehl_ps(h, h));
      h = _mm_add_ss(h, _mm_movehdup_ps(h));
      float sum = _mm_cvtss_f32(h);
      for (int64_t q = k; q < K; ++q) sum += A[i * lda + q] * b[q];
      t[i * kSgemmDotCols + j] = sum;
    }
  }
}

}  // namespace

void sgemm_avx2_dots(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* Bt, float* C,
                     int64_t ldc, float beta, const GemmEpilogue& epi, ThreadPool* pool) {
  if (degenerate(M, N, K, C, ldc, beta, epi)) return;
  constexpr int64_t kRows = 64;  // rows per pool task
  auto rows = [&](int64_t q) {
    for (int64_t i = q * kRows, i1 = std::min(M, i + kRows); i < i1; i += 4) {
      const int r = static_cast<int>(std::min<int64_t>(4, i1 - i));
      alignas(32) float t[4 * kSgemmDotCols];
      const float* a = A + i * lda;
      switch (r) {
        case 4: dot_rows<4>(N, K, a, lda, Bt, t); break;
        case 3: dot_rows<3>(N, K, a, lda, Bt, t); break;
        case 2: dot_rows<2>(N, K, a, lda, Bt, t); break;
        default: dot_rows<1>(N, K, a, lda, Bt, t); break;
      }
      if (beta != 0.f)
        for (int u = 0; u < r; ++u)
          for (int64_t j = 0; j < N; ++j) t[u * kSgemmDotCols + j] += beta * C[(i + u) * ldc + j];
      if (!epi.trivial()) sgemm_avx2_epilogue_block(epilogue_at(epi, i, 0), 0, r, 0, N, t, kSgemmDotCols);
      for (int u = 0; u < r; ++u) std::memcpy(C + (i + u) * ldc, t + u * kSgemmDotCols, N * sizeof(float));
    }
  };
  const bool parallel = pool && pool->num_threads() > 1 && M * N * K >= kParallelMacs;
  run_tiles((M + kRows - 1) / kRows, parallel, pool, rows);
}

int64_t sgemm_avx2_packed_a_floats(int64_t M, int64_t K) {
  return std::max<int64_t>(round_up(M, kMr) * K, 1);
}

void sgemm_avx2_pack_a(int64_t M, int64_t K, const float* A, int64_t lda, float* out) {
  const int64_t mpad = round_up(M, kMr);
  for (int64_t k0 = 0; k0 < K; k0 += kKc) {
    const int64_t kc = std::min(kKc, K - k0);
    for (int64_t i0 = 0; i0 < mpad; i0 += kMr) {
      float* dst = out + k0 * mpad + i0 * kc;
      for (int64_t r = 0; r < kMr; ++r) {
        const float* src = A + (i0 + r) * lda + k0;
        const bool row = i0 + r < M;
        for (int64_t k = 0; k < kc; ++k) dst[k * kMr + r] = row ? src[k] : 0.f;
      }
    }
  }
}

void sgemm_avx2_packed_a(int64_t M, int64_t N, int64_t K, const float* Ap, const float* B, int64_t ldb, float* C,
                         int64_t ldc, float beta, const GemmEpilogue& epi, ThreadPool* pool) {
  if (degenerate(M, N, K, C, ldc, beta, epi)) return;
  // B is packed a column chunk at a time over all of K (at most ~4 MB: it stays in L3 while
  // every row tile streams it), then the chunk's tiles run with their epilogue.
  const int64_t chunk = std::max<int64_t>(kNr, std::min(round_up(N, kNr), (int64_t{1} << 20) / K / kNr * kNr));
  const ASource a{Ap, 0, round_up(M, kMr)};
  const bool parallel = pool && pool->num_threads() > 1 && M * N * K >= kParallelMacs;
  float* bp = b_scratch(K * chunk);
  for (int64_t n0 = 0; n0 < N; n0 += chunk) {
    const int64_t w = std::min(chunk, N - n0), panels = panels_of(w), npad = panels * kNr;
    const int64_t kblocks = (K + kKc - 1) / kKc;
    auto pack = [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t kb = t / panels, p = t % panels, k0 = kb * kKc;
        pack_b_block(B + n0, ldb, false, w, k0, std::min(kKc, K - k0), bp + k0 * npad, p, p + 1);
      }
    };
    if (parallel) pool->parallel_for(kblocks * panels, 4, pack);
    else pack(0, kblocks * panels);
    const GemmEpilogue e = epilogue_at(epi, 0, n0);
    packed_tiles(M, w, K, a, bp, npad, C + n0, ldc, beta, e, parallel ? pool : nullptr);
  }
}

void sgemm_avx2_epilogue(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                         int64_t ldb, float* C, int64_t ldc, float beta, const GemmEpilogue& epi,
                         ThreadPool* pool) {
  if (degenerate(M, N, K, C, ldc, beta, epi)) return;
  if (M < 4) return gemv_like(M, N, K, A, lda, B, ldb, C, ldc, beta, epi, pool);

  // B is packed one K-block at a time (kKc x N floats), then every tile runs that block.
  const int64_t panels = panels_of(N);
  const int64_t kc_max = std::min(K, kKc);
  float* bp = b_scratch(panels * kc_max * kNr);
  const Tiling t = choose_tiling(M, N, K, pool);
  const ASource a{A, lda, 0};
  const GemmEpilogue* fused = epi.trivial() ? nullptr : &epi;
  for (int64_t k0 = 0; k0 < K; k0 += kKc) {
    const int64_t kc = std::min(kKc, K - k0);
    const bool last = k0 + kc >= K;
    auto pack = [&](int64_t p0, int64_t p1) { pack_b_block(B, ldb, false, N, k0, kc, bp, p0, p1); };
    if (t.parallel) pool->parallel_for(panels, 4, pack);
    else pack(0, panels);
    run_tiles(t.m_tiles * t.n_tiles, t.parallel, pool, [&](int64_t q) {
      const int64_t m0 = (q % t.m_tiles) * t.mc, m1 = std::min(M, m0 + t.mc);
      const int64_t n0 = (q / t.m_tiles) * t.nc, n1 = std::min(N, n0 + t.nc);
      tile_kblock(m0, m1, M, n0, n1, N, k0, kc, a, bp, C, ldc, k0 > 0, beta, last ? fused : nullptr);
      if (last) activation_sweep(fused, m0, m1, n0, n1, C, ldc);
    });
  }
}

void sgemm_avx2(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                float* C, int64_t ldc, float beta, ThreadPool* pool) {
  sgemm_avx2_epilogue(M, N, K, A, lda, B, ldb, C, ldc, beta, GemmEpilogue{}, pool);
}

}  // namespace runnx
