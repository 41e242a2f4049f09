// f32 GEMM for AVX2+FMA: C = epilogue(A*B + beta*C), row-major.
//
// B lives in 16-column panels, K-blocked (k_block: equal blocks of up to 1024 rows with AVX-512,
// 256 without): packed once for constant weights (sgemm_avx2_pack_b), or per K-block on the fly. Each
// task owns a tile of C (up to 72 rows x 512 columns) and runs the 6x16 register tile (12 ymm
// accumulators) over it, broadcasting A straight from its rows (or from A packed once). The
// epilogue (bias, residual, activation) runs in registers at the tile's only store after its last
// K-block; exp/erf/tanh activations sweep the finished tile (sgemm_epilogue_avx2.cc holds that
// vector math). Tiles are sized so every thread gets work, M = 1 included.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "common/cpu_features.h"
#include "kernels/cpu/sgemm_avx2.h"

namespace runnx {

namespace {

constexpr int kMr = 6;
constexpr int kNr = 16;
// K is cut into equal blocks (k_block) of at most kKcMax rows: 1152 is two of 576, not 1024 + 128.
// One block of 1024 where a block of 256 kept a panel block in L1: C is then loaded and stored once
// per 1024 k-steps, not per 256, and the panels stream from L2 at the kernel's pace (128x768x768
// on 1 core: 112.5 -> 115.6 GFLOP/s, 99% of the FMA peak; BERT-base b1 -2%). Without AVX-512 it
// stays 256 (the 6x16 kernel wants twice the B bytes per FMA; not measured on such a CPU).
constexpr int64_t kKcMax = 1024, kKcMaxNarrowVectors = 256;
constexpr int64_t kMc = 72;   // multiple of kMr: a tile's A block (72 x 1024 at most) is 288 KB, in L2
constexpr int64_t kNcMax = 512;
// Up to this many rows a parallel GEMM's tiles split only its columns (choose_tiling); a K-block
// of A stays in L2 across them (at most 1 MB; 200-256 rows with K = 768-3072 ran 1-3% faster so
// than cut into row tiles from 129 rows on).
constexpr int64_t kColumnsOnlyRows = 256;
// K-blocks of at most this many rows with A packed run the tile's row groups outer (tile_kblock).
constexpr int64_t kShortK = 64;

// Rows per K-block for a depth of K (a multiple of 8 unless K is smaller).
int64_t k_block(int64_t K) {
  const int64_t cap = sgemm_avx2_uses_avx512() ? kKcMax : kKcMaxNarrowVectors;
  if (K <= cap) return std::max<int64_t>(K, 1);
  const int64_t blocks = (K + cap - 1) / cap;
  return ((K + blocks - 1) / blocks + 7) / 8 * 8;
}
// Below this many multiply-adds (512K, ~10 us on one core) a GEMM runs on the calling thread:
// handing tiles to a worker costs more than it saves. (The pool's caller never waits for a
// sleeping worker, so a worker that wakes late only costs the caller its own wake-up call.)
constexpr int64_t kParallelMacs = int64_t{1} << 19;

// A GEMV-like product (at most kGemvRows rows) is bound by streaming B, not by FMAs; from
// kGemvParallelMacs (512 KB of B at M = 1) it runs on two cores' L2s. Below, the caller runs it
// alone: the tabular MLP's 1x256x256 layer split over 2 threads saved nothing on Zen 5 (3.2 us a
// call either way back to back) and lost 1-2 us a call after the pool had idled or while the
// host placed our vCPUs far apart (settled blocks: 3.8-5.5 us against 3.2-3.5 on the caller).
constexpr int64_t kGemvRows = 3;
constexpr int64_t kGemvParallelMacs = int64_t{1} << 17;
// Up to this many floats of B (512 KB) a GEMV's B stays in the threads' L2s from call to call.
constexpr int64_t kGemvL2Floats = int64_t{1} << 17;
// At most this many floats (4 MB) of an unpacked B are packed at a time: one K-block of a column chunk.
constexpr int64_t kPackBlockFloats = int64_t{1} << 20;

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};

float* aligned_floats(int64_t n) {
  size_t bytes = (static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(float) + 63) / 64 * 64;
  auto* p = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (!p) throw std::bad_alloc();
  return p;
}

// Per-thread buffers, grown as needed and kept (attention calls small GEMMs thousands of times
// per run): kPackB holds B packed on the fly by the calling thread (pool workers read the
// caller's), kTile a tile's own copy of its residual (on the thread that runs the tile). No GEMM
// runs inside another on the same thread.
enum Scratch { kPackB, kTile, kScratchKinds };
thread_local std::unique_ptr<float, FreeDeleter> t_scratch[kScratchKinds];
thread_local int64_t t_scratch_floats[kScratchKinds] = {};
float* scratch(Scratch kind, int64_t floats) {
  if (floats > t_scratch_floats[kind]) {
    t_scratch[kind].reset(aligned_floats(floats));
    t_scratch_floats[kind] = floats;
  }
  return t_scratch[kind].get();
}

int64_t panels_of(int64_t N) { return (N + kNr - 1) / kNr; }

// dst[k * kNr + j] = src[j * ldb + k] for j, k < 8: an 8x8 block of B^T written as eight
// 8-float runs of a 16-wide panel.
inline void transpose8x8_into_panel(const float* src, int64_t ldb, float* dst) {
  const __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + ldb), r2 = _mm256_loadu_ps(src + 2 * ldb),
               r3 = _mm256_loadu_ps(src + 3 * ldb), r4 = _mm256_loadu_ps(src + 4 * ldb),
               r5 = _mm256_loadu_ps(src + 5 * ldb), r6 = _mm256_loadu_ps(src + 6 * ldb),
               r7 = _mm256_loadu_ps(src + 7 * ldb);
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  _mm256_storeu_ps(dst + 0 * kNr, _mm256_permute2f128_ps(u0, u4, 0x20));
  _mm256_storeu_ps(dst + 1 * kNr, _mm256_permute2f128_ps(u1, u5, 0x20));
  _mm256_storeu_ps(dst + 2 * kNr, _mm256_permute2f128_ps(u2, u6, 0x20));
  _mm256_storeu_ps(dst + 3 * kNr, _mm256_permute2f128_ps(u3, u7, 0x20));
  _mm256_storeu_ps(dst + 4 * kNr, _mm256_permute2f128_ps(u0, u4, 0x31));
  _mm256_storeu_ps(dst + 5 * kNr, _mm256_permute2f128_ps(u1, u5, 0x31));
  _mm256_storeu_ps(dst + 6 * kNr, _mm256_permute2f128_ps(u2, u6, 0x31));
  _mm256_storeu_ps(dst + 7 * kNr, _mm256_permute2f128_ps(u3, u7, 0x31));
}

// Columns [c0, c1) of one row of B, a line per 16 floats, with prefetch hint HINT.
template <auto HINT>
inline void prefetch_columns(const float* row, int64_t c0, int64_t c1) {
  for (int64_t c = c0; c < c1; c += 16) _mm_prefetch(reinterpret_cast<const char*>(row + c), HINT);
}

// Panels [p0, p1) of B[k0:k0+kc, :] into out (panel p at out + p*kc*16, rows of 16, zero-padded);
// of B given as is, only the block's rows [r0, r1) (r1 < 0: to its end).
void pack_b_block(const float* B, int64_t ldb, bool transposed, int64_t N, int64_t k0, int64_t kc, float* out,
                  int64_t p0, int64_t p1, int64_t r0 = 0, int64_t r1 = -1) {
  if (!transposed) {
    // Row by row: each row's part is read front to back, one sequential stream the hardware
    // prefetcher follows, and the row two ahead is prefetched into L1, the row eight ahead into
    // L2 (at batch 32 B comes from DRAM: ResNet-50's 1x1 and Winograd convs 1.5-2% faster, per-node
    // minimum; eight ahead into L1 made batch 1's Winograd 2-4% slower). (Panel by panel, a K-block
    // was kc streams of 64 bytes each: packing took 27% of a 1x1 256 -> 64 convolution's samples.)
    const int64_t full = std::min(p1, N / kNr);
    const int64_t c0 = p0 * kNr, c1 = std::min(N, p1 * kNr);
    if (r1 < 0) r1 = kc;
    for (int64_t k = r0; k < r1; ++k) {
      const float* row = B + (k0 + k) * ldb;
      if (k + 2 < r1) prefetch_columns<_MM_HINT_T0>(row + 2 * ldb, c0, c1);
      if (k + 8 < r1) prefetch_columns<_MM_HINT_T1>(row + 8 * ldb, c0, c1);
      for (int64_t p = p0; p < full; ++p) {
        float* dst = out + p * kc * kNr + k * kNr;
        _mm256_storeu_ps(dst, _mm256_loadu_ps(row + p * kNr));
        _mm256_storeu_ps(dst + 8, _mm256_loadu_ps(row + p * kNr + 8));
      }
      for (int64_t p = std::max(full, p0); p < p1; ++p) {
        float* dst = out + p * kc * kNr + k * kNr;
        const int64_t w = std::min<int64_t>(kNr, N - p * kNr);
        for (int64_t j = 0; j < kNr; ++j) dst[j] = j < w ? row[p * kNr + j] : 0.f;
      }
    }
    return;
  }
  // B given as B^T (N x K): column j of B is row j of the source. Full panels go in 8x8 blocks
  // (each source row read 8 floats at a time); the K tail and a partial panel as scalars.
  for (int64_t p = p0; p < p1; ++p) {
    float* dst = out + p * kc * kNr;
    const int64_t c0 = p * kNr, w = std::min<int64_t>(kNr, N - c0);
    int64_t k = 0;
    if (w == kNr)
      for (; k + 8 <= kc; k += 8) {
        const float* src = B + c0 * ldb + k0 + k;
        transpose8x8_into_panel(src, ldb, dst + k * kNr);
        transpose8x8_into_panel(src + 8 * ldb, ldb, dst + k * kNr + 8);
      }
    for (int64_t j = 0; j < kNr; ++j) {
      const float* src = B + (c0 + j) * ldb + k0;
      for (int64_t kk = k; kk < kc; ++kk) dst[kk * kNr + j] = j < w ? src[kk] : 0.f;
    }
  }
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

// Sigmoid, Tanh, GELU: long exp/erf/tanh chains run faster as a sweep over a whole
// tile (many independent vectors in flight) than interleaved with the stores of each 6x16 tile
// (measured: 512x768x768 + bias + residual + GELU 3-4% slower in registers). Their bias and
// residual still go in registers; the tile driver sweeps the activation (activation_sweep).
bool heavy_act(const GemmEpilogue& epi) {
  using A = GemmEpilogue::Act;
  return epi.act == A::kSigmoid || epi.act == A::kTanh || epi.act == A::kGeluErf || epi.act == A::kGeluTanh;
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

// Rows of full vectors (16 columns, or the 8 of a half-width edge panel: N = 24 is 16 + 8) out
// to C through TileOut: acc + C_old (accumulate) or beta * C_old, bias, residual, then the cheap
// activations, with the constants set up once per tile: ReLU and Clip as one max/min pair,
// LeakyRelu as a blend, HardSwish as v * clamp(alpha * v + shift, 0, 1) (a switch per vector over
// every activation, inlined with every exp/erf chain into the unrolled loops, cost ~10% of a
// K = 16 GEMM). The heavy ones (sigmoid, tanh, GELU) run after the tile (activation_sweep).
// The one epilogue of full rows, used from the micro-kernel's registers and from store_tile.
struct FullRows {
  using Act = GemmEpilogue::Act;
  float* C;
  int64_t ldc, ldr = 0;
  const float* bias = nullptr;  // per row: at the tile's first row
  const float* res = nullptr;   // at the tile's (row, col)
  bool accumulate, scaled, col_bias = false, row_bias = false, clamp = false, leaky = false, hswish = false;
  __m256 vbeta, cb0, cb1, lo, hi, slope, shift;

  explicit FullRows(const TileOut& o)
      : C(o.C), ldc(o.ldc), accumulate(o.accumulate), scaled(!o.accumulate && o.beta != 0.f) {
    const GemmEpilogue* epi = o.epi;
    vbeta = _mm256_set1_ps(o.beta);
    cb0 = cb1 = lo = slope = shift = _mm256_setzero_ps();
    hi = _mm256_set1_ps(std::numeric_limits<float>::infinity());
    if (!epi) return;
    col_bias = epi->bias && !epi->bias_per_row;
    row_bias = epi->bias && epi->bias_per_row;
    if (row_bias) bias = epi->bias + o.row;
    if (epi->residual) {
      res = epi->residual + o.row * epi->ldr + o.col;
      ldr = epi->ldr;
    }
    if (col_bias) cb0 = _mm256_loadu_ps(epi->bias + o.col);
    if (col_bias && o.ncols == kNr) cb1 = _mm256_loadu_ps(epi->bias + o.col + 8);
    const Act act = heavy_act(*epi) ? Act::kNone : epi->act;
    clamp = act == Act::kRelu || act == Act::kClip;
    leaky = act == Act::kLeakyRelu;
    hswish = act == Act::kHardSwish;
    if (act == Act::kClip) {
      lo = _mm256_set1_ps(epi->clip_lo);
      hi = _mm256_set1_ps(epi->clip_hi);
    }
    if (leaky || hswish) slope = _mm256_set1_ps(epi->alpha);
    if (hswish) shift = _mm256_set1_ps(epi->shift);
  }

  __m256 activate(__m256 v) const {
    if (clamp) return _mm256_min_ps(_mm256_max_ps(v, lo), hi);
    const __m256 zero = _mm256_setzero_ps();
    if (leaky) return _mm256_blendv_ps(v, _mm256_mul_ps(v, slope), _mm256_cmp_ps(v, zero, _CMP_LT_OQ));
    if (hswish)
      return _mm256_mul_ps(v, _mm256_min_ps(_mm256_max_ps(_mm256_fmadd_ps(v, slope, shift), zero), _mm256_set1_ps(1.f)));
    return v;
  }

  // Row i of the tile, v0 its first 8 columns and v1 the next 8 (unused unless TWO).
  template <bool TWO>
  __attribute__((always_inline)) void store(int i, __m256 v0, __m256 v1) const {
    float* c = C + i * ldc;
    if (accumulate) {
      v0 = _mm256_add_ps(v0, _mm256_loadu_ps(c));
      if (TWO) v1 = _mm256_add_ps(v1, _mm256_loadu_ps(c + 8));
    } else if (scaled) {
      v0 = _mm256_fmadd_ps(vbeta, _mm256_loadu_ps(c), v0);
      if (TWO) v1 = _mm256_fmadd_ps(vbeta, _mm256_loadu_ps(c + 8), v1);
    }
    if (col_bias) {
      v0 = _mm256_add_ps(v0, cb0);
      if (TWO) v1 = _mm256_add_ps(v1, cb1);
    } else if (row_bias) {
      const __m256 rb = _mm256_set1_ps(bias[i]);
      v0 = _mm256_add_ps(v0, rb);
      if (TWO) v1 = _mm256_add_ps(v1, rb);
    }
    if (res) {
      const float* r = res + i * ldr;
      v0 = _mm256_add_ps(v0, _mm256_loadu_ps(r));
      if (TWO) v1 = _mm256_add_ps(v1, _mm256_loadu_ps(r + 8));
    }
    v0 = activate(v0);
    if (TWO) v1 = activate(v1);
    _mm256_storeu_ps(c, v0);
    if (TWO) _mm256_storeu_ps(c + 8, v1);
  }
};

// The MR x ncols result in `tile` (row i at tile + i*16) out to C through TileOut.
template <int MR>
inline void store_tile(const float* tile, const TileOut& o) {
  const GemmEpilogue* epi = o.epi;
  if (o.ncols == kNr || o.ncols == 8) {
    const FullRows rows(o);
    if (o.ncols == kNr) {
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i) rows.store<true>(i, _mm256_load_ps(tile + i * kNr), _mm256_load_ps(tile + i * kNr + 8));
    } else {
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i) rows.store<false>(i, _mm256_load_ps(tile + i * kNr), _mm256_setzero_ps());
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
    if (heavy_act(*epi)) e.act = GemmEpilogue::Act::kNone;
    sgemm_avx2_epilogue_block(e, 0, MR, 0, o.ncols, t, kNr);
  }
  for (int i = 0; i < MR; ++i) std::memcpy(o.C + i * o.ldc, t + i * kNr, o.ncols * sizeof(float));
}

// acc(MR x 16) = A(MR rows, kc) * Bp(kc x 16), then out through store_tile. Every loop over the
// accumulators has the compile-time bound MR, so they stay in registers. Few rows give too few
// independent FMA chains to hide the FMA latency (M = 1: two chains, a quarter of the peak), so
// those kernels keep KS sets of accumulators over interleaved k and add them at the end; so does
// the 8-column edge kernel (6 rows are 6 chains: 1x1 convs at 14x14, N = 196 = 12 * 16 + 4).
// A is read in place (row i at A + i*lda; its MR x kc block stays in L1 across the panel), or,
// when PACKED_A, from a packed micro-panel (element (i, k) at A + k*6 + i). NH = 1 computes only
// the panel's first 8 columns: a right-edge panel of at most 8 (N = 24 is 16 + 8) skips the FMAs
// on its zero padding. `pf_lines` 64-byte lines from `pf` (the caller's share of the next panel)
// are prefetched into L1 one every 8 k-steps: issued back to back before the call they filled the
// L1 miss buffers and the prefetch instruction itself stalled (6% of BERT-base's time at batch 8).
template <int MR, bool PACKED_A, int NH>
void micro_kernel(int64_t kc, const float* __restrict A, int64_t lda, const float* __restrict Bp,
                  const TileOut& out, const float* pf, int64_t pf_lines) {
  auto a_at = [&](int i, int64_t k) { return PACKED_A ? A + k * kMr + i : A + i * lda + k; };
  constexpr int KS = MR * NH >= 8 ? 1 : MR * NH >= 4 ? 2 : 4;
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
    if constexpr (MR <= 3) {
      // GEMV-like: every k-step reads a whole line of the panel and little else, so the next
      // panel comes a line per k-step (one every 8 left most of it to a burst after the loop).
#pragma GCC unroll 4
      for (int s = 0; s < KS; ++s)
        if (pf_lines > 0) {
          _mm_prefetch(reinterpret_cast<const char*>(pf), _MM_HINT_T0);
          pf += 16;
          --pf_lines;
        }
    } else if ((k & 7) == 0 && pf_lines > 0) {
      _mm_prefetch(reinterpret_cast<const char*>(pf), _MM_HINT_T0);
      pf += 16;
      --pf_lines;
    }
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
  for (; pf_lines > 0; --pf_lines, pf += 16) _mm_prefetch(reinterpret_cast<const char*>(pf), _MM_HINT_T0);
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
  // A full panel goes out straight from the registers, its epilogue (if any) applied on the way.
  // (Through the buffer and store_tile it cost 15% of a 1x1 64 -> 256 convolution, whose tiles
  // are only ~400 cycles of FMAs.)
  if constexpr (NH == 2) {
    if (out.ncols == kNr) {
      const FullRows rows(out);
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i) rows.store<true>(i, acc[0][i][0], acc[0][i][1]);
      return;
    }
  }
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

// micro_kernel_24 under AVX-512: MR <= 6 rows x (a 512-bit and a 256-bit vector), 12 accumulators,
// a broadcast of A feeding both; 6 rows a pass where the 256-bit kernel's registers hold 4. Each
// element is one FMA chain in k order as there: the same sums, bit for bit.
template <int MR>
__attribute__((target("avx512f"))) void micro_kernel_24_512(int64_t kc, const float* __restrict A, int64_t lda,
                                                             const float* __restrict B16,
                                                             const float* __restrict B8, const TileOut& out16,
                                                             const TileOut& out8) {
  __m512 acc16[MR];
  __m256 acc8[MR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    acc16[i] = _mm512_setzero_ps();
    acc8[i] = _mm256_setzero_ps();
  }
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b16 = _mm512_load_ps(B16 + k * kNr);
    const __m256 b8 = _mm256_load_ps(B8 + k * kNr);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m512 a = _mm512_set1_ps(A[i * lda + k]);
      acc16[i] = _mm512_fmadd_ps(a, b16, acc16[i]);
      acc8[i] = _mm256_fmadd_ps(_mm512_castps512_ps256(a), b8, acc8[i]);
    }
  }
  alignas(64) float t16[MR * kNr], t8[MR * kNr];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    _mm512_store_ps(t16 + i * kNr, acc16[i]);
    _mm256_store_ps(t8 + i * kNr, acc8[i]);
  }
  store_tile<MR>(t16, out16);
  store_tile<MR>(t8, out8);
}

constexpr Kernel24 kKernels24Wide[kMr + 1] = {nullptr,
                                              micro_kernel_24_512<1>,
                                              micro_kernel_24_512<2>,
                                              micro_kernel_24_512<3>,
                                              micro_kernel_24_512<4>,
                                              micro_kernel_24_512<5>,
                                              micro_kernel_24_512<6>};

// 2*MR 512-bit accumulators out through two TileOuts of MR full rows: acc[i] is row i of o0, and
// acc[MR + i] row i of o1. (No lambdas in these kernels: they would not inherit the avx512f target.)
template <int MR>
__attribute__((target("avx512f"), always_inline)) inline void store_pair(const __m512* acc, const TileOut& o0,
                                                                         const TileOut& o1) {
  const FullRows r0(o0), r1(o1);
#pragma GCC unroll 12
  for (int i = 0; i < 2 * MR; ++i)
    (i < MR ? r0 : r1)
        .store<true>(i % MR, _mm512_castps512_ps256(acc[i]),
                     _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[i]), 1)));
}

// Two 6-row groups (12 rows) of packed A x a full 16-column panel in 512-bit registers: one
// 16-float vector of B and 12 broadcasts feed 12 FMAs that each do two 256-bit FMAs' work, so a
// k-step takes 25 instructions where two 6x16 steps take 40. The FMA rate is the same (Zen 4
// splits each 512-bit FMA in two); what it saves is front-end bandwidth, which a busy SMT sibling
// halves (our guess at why the shared host's slow periods slowed the 6x16 loops more than
// onnxruntime's 512-bit kernels). A0, A1: the groups' packed micro-panels (element (i, k) at
// + k*6 + i); o0, o1 their outputs. Only where sgemm_avx2_uses_avx512(); the sums are the 6x16
// kernel's, bit for bit. (A read in place keeps 6x16: 12 rows were 12 row streams, 1x1 at 7x7 +12%.)
__attribute__((target("avx512f"))) void micro_kernel_12x16(int64_t kc, const float* __restrict A0,
                                                            const float* __restrict A1, const float* __restrict Bp,
                                                            const TileOut& o0, const TileOut& o1, const float* pf,
                                                            int64_t pf_lines) {
  __m512 acc[2 * kMr];
#pragma GCC unroll 12
  for (int i = 0; i < 2 * kMr; ++i) acc[i] = _mm512_setzero_ps();
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    if ((k & 7) == 0 && pf_lines > 0) {
      _mm_prefetch(reinterpret_cast<const char*>(pf), _MM_HINT_T0);
      pf += 16;
      --pf_lines;
    }
    const __m512 b = _mm512_load_ps(Bp + k * kNr);
#pragma GCC unroll 6
    for (int i = 0; i < kMr; ++i) {
      acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(A0[k * kMr + i]), b, acc[i]);
      acc[kMr + i] = _mm512_fmadd_ps(_mm512_set1_ps(A1[k * kMr + i]), b, acc[kMr + i]);
    }
  }
  for (; pf_lines > 0; --pf_lines, pf += 16) _mm_prefetch(reinterpret_cast<const char*>(pf), _MM_HINT_T0);
  store_pair<kMr>(acc, o0, o1);
}

// One k-step of the 6x32 kernel: row i's A element times both panels' row k.
template <int MR>
__attribute__((target("avx512f"), always_inline)) inline void step_6x32(__m512* acc, const float* __restrict A,
                                                                        int64_t lda, const float* __restrict B0,
                                                                        const float* __restrict B1, int64_t k) {
  const __m512 b0 = _mm512_loadu_ps(B0 + k * kNr), b1 = _mm512_loadu_ps(B1 + k * kNr);
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    const __m512 a = _mm512_set1_ps(A[i * lda + k]);
    acc[i] = _mm512_fmadd_ps(a, b0, acc[i]);
    acc[MR + i] = _mm512_fmadd_ps(a, b1, acc[MR + i]);
  }
}

// MR <= 6 rows of A read in place x two full 16-column panels (B0, B1) in 512-bit registers: each
// broadcast of A feeds two FMAs, so a k-step is 20 instructions where two 6x16 steps take 40 (what
// the 12x16 kernel saves for packed A; here 12 rows would be 12 row streams). Activations as A:
// channels-last convs (rows = pixels or Winograd tiles) and MatMul. o0, o1 the panels' outputs.
// Four k-steps per loop trip with one prefetch check (a check per k-step compiled to two branches
// and an index computation in every step). Up to 2 rows (4 FMA chains, too few for the FMA
// latency) keep a second set of accumulators for the odd k-steps. Fewer than 6 rows are a tile's
// last group (128 rows: 21 groups and a 2-row one); two 256-bit calls, one a panel, ran them
// slower (4x768x768 on one core: 56 -> 51 us; 8 = 6 + 2 rows: 101 -> 98.5 us).
template <int MR>
__attribute__((target("avx512f"))) void micro_kernel_6x32(int64_t kc, const float* __restrict A, int64_t lda,
                                                           const float* __restrict B0,
                                                           const float* __restrict B1, const TileOut& o0,
                                                           const TileOut& o1, const float* pf, int64_t pf_lines) {
  constexpr int KS = MR <= 2 ? 2 : 1;
  __m512 acc[KS][2 * MR];
#pragma GCC unroll 2
  for (int s = 0; s < KS; ++s)
#pragma GCC unroll 12
    for (int i = 0; i < 2 * MR; ++i) acc[s][i] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 4 <= kc; k += 4) {
    if (pf_lines > 0) {  // two panels' worth of next lines: one every 4 k-steps
      _mm_prefetch(reinterpret_cast<const char*>(pf), _MM_HINT_T0);
      pf += 16;
      --pf_lines;
    }
    step_6x32<MR>(acc[0], A, lda, B0, B1, k);
    step_6x32<MR>(acc[KS - 1], A, lda, B0, B1, k + 1);
    step_6x32<MR>(acc[0], A, lda, B0, B1, k + 2);
    step_6x32<MR>(acc[KS - 1], A, lda, B0, B1, k + 3);
  }
  for (; k < kc; ++k) step_6x32<MR>(acc[0], A, lda, B0, B1, k);
  for (; pf_lines > 0; --pf_lines, pf += 16) _mm_prefetch(reinterpret_cast<const char*>(pf), _MM_HINT_T0);
  if constexpr (KS == 2)
#pragma GCC unroll 12
    for (int i = 0; i < 2 * MR; ++i) acc[0][i] = _mm512_add_ps(acc[0][i], acc[1][i]);
  store_pair<MR>(acc[0], o0, o1);
}

using TwinKernel = void (*)(int64_t, const float*, int64_t, const float*, const float*, const TileOut&,
                            const TileOut&, const float*, int64_t);
constexpr TwinKernel kTwinKernels[kMr + 1] = {nullptr,
                                              micro_kernel_6x32<1>,
                                              micro_kernel_6x32<2>,
                                              micro_kernel_6x32<3>,
                                              micro_kernel_6x32<4>,
                                              micro_kernel_6x32<5>,
                                              micro_kernel_6x32<6>};

// GEMV-like rows (MR <= 3, A in place) x one 16-column panel in 512-bit registers. Bound by
// streaming B from L3 (a BERT-sized B is 2-9 MB): one 64-byte load per line of the panel, and a
// prefetch kGemvAhead lines ahead (the panels of a K-block are one stream). 1x3072x768 on one
// core, Zen 4: 164 -> 108 us (onnxruntime ~125); the 256-bit kernel's two loads a line and its
// prefetch of the next panel ran at 57 GB/s; there two to four panels side by side, or a prefetch
// 16-64 lines ahead, were slower. On Zen 5 the prefetch (32-128 lines alike) took 2 threads from
// 49-50 to 41-43 us on 1x768x3072 and 1x3072x768, 44.5 -> 37 us on 1x1000x2048 (L2-resident B:
// unchanged); re-measure on Zen 4.
constexpr int64_t kGemvAhead = 32;
template <int MR>
__attribute__((target("avx512f"))) void gemv_kernel_512(int64_t kc, const float* __restrict A, int64_t lda,
                                                         const float* __restrict B, const TileOut& out) {
  // Sets of accumulators over interleaved k-steps, for the FMA latency: one row alone has one FMA
  // a k-step, so four (two chains held a 1x256x256 layer from L2 to one 64-byte line per two cycles).
  constexpr int KS = MR == 1 ? 4 : 2;
  __m512 acc[KS][MR];
#pragma GCC unroll 4
  for (int s = 0; s < KS; ++s)
#pragma GCC unroll 3
    for (int i = 0; i < MR; ++i) acc[s][i] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + KS <= kc; k += KS) {
#pragma GCC unroll 4
    for (int s = 0; s < KS; ++s) {
      _mm_prefetch(reinterpret_cast<const char*>(B + (k + s + kGemvAhead) * kNr), _MM_HINT_T0);
      const __m512 b = _mm512_loadu_ps(B + (k + s) * kNr);
#pragma GCC unroll 3
      for (int i = 0; i < MR; ++i) acc[s][i] = _mm512_fmadd_ps(_mm512_set1_ps(A[i * lda + k + s]), b, acc[s][i]);
    }
  }
  for (; k < kc; ++k) {
    const __m512 b = _mm512_loadu_ps(B + k * kNr);
#pragma GCC unroll 3
    for (int i = 0; i < MR; ++i) acc[0][i] = _mm512_fmadd_ps(_mm512_set1_ps(A[i * lda + k]), b, acc[0][i]);
  }
  alignas(64) float tile[MR * kNr];
#pragma GCC unroll 3
  for (int i = 0; i < MR; ++i) {
    __m512 sum = acc[0][i];
#pragma GCC unroll 3
    for (int s = 1; s < KS; ++s) sum = _mm512_add_ps(sum, acc[s][i]);
    _mm512_store_ps(tile + i * kNr, sum);
  }
  store_tile<MR>(tile, out);
}

using GemvKernel = void (*)(int64_t, const float*, int64_t, const float*, const TileOut&);
constexpr GemvKernel kGemvKernels[kGemvRows + 1] = {nullptr, gemv_kernel_512<1>, gemv_kernel_512<2>,
                                                    gemv_kernel_512<3>};

}  // namespace

bool sgemm_avx2_uses_avx512() {
  static const bool use = cpu_features().avx512f && !std::getenv("RUNNX_DISABLE_AVX512");
  return use;
}

int64_t sgemm_avx2_pack_scratch_floats() { return t_scratch_floats[kPackB]; }

namespace {

using MicroKernel = void (*)(int64_t, const float*, int64_t, const float*, const TileOut&, const float*, int64_t);
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

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Rows [m0, m1) x columns [n0, n1) of C: one task.
struct TileRect {
  int64_t m0, m1, n0, n1;
};

// How C is cut into tasks: m_tiles x n_tiles tiles over its 6-row groups and 16-column panels,
// each tile an even share of both (1024 rows in 15 tiles are 66 or 72 rows, not 14 x 72 and a
// 16: the threads finish together), numbered row-major.
struct Tiling {
  int64_t M, N, groups, panels, m_tiles, n_tiles;
  bool parallel;
  int64_t count() const { return m_tiles * n_tiles; }
  TileRect tile(int64_t q) const {
    const int64_t a = q / n_tiles, b = q % n_tiles;
    return {std::min(M, a * groups / m_tiles * kMr), std::min(M, (a + 1) * groups / m_tiles * kMr),
            b * panels / n_tiles * kNr, std::min(N, (b + 1) * panels / n_tiles * kNr)};
  }
};

Tiling choose_tiling(int64_t M, int64_t N, int64_t K, ThreadPool* pool) {
  const int threads = pool ? pool->num_threads() : 1;
  Tiling t{M, N, (M + kMr - 1) / kMr, (N + kNr - 1) / kNr, 1, 1, threads > 1 && M * N * K >= kParallelMacs};
  // At most two panels wide (the narrow path streams A once, B stays in L1): taller tiles, so a
  // thread's prefetch runs on into its own next rows.
  const bool narrow = N <= 2 * kNr;
  t.m_tiles = (t.groups * kMr + (narrow ? 8 * kMc : kMc) - 1) / (narrow ? 8 * kMc : kMc);
  t.n_tiles = (t.panels + kNcMax / kNr - 1) / (kNcMax / kNr);
  if (t.parallel) {
    // Enough tiles that stealing evens out (3 per thread; 8 when at most two panels wide, where
    // a shorter tile costs nothing: B is tiny and A is read once either way), narrowing columns
    // first (a narrower tile repacks less of A than a shorter one re-reads of B), down to 4
    // panels, or to one when all rows fit one tile (M = 49 at 7x7, an MLP's batch: each part of
    // B is then streamed from L3 once, not once per row tile).
    const int64_t want = (narrow ? 8 : 3) * threads;
    auto split = [&](int64_t& tiles, int64_t units, int64_t min_units) {
      while (t.count() < want) {
        const int64_t more = std::min(tiles * 2, units / min_units);
        if (more <= tiles) break;
        tiles = more;
      }
    };
    // Up to kColumnsOnlyRows rows, with panels for `want` column tiles of 4 or more: one row
    // tile, so the threads split columns only and each runs the same rows. Cut into row tiles,
    // 128 rows were 66 on one thread and 62 with the slow 2-row tail group on the other
    // (128x768x768 on 2 threads: 219 -> 225 GFLOP/s; from 384 rows, row tiles are as fast or faster).
    if (!narrow && M <= kColumnsOnlyRows && t.panels >= 4 * want) t.m_tiles = 1;
    split(t.n_tiles, t.panels, M <= kMc ? 1 : 4);
    split(t.m_tiles, t.groups, 1);
    split(t.n_tiles, t.panels, 1);
    // A count that is not a multiple of the threads leaves one thread a whole tile longer (7
    // tiles on 2 threads: 4 against 3.5, 14% on ResNet-50's 256 -> 64 conv at 56x56): the fewest
    // more column tiles (7 -> 8) or row tiles (15 x 1 -> 16 x 1) that make it one.
    auto fit = [&](int64_t tiles, int64_t other, int64_t units) {
      while (tiles < units && tiles * other % threads != 0) ++tiles;
      return tiles * other % threads == 0 ? tiles : int64_t{0};
    };
    if (t.count() % threads != 0) {
      const int64_t n = fit(t.n_tiles, t.m_tiles, t.panels), m = fit(t.m_tiles, t.n_tiles, t.groups);
      if (n && (!m || n * t.m_tiles <= m * t.n_tiles)) t.n_tiles = n;
      else if (m) t.m_tiles = m;
    }
  }
  if (M <= kGemvRows && threads > 1 && M * N * K >= kGemvParallelMacs) {
    // Thread t runs its own share of the column ranges first (run_tiles), so call after call each
    // core reads the same part of B. A B that fits the L2s takes one range per thread: each core
    // keeps its half there (measured on the MLP's 256x256 layer when it was split, Zen 4: its
    // batch-1 call 4.60-4.65 -> 4.38-4.52 us; four ranges, 4.65). A larger B streams from L3 and
    // takes four: a worker that joins late still finds part of its share left (MobileNetV2's
    // 1280x1000 classifier was 12% slower with one).
    t.parallel = true;
    t.n_tiles = std::min<int64_t>((K * N <= kGemvL2Floats ? 1 : 4) * threads, t.panels);
  }
  return t;
}

// Where a tile's A rows come from: A itself (row i at A + i*lda), or A packed once
// (sgemm_avx2_pack_a's layout: K-block k0 at A + k0*mpad, its 6-row group from row i at + i*kc);
// row i of the tile is row row0 + i of A.
struct ASource {
  const float* A;
  int64_t lda;     // in place
  int64_t mpad;    // packed: rows rounded up to 6 (0: in place)
  int64_t row0 = 0;
  const float* at(int64_t i, int64_t k0, int64_t kc) const {
    return mpad ? A + k0 * mpad + (row0 + i) * kc : A + (row0 + i) * lda + k0;
  }
  ASource from_row(int64_t r) const { return {A, lda, mpad, row0 + r}; }
};

// The lines of C that a micro tile (`rows` x `cols` at c) will store, fetched as the tile starts:
// its ~10^4 cycles of FMAs hide their misses. Without it each store waited on its line (a C of
// several MB is in no cache): 1024x768x768 on one core at 95.5% of the FMA peak, 98.5% with it.
inline void prefetch_c(const float* c, int64_t ldc, int rows, int64_t cols) {
  for (int r = 0; r < rows; ++r) {
    const char* p = reinterpret_cast<const char*>(c + r * ldc);
    for (int64_t b = 0; b < cols * 4; b += 64) _mm_prefetch(p + b, _MM_HINT_T0);
    _mm_prefetch(p + cols * 4 - 1, _MM_HINT_T0);
  }
}

// The rows' residual, read at the store: fetched while the K loop runs.
inline void prefetch_residual(const GemmEpilogue* epi, int64_t i, int mr, int64_t j, int ncols) {
  if (!epi || !epi->residual) return;
  for (int r = 0; r < mr; ++r) {
    const float* res = epi->residual + (i + r) * epi->ldr + j;
    _mm_prefetch(reinterpret_cast<const char*>(res), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(res + ncols - 1), _MM_HINT_T0);
  }
}

// Packed A's next block (the tile's next K-block, or the next tile's first), fetched into L2
// while the current block runs. Constant weights come from DRAM every run (ResNet-50's are 100 MB)
// and were read only in each block's first panel pass: a 72-row block (72 KB) had ~1/13 of the
// block's time to arrive at 14x14. ResNet-50 b1, 1 thread, per-node minimum over 20 runs summed,
// 3 alternating rounds: 1x1/s1 convs 30.9-31.1 -> 30.3 ms, 1x1/s2 6.3-6.4 -> 6.2, 3x3/s2 7.4-7.55 -> 7.35.
struct AAhead {
  const char* p = nullptr;
  int64_t lines = 0;  // 64-byte lines
};

// The tile functions below see one tile: C, A's rows (ASource), the epilogue and the K-block's
// panels (panel p at bblock + p*kc*16) all start at its corner; `rows` x `cols` of C, and A has
// `rows_left` rows from the tile's first on (the narrow path prefetches past the tile).

// A tile of at most two panels (a 1x1 convolution to 16-32 channels: M = pixels, K = 96-192) is
// bound by streaming A from memory, each row read once: row groups run outer, both panels (in L1)
// inner, and the A rows two groups ahead (up to the last row) are prefetched, a 6-row group per group.
void narrow_tile_kblock(int64_t rows, int64_t rows_left, int64_t cols, int64_t k0, int64_t kc, const ASource& a,
                        const float* bblock, float* C, int64_t ldc, bool accumulate, float beta,
                        const GemmEpilogue* epi) {
  constexpr int64_t kAhead = 2 * kMr;
  // Exactly 24 columns with A in place: the 24-column kernel, 4-row steps (6 under AVX-512).
  const bool cols24 = cols == kNr + 8 && !a.mpad;
  const bool wide = sgemm_avx2_uses_avx512();
  // Two full panels with A in place under AVX-512: the 6x32 kernel, both panels in one pass over
  // the rows (the 6x16 kernel runs at half Zen 5's 512-bit FMA rate: the MLP's 32x256x256 layer
  // cut into 32-column tiles on 2 threads was no faster than on one).
  const bool twin = cols == 2 * kNr && !a.mpad && wide;
  const int64_t step = cols24 && !wide ? 4 : kMr;
  for (int64_t i = 0; i < rows; i += step) {
    const int64_t ahead = i + kAhead;
    if (ahead < rows_left) {  // into L2 (T0, into L1, measured slower: it evicts the panels)
      if (a.mpad) {
        const char* p = reinterpret_cast<const char*>(a.at(ahead, k0, kc));
        for (int64_t b = 0; b < kMr * kc * 4; b += 64) _mm_prefetch(p + b, _MM_HINT_T1);
      } else {
        for (int64_t r = 0, n = std::min<int64_t>(step, rows_left - ahead); r < n; ++r) {
          const char* p = reinterpret_cast<const char*>(a.at(ahead + r, k0, kc));
          for (int64_t b = 0; b < kc * 4; b += 64) _mm_prefetch(p + b, _MM_HINT_T1);
          _mm_prefetch(p + kc * 4 - 1, _MM_HINT_T1);
        }
      }
    }
    const int mr = static_cast<int>(std::min<int64_t>(step, rows - i));
    if (cols24) {
      prefetch_residual(epi, i, mr, 0, 24);
      const TileOut out16{C + i * ldc, ldc, kNr, accumulate, beta, epi, i, 0};
      const TileOut out8{C + i * ldc + kNr, ldc, 8, accumulate, beta, epi, i, kNr};
      const Kernel24 kernel = (wide ? kKernels24Wide : kKernels24)[mr];
      kernel(kc, a.at(i, k0, kc), a.lda, bblock, bblock + kc * kNr, out16, out8);
      continue;
    }
    if (twin) {
      prefetch_residual(epi, i, mr, 0, 2 * kNr);
      const TileOut out0{C + i * ldc, ldc, kNr, accumulate, beta, epi, i, 0};
      const TileOut out1{C + i * ldc + kNr, ldc, kNr, accumulate, beta, epi, i, kNr};
      kTwinKernels[mr](kc, a.at(i, k0, kc), a.lda, bblock, bblock + kc * kNr, out0, out1, nullptr, 0);
      continue;
    }
    for (int64_t j = 0; j < cols; j += kNr) {
      const int ncols = static_cast<int>(std::min<int64_t>(kNr, cols - j));
      prefetch_residual(epi, i, mr, j, ncols);
      const TileOut out{C + i * ldc + j, ldc, ncols, accumulate, beta, epi, i, j};
      kKernels[a.mpad != 0][ncols <= 8][mr](kc, a.at(i, k0, kc), a.lda, bblock + (j / kNr) * kc * kNr, out,
                                            nullptr, 0);
    }
  }
}

// One K-block of a tile: each panel (in L1 or L2) meets every 6-row group of the tile's A rows
// (in L2) in turn. The next panel is prefetched into L1 a slice per row group, spread over that group's
// K loop: B of a BERT layer (2-9 MB) comes from L3, and the first row group of each panel
// otherwise stalls on it (128x3072x768: 7.3 -> 6.9 ms on one core; spread rather than issued
// before each group: BERT-base batch 1 on one core -7% or more).
// `ahead` (when set): A's next block (packed weights), fetched into L2 a few lines per micro tile;
// `b_next` (when set): the tile's first panel of B's next K-block (b_next_kc rows), fetched during
// the last panel like the others (packed weights from DRAM: it would stall the next block's start).
void tile_kblock(int64_t rows, int64_t rows_left, int64_t cols, int64_t k0, int64_t kc, const ASource& a,
                 const float* bblock, float* C, int64_t ldc, bool accumulate, float beta, const GemmEpilogue* epi,
                 const AAhead& ahead = {}, const float* b_next = nullptr, int64_t b_next_kc = 0) {
  if (rows <= kGemvRows && !a.mpad && sgemm_avx2_uses_avx512()) {
    for (int64_t j = 0; j < cols; j += kNr) {
      const int ncols = static_cast<int>(std::min<int64_t>(kNr, cols - j));
      prefetch_residual(epi, 0, static_cast<int>(rows), j, ncols);
      const TileOut out{C + j, ldc, ncols, accumulate, beta, epi, 0, j};
      kGemvKernels[rows](kc, a.at(0, k0, kc), a.lda, bblock + (j / kNr) * kc * kNr, out);
    }
    return;
  }
  if (cols <= 2 * kNr)
    return narrow_tile_kblock(rows, rows_left, cols, k0, kc, a, bblock, C, ldc, accumulate, beta, epi);
  if (a.mpad && kc <= kShortK) {
    // Short K with A packed (a 1x1 convolution on 64 channels): a 6x16 tile is only ~400 cycles
    // of FMAs, so its stores matter; row groups outer write each row of C front to back (a 1x1
    // 64 -> 256 conv at 56x56: 2-5% faster), and the panels (4 KB each) stay in L1/L2.
    for (int64_t i = 0; i < rows; i += kMr) {
      const int mr = static_cast<int>(std::min<int64_t>(kMr, rows - i));
      for (int64_t j = 0; j < cols; j += kNr) {
        const int ncols = static_cast<int>(std::min<int64_t>(kNr, cols - j));
        prefetch_residual(epi, i, mr, j, ncols);
        const TileOut out{C + i * ldc + j, ldc, ncols, accumulate, beta, epi, i, j};
        kKernels[1][ncols <= 8][mr](kc, a.at(i, k0, kc), a.lda, bblock + (j / kNr) * kc * kNr, out, nullptr, 0);
      }
    }
    return;
  }
  const int64_t groups = (rows + kMr - 1) / kMr;
  const bool wide = sgemm_avx2_uses_avx512();  // full panels of packed A: pairs of row groups
  // At most 16 lines a micro tile (a tile of few panels leaves the rest of the block unfetched):
  // a longer burst would fill the miss buffers as the panel prefetch below once did.
  const int64_t a_per_tile =
      std::min<int64_t>(16, (ahead.lines + groups * panels_of(cols) - 1) / (groups * panels_of(cols)));
  int64_t a_line = 0;
  for (int64_t j = 0; j < cols;) {
    const float* panel = bblock + (j / kNr) * kc * kNr;
    // A read in place under AVX-512: two full panels at once (twin, the 6x32 kernel).
    const bool twin = wide && !a.mpad && j + 2 * kNr <= cols;
    const int64_t width = twin ? 2 * kNr : kNr;
    // The next panel(s), or after the last the next K-block's first (b_next, when given).
    const bool last = j + width >= cols;
    const float* next = last ? b_next : panel + (width / kNr) * kc * kNr;
    const int64_t lines = last ? b_next_kc : std::min(width / kNr, panels_of(cols - j - width)) * kc;
    const int64_t per_group = (lines + groups - 1) / groups;
    const int ncols = static_cast<int>(std::min<int64_t>(kNr, cols - j));
    int64_t line = 0;
    const bool pairs = wide && ncols == kNr && a.mpad;
    for (int64_t i = 0; i < rows; i += kMr) {
      // Two full row groups at once (pairs): their share of the next panel and of A's next block.
      const int g = pairs && i + 2 * kMr <= rows ? 2 : 1;
      const int64_t pf_lines = next ? std::min(lines, line + g * per_group) - line : 0;
      const float* pf = next ? next + line * 16 : nullptr;
      line += pf_lines;
      const int mr = static_cast<int>(std::min<int64_t>(kMr, rows - i));
      prefetch_residual(epi, i, mr, j, static_cast<int>(twin ? width : ncols));
      for (const int64_t end = std::min(ahead.lines, a_line + g * a_per_tile); a_line < end; ++a_line)
        _mm_prefetch(ahead.p + a_line * 64, _MM_HINT_T1);
      prefetch_c(C + i * ldc + j, ldc, g == 2 ? 2 * kMr : mr, twin ? width : ncols);
      const TileOut out{C + i * ldc + j, ldc, ncols, accumulate, beta, epi, i, j};
      if (twin) {
        const TileOut out1{C + i * ldc + j + kNr, ldc, kNr, accumulate, beta, epi, i, j + kNr};
        kTwinKernels[mr](kc, a.at(i, k0, kc), a.lda, panel, panel + kc * kNr, out, out1, pf, pf_lines);
        continue;
      }
      if (g == 2) {
        prefetch_residual(epi, i + kMr, kMr, j, ncols);
        const TileOut out1{C + (i + kMr) * ldc + j, ldc, ncols, accumulate, beta, epi, i + kMr, j};
        micro_kernel_12x16(kc, a.at(i, k0, kc), a.at(i + kMr, k0, kc), panel, out, out1, pf, pf_lines);
        i += kMr;
        continue;
      }
      kKernels[a.mpad != 0][ncols <= 8][mr](kc, a.at(i, k0, kc), a.lda, panel, out, pf, pf_lines);
    }
    j += width;
  }
}

// tile(q) for q in [0, count), on the pool when `parallel`, each tile a pool chunk of its own
// (parallel_for_each). Thread t runs its own contiguous share of the row-major tile order,
// [t*count/T, (t+1)*count/T), front to back, then takes tiles from the back of the others'
// shares. So thread t computes the t-th band of rows, the same rows the pool gives it in the next
// kernel (a depthwise conv split by rows reads them where they were written: another core's fresh
// lines read ~2x slower on this VM), and the threads still even out tile by tile (chunks of
// several tiles left one core idle for most of a chunk at 1024^3). (Tiles in a second level of
// shares inside one pool chunk per thread, as before: 1x256x256 on 2 threads 53-55 GFLOP/s
// median, 62-65 this way.)
template <typename F>
void run_tiles(int64_t count, bool parallel, ThreadPool* pool, const F& tile) {
  if (!parallel || count == 1) {
    for (int64_t q = 0; q < count; ++q) tile(q);
    return;
  }
  pool->parallel_for_each(count, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) tile(q);
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


int64_t sgemm_avx2_packed_floats(int64_t K, int64_t N) { return std::max<int64_t>(K, 1) * panels_of(N) * kNr; }

void sgemm_avx2_pack_b(int64_t K, int64_t N, const float* B, int64_t ldb, bool transposed, float* out,
                       ThreadPool* pool) {
  const int64_t panels = panels_of(N);
  const int64_t npad = panels * kNr;
  const int64_t kb = k_block(K), kblocks = (K + kb - 1) / kb;
  auto run = [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t k0 = t * kb, kc = std::min(kb, K - k0);
      pack_b_block(B, ldb, transposed, N, k0, kc, out + k0 * npad, 0, panels);
    }
  };
  if (pool && pool->num_threads() > 1 && K * N > (1 << 16)) pool->parallel_for(kblocks, 1, run);
  else run(0, kblocks);
}

namespace {

// epi safe from C's stores: a residual that overlaps C is copied into `keep`, unless it is C
// itself (same rows, same stride) and `in_place` (the path reads each element before the only
// store to it, or keeps a copy per tile). K = 0 scales C before the epilogue reads it: copied.
GemmEpilogue residual_guard(const GemmEpilogue& epi, int64_t M, int64_t N, int64_t K, const float* C, int64_t ldc,
                            bool in_place, std::vector<float>& keep) {
  if (in_place && K > 0 && epi.residual == C && epi.ldr == ldc) return epi;
  return gemm_residual_copy(epi, M, N, C, ldc, keep);
}

// For tile q of t, working on A's K-block before `k_next`: packed A's next block (the same rows'
// block from k_next, or tile q + 1's first), none when A is read in place.
AAhead a_ahead(const ASource& a, const Tiling& t, int64_t q, int64_t k_next, int64_t K) {
  if (!a.mpad) return {};
  TileRect r = t.tile(q);
  if (k_next >= K) {
    if (q + 1 >= t.count()) return {};
    r = t.tile(q + 1);
    k_next = 0;
  }
  const int64_t kc = std::min(k_block(K), K - k_next);
  const int64_t floats = round_up(r.m1 - r.m0, kMr) * kc;
  return {reinterpret_cast<const char*>(a.from_row(r.m0).at(0, k_next, kc)), (floats * 4 + 63) / 64};
}

// C[:, 0:N] over all of K with B packed whole (panel blocks at Bp + k0*npad): each tile keeps its C
// block in cache across the K-blocks and applies the epilogue in registers on the last one.
void packed_tiles(int64_t M, int64_t N, int64_t K, const ASource& a, const float* Bp, int64_t npad, float* C,
                  int64_t ldc, float beta, const GemmEpilogue& epi, ThreadPool* pool) {
  const bool fused = !epi.trivial();
  // A residual that is C itself: over one K-block each element is read before its only store;
  // over several, C takes partial sums first, so each tile copies its block of it beforehand
  // (on the core that runs the tile: the copy stays in its L2 until the epilogue reads it).
  const int64_t kb = k_block(K);
  const bool save_residual = epi.residual == C && epi.ldr == ldc && K > kb;
  const Tiling t = choose_tiling(M, N, K, pool);
  run_tiles(t.count(), t.parallel, pool, [&](int64_t q) {
    const TileRect r = t.tile(q);
    const int64_t rows = r.m1 - r.m0, cols = r.n1 - r.n0;
    float* c = C + r.m0 * ldc + r.n0;
    GemmEpilogue e = epilogue_at(epi, r.m0, r.n0);
    if (save_residual) {
      float* copy = scratch(kTile, rows * cols);
      for (int64_t i = 0; i < rows; ++i) std::memcpy(copy + i * cols, c + i * ldc, cols * sizeof(float));
      e.residual = copy;
      e.ldr = cols;
    }
    const ASource at = a.from_row(r.m0);
    for (int64_t k0 = 0; k0 < K; k0 += kb) {
      const int64_t kc = std::min(kb, K - k0);
      const int64_t kc_next = std::min(kb, K - k0 - kc);
      tile_kblock(rows, M - r.m0, cols, k0, kc, at, Bp + k0 * npad + r.n0 * kc, c, ldc, k0 > 0, beta,
                  fused && k0 + kc >= K ? &e : nullptr, a_ahead(a, t, q, k0 + kc, K),
                  kc_next > 0 ? Bp + (k0 + kc) * npad + r.n0 * kc_next : nullptr, std::max<int64_t>(kc_next, 0));
    }
    if (fused) activation_sweep(&e, 0, rows, 0, cols, c, ldc);
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
                       float* C, int64_t ldc, float beta, const GemmEpilogue& epi_in, ThreadPool* pool) {
  std::vector<float> keep;
  const GemmEpilogue epi = residual_guard(epi_in, M, N, K, C, ldc, true, keep);
  if (degenerate(M, N, K, C, ldc, beta, epi)) return;
  packed_tiles(M, N, K, ASource{A, lda, 0}, Bp, panels_of(N) * kNr, C, ldc, beta, epi, pool);
}

namespace {

// t[i][j] (rows kSgemmDotCols apart) = A row i . Bt row j for R rows and NC columns, k outer so
// each A row is read once: R*NC accumulators, doubled over interleaved 8-float steps of k when
// that alone would leave fewer than 8 FMA chains; the tail of K in scalars.
template <int R, int NC>
void dot_rows(int64_t K, const float* A, int64_t lda, const float* Bt, float* t) {
  constexpr int KS = R * NC >= 8 ? 1 : 2;
  __m256 acc[KS][R][NC] = {};
  int64_t k = 0;
  for (; k + 8 * KS <= K; k += 8 * KS)
#pragma GCC unroll 2
    for (int s = 0; s < KS; ++s)
#pragma GCC unroll 4
      for (int i = 0; i < R; ++i) {
        const __m256 a = _mm256_loadu_ps(A + i * lda + k + 8 * s);
#pragma GCC unroll 4
        for (int j = 0; j < NC; ++j)
          acc[s][i][j] = _mm256_fmadd_ps(a, _mm256_loadu_ps(Bt + j * K + k + 8 * s), acc[s][i][j]);
      }
  for (; k + 8 <= K; k += 8)
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) {
      const __m256 a = _mm256_loadu_ps(A + i * lda + k);
#pragma GCC unroll 4
      for (int j = 0; j < NC; ++j) acc[0][i][j] = _mm256_fmadd_ps(a, _mm256_loadu_ps(Bt + j * K + k), acc[0][i][j]);
    }
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < NC; ++j) {
      const __m256 v = KS == 2 ? _mm256_add_ps(acc[0][i][j], acc[KS - 1][i][j]) : acc[0][i][j];
      __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
      h = _mm_add_ps(h, _mm_movehl_ps(h, h));
      h = _mm_add_ss(h, _mm_movehdup_ps(h));
      float sum = _mm_cvtss_f32(h);
      for (int64_t q = k; q < K; ++q) sum += A[i * lda + q] * Bt[j * K + q];
      t[i * kSgemmDotCols + j] = sum;
    }
}

using DotRows = void (*)(int64_t, const float*, int64_t, const float*, float*);
template <int NC>
struct DotRow {
  static constexpr DotRows by_rows[5] = {nullptr, dot_rows<1, NC>, dot_rows<2, NC>, dot_rows<3, NC>,
                                         dot_rows<4, NC>};
};
// [columns][rows]; four columns take three rows a step (12 accumulators stay in registers).
constexpr const DotRows* kDotRows[kSgemmDotCols + 1] = {nullptr, DotRow<1>::by_rows, DotRow<2>::by_rows,
                                                        DotRow<3>::by_rows, DotRow<4>::by_rows};

}  // namespace

void sgemm_avx2_dots(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* Bt, float* C,
                     int64_t ldc, float beta, const GemmEpilogue& epi_in, ThreadPool* pool) {
  std::vector<float> keep;
  const GemmEpilogue epi = residual_guard(epi_in, M, N, K, C, ldc, true, keep);
  if (degenerate(M, N, K, C, ldc, beta, epi)) return;
  constexpr int64_t kRows = 64;  // rows per pool task
  const int64_t tasks = (M + kRows - 1) / kRows;
  const bool parallel = pool && pool->num_threads() > 1 && M * N * K >= kParallelMacs;
  const int64_t step = N == 4 ? 3 : 4;
  // One column of more than one row group (a binary classifier's last layer, sigmoid on top): the
  // task's results go side by side into one row, so its epilogue runs 8 rows a vector, not one
  // (Gemm + Sigmoid, 32x1x256: 2.54 -> 1.70 us a call, 1000x1x256: 46 -> 18 us; bit for bit).
  if (N == 1 && M > 4) {
    auto column = [&](int64_t q) {
      const int64_t i0 = q * kRows, r = std::min(M, i0 + kRows) - i0;
      alignas(32) float t[4 * kSgemmDotCols], col[kRows], res[kRows];
      for (int64_t i = 0; i < r; i += 4) {
        const int u1 = static_cast<int>(std::min<int64_t>(4, r - i));
        kDotRows[1][u1](K, A + (i0 + i) * lda, lda, Bt, t);
        for (int u = 0; u < u1; ++u)
          col[i + u] = t[u * kSgemmDotCols] + (beta != 0.f ? beta * C[(i0 + i + u) * ldc] : 0.f);
      }
      if (!epi.trivial()) {
        // Row i0 + u of C is column u of this one-row block: a per-column bias (one value) is
        // the block's row bias, a per-row bias its column bias, the residual gathered alongside.
        GemmEpilogue e = epi;
        if (epi.bias) {
          e.bias = epi.bias_per_row ? epi.bias + i0 : epi.bias;
          e.bias_per_row = !epi.bias_per_row;
        }
        if (epi.residual) {
          for (int64_t u = 0; u < r; ++u) res[u] = epi.residual[(i0 + u) * epi.ldr];
          e.residual = res;
          e.ldr = r;
        }
        sgemm_avx2_epilogue_block(e, 0, 1, 0, r, col, r);
      }
      for (int64_t u = 0; u < r; ++u) C[(i0 + u) * ldc] = col[u];
    };
    run_tiles(tasks, parallel, pool, column);
    return;
  }
  auto rows = [&](int64_t q) {
    for (int64_t i = q * kRows, i1 = std::min(M, i + kRows); i < i1; i += step) {
      const int r = static_cast<int>(std::min<int64_t>(step, i1 - i));
      alignas(32) float t[4 * kSgemmDotCols];
      kDotRows[N][r](K, A + i * lda, lda, Bt, t);
      if (beta != 0.f)
        for (int u = 0; u < r; ++u)
          for (int64_t j = 0; j < N; ++j) t[u * kSgemmDotCols + j] += beta * C[(i + u) * ldc + j];
      if (!epi.trivial()) sgemm_avx2_epilogue_block(epilogue_at(epi, i, 0), 0, r, 0, N, t, kSgemmDotCols);
      for (int u = 0; u < r; ++u) std::memcpy(C + (i + u) * ldc, t + u * kSgemmDotCols, N * sizeof(float));
    }
  };
  run_tiles(tasks, parallel, pool, rows);
}

int64_t sgemm_avx2_packed_a_floats(int64_t M, int64_t K) {
  return std::max<int64_t>(round_up(M, kMr) * K, 1);
}

void sgemm_avx2_pack_a(int64_t M, int64_t K, const float* A, int64_t lda, float* out) {
  const int64_t mpad = round_up(M, kMr), kb = k_block(K);
  for (int64_t k0 = 0; k0 < K; k0 += kb) {
    const int64_t kc = std::min(kb, K - k0);
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
                         int64_t ldc, float beta, const GemmEpilogue& epi_in, ThreadPool* pool) {
  std::vector<float> keep;
  const GemmEpilogue epi = residual_guard(epi_in, M, N, K, C, ldc, true, keep);
  if (degenerate(M, N, K, C, ldc, beta, epi)) return;
  // B is packed a column chunk at a time over all of K (at most ~4 MB: it stays in L3 while
  // every row tile streams it), then the chunk's tiles run with their epilogue.
  const int64_t chunk = std::max<int64_t>(kNr, std::min(round_up(N, kNr), (int64_t{1} << 20) / K / kNr * kNr));
  const ASource a{Ap, 0, round_up(M, kMr)};
  const bool parallel = pool && pool->num_threads() > 1 && M * N * K >= kParallelMacs;
  float* bp = scratch(kPackB, K * chunk);
  const int64_t kb = k_block(K);
  for (int64_t n0 = 0; n0 < N; n0 += chunk) {
    const int64_t w = std::min(chunk, N - n0), panels = panels_of(w), npad = panels * kNr;
    // Tasks of whole rows of the chunk (rows [t0, t1) of B, cut at K-blocks), at least ~16 KB
    // each: one sequential stream each. (Tasks of 4 panels, 256 bytes of each of a K-block's
    // rows, kept the hardware prefetcher from streaming: packing was 14.6% of a 1x1 1024 -> 256
    // convolution's samples at 14x14.)
    auto pack = [&](int64_t t0, int64_t t1) {
      for (int64_t k = t0; k < t1;) {
        const int64_t k0 = k / kb * kb, kc = std::min(kb, K - k0), r1 = std::min(t1 - k0, kc);
        pack_b_block(B + n0, ldb, false, w, k0, kc, bp + k0 * npad, 0, panels, k - k0, r1);
        k = k0 + r1;
      }
    };
    if (parallel) pool->parallel_for(K, std::max<int64_t>(1, 4096 / npad), pack);
    else pack(0, K);
    const GemmEpilogue e = epilogue_at(epi, 0, n0);
    packed_tiles(M, w, K, a, bp, npad, C + n0, ldc, beta, e, parallel ? pool : nullptr);
  }
}

void sgemm_avx2_epilogue(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                         int64_t ldb, float* C, int64_t ldc, float beta, const GemmEpilogue& epi_in,
                         ThreadPool* pool) {
  // Fewer than 4 rows (gemv_like) clear C before they accumulate; more, over several K-blocks,
  // leave partial sums in C: a residual that is C itself is used in place over one block only.
  std::vector<float> keep;
  const GemmEpilogue epi = residual_guard(epi_in, M, N, K, C, ldc, M >= 4 && K <= k_block(K), keep);
  if (degenerate(M, N, K, C, ldc, beta, epi)) return;
  if (M < 4) return gemv_like(M, N, K, A, lda, B, ldb, C, ldc, beta, epi, pool);

  // B is packed one K-block of one column chunk at a time, then every tile of the chunk runs that
  // block (each thread the same tiles each time, unless it steals: its C block stays in its cache
  // across the K-blocks). Chunks of at most kPackBlockFloats (4 MB), cut evenly: a wide B's block
  // stays in L3 while the row tiles stream it, and the per-thread buffer stays small (a whole
  // 1024-deep block of N = 30522 columns was 125 MB, kept by every calling thread).
  const int64_t kb = k_block(K);
  const int64_t max_cols = std::max<int64_t>(kNr, kPackBlockFloats / kb / kNr * kNr);
  const int64_t chunks = (N + max_cols - 1) / max_cols;
  const int64_t chunk = round_up((N + chunks - 1) / chunks, kNr);
  float* bp = scratch(kPackB, chunk * kb);
  const ASource a{A, lda, 0};
  const bool fused = !epi.trivial();
  for (int64_t n0 = 0; n0 < N; n0 += chunk) {
    const int64_t w = std::min(chunk, N - n0), panels = panels_of(w);
    const Tiling t = choose_tiling(M, w, K, pool);
    for (int64_t k0 = 0; k0 < K; k0 += kb) {
      const int64_t kc = std::min(kb, K - k0);
      const bool last = k0 + kc >= K;
      auto pack = [&](int64_t p0, int64_t p1) { pack_b_block(B + n0, ldb, false, w, k0, kc, bp, p0, p1); };
      if (t.parallel) pool->parallel_for(panels, 4, pack);
      else pack(0, panels);
      run_tiles(t.count(), t.parallel, pool, [&](int64_t q) {
        const TileRect r = t.tile(q);
        float* c = C + r.m0 * ldc + n0 + r.n0;
        const GemmEpilogue e = epilogue_at(epi, r.m0, n0 + r.n0);
        const GemmEpilogue* out = fused && last ? &e : nullptr;
        tile_kblock(r.m1 - r.m0, M - r.m0, r.n1 - r.n0, k0, kc, a.from_row(r.m0), bp + r.n0 * kc, c, ldc, k0 > 0,
                    beta, out);
        if (out) activation_sweep(out, 0, r.m1 - r.m0, 0, r.n1 - r.n0, c, ldc);
      });
    }
  }
}

void sgemm_avx2(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                float* C, int64_t ldc, float beta, ThreadPool* pool) {
  sgemm_avx2_epilogue(M, N, K, A, lda, B, ldb, C, ldc, beta, GemmEpilogue{}, pool);
}

}  // namespace runnx
