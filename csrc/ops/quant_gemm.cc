// Integer GEMM (see quant_gemm.h). A register tile is up to 4 rows x 16 columns of int32 sums;
// each step takes one k pair: the pair (a[2k], a[2k+1]) of a row broadcast to every 32-bit lane,
// multiplied with the panel's 16 (b[2k][n], b[2k+1][n]) pairs and summed pairwise (vpmaddwd).
#include "ops/quant_gemm.h"

#include <algorithm>
#include <cstring>

#include "common/cpu_features.h"
#include "ops/vec_math.h"

#if RUNNX_HAVE_TARGET_AVX2
#include <immintrin.h>
#endif

namespace runnx {
namespace {

constexpr int64_t kPanel = 16;     // columns per packed panel
constexpr int64_t kRowBlock = 48;  // rows of A widened together (a multiple of the 4-row tile)
constexpr int64_t kParallelMacs = int64_t{1} << 17;

inline int32_t load_q(const void* p, bool is_unsigned, int64_t i) {
  return is_unsigned ? static_cast<const uint8_t*>(p)[i] : static_cast<const int8_t*>(p)[i];
}

// One tile: R rows of widened A (row stride lda16, k padded to even) times one panel, into C.
template <int R>
void tile_portable(const int16_t* a, int64_t lda16, const int16_t* bp, int64_t kh, int32_t* c, int64_t ldc,
                   int64_t ncols) {
  uint32_t acc[R][kPanel] = {};  // unsigned: wraps like the spec's int32 arithmetic, without UB
  for (int64_t kk = 0; kk < kh; ++kk) {
    const int16_t* b = bp + kk * 2 * kPanel;
    for (int r = 0; r < R; ++r) {
      const int32_t a0 = a[r * lda16 + 2 * kk], a1 = a[r * lda16 + 2 * kk + 1];
      for (int64_t j = 0; j < kPanel; ++j)
        acc[r][j] += static_cast<uint32_t>(a0 * b[2 * j] + a1 * b[2 * j + 1]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int64_t j = 0; j < ncols; ++j) c[r * ldc + j] = static_cast<int32_t>(acc[r][j]);
}

#if RUNNX_HAVE_TARGET_AVX2
template <int R>
RUNNX_TARGET_AVX2 void tile_avx2(const int16_t* a, int64_t lda16, const int16_t* bp, int64_t kh, int32_t* c,
                                 int64_t ldc, int64_t ncols) {
  __m256i acc[R][2];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
  for (int64_t kk = 0; kk < kh; ++kk) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bp + kk * 2 * kPanel));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bp + kk * 2 * kPanel + kPanel));
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      int32_t pair;
      std::memcpy(&pair, a + r * lda16 + 2 * kk, sizeof(pair));
      const __m256i av = _mm256_set1_epi32(pair);
      acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(av, b0));
      acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(av, b1));
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    if (ncols == kPanel) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * ldc), acc[r][0]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * ldc + 8), acc[r][1]);
    } else {
      alignas(32) int32_t tmp[kPanel];
      _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), acc[r][0]);
      _mm256_store_si256(reinterpret_cast<__m256i*>(tmp + 8), acc[r][1]);
      std::memcpy(c + r * ldc, tmp, static_cast<size_t>(ncols) * sizeof(int32_t));
    }
  }
}
#endif

using TileFn = void (*)(const int16_t*, int64_t, const int16_t*, int64_t, int32_t*, int64_t, int64_t);

struct Tiles {
  TileFn fn[5];  // by row count 1..4
};

const Tiles& tiles() {
  static const Tiles t = [] {
#if RUNNX_HAVE_TARGET_AVX2
    if (cpu_features().has_avx2_fma())
      return Tiles{{nullptr, tile_avx2<1>, tile_avx2<2>, tile_avx2<3>, tile_avx2<4>}};
#endif
    return Tiles{{nullptr, tile_portable<1>, tile_portable<2>, tile_portable<3>, tile_portable<4>}};
  }();
  return t;
}

}  // namespace

const char* quant_gemm_isa() {
#if RUNNX_HAVE_TARGET_AVX2
  if (cpu_features().has_avx2_fma()) return "avx2";
#endif
  return "portable";
}

PackedQuantB pack_quant_b(const void* B, bool b_unsigned, int64_t K, int64_t N, int64_t ldb, bool trans,
                          const int32_t* zb, int64_t zb_stride) {
  PackedQuantB p;
  p.K = K;
  p.N = N;
  const int64_t kh = (K + 1) / 2, panels = (N + kPanel - 1) / kPanel;
  p.data.assign(static_cast<size_t>(panels * kh * 2 * kPanel), 0);
  for (int64_t n = 0; n < N; ++n) {
    const int32_t z = zb ? zb[n * zb_stride] : 0;
    int16_t* col = p.data.data() + (n / kPanel) * kh * 2 * kPanel + (n % kPanel) * 2;
    for (int64_t k = 0; k < K; ++k) {
      const int64_t at = trans ? n * ldb + k : k * ldb + n;
      col[(k / 2) * 2 * kPanel + (k % 2)] = static_cast<int16_t>(load_q(B, b_unsigned, at) - z);
    }
  }
  return p;
}

void quant_gemm(int64_t M, const void* A, bool a_unsigned, int64_t lda, const int32_t* za, int64_t za_stride,
                const PackedQuantB& B, int32_t* C, int64_t ldc, ThreadPool* pool) {
  const int64_t K = B.K, N = B.N;
  if (M <= 0 || N <= 0) return;
  const int64_t kh = (K + 1) / 2, lda16 = 2 * kh, panels = (N + kPanel - 1) / kPanel;
  const int64_t row_chunks = (M + kRowBlock - 1) / kRowBlock;
  const int threads = pool ? pool->num_threads() : 1;
  const bool parallel = threads > 1 && M * N * std::max<int64_t>(K, 1) >= kParallelMacs;
  // Enough column ranges that every thread gets about two tasks when rows alone do not suffice.
  int64_t col_chunks = parallel ? std::clamp<int64_t>((2 * threads + row_chunks - 1) / row_chunks, 1, panels) : 1;
  const int64_t per_chunk = (panels + col_chunks - 1) / col_chunks;
  col_chunks = (panels + per_chunk - 1) / per_chunk;
  const Tiles& t = tiles();
  auto task = [&](int64_t begin, int64_t end) {
    std::vector<int16_t> a16(static_cast<size_t>(kRowBlock * lda16), 0);
    for (int64_t id = begin; id < end; ++id) {
      const int64_t m0 = (id / col_chunks) * kRowBlock, rows = std::min(kRowBlock, M - m0);
      const int64_t p0 = (id % col_chunks) * per_chunk, p1 = std::min(panels, p0 + per_chunk);
      for (int64_t r = 0; r < rows; ++r) {
        const int32_t z = za ? za[(m0 + r) * za_stride] : 0;
        int16_t* dst = a16.data() + r * lda16;
        for (int64_t k = 0; k < K; ++k) dst[k] = static_cast<int16_t>(load_q(A, a_unsigned, (m0 + r) * lda + k) - z);
        if (K % 2) dst[K] = 0;
      }
      for (int64_t p = p0; p < p1; ++p) {
        const int16_t* bp = B.data.data() + p * kh * 2 * kPanel;
        const int64_t n0 = p * kPanel, ncols = std::min(kPanel, N - n0);
        for (int64_t r = 0; r < rows; r += 4) {
          const int64_t rr = std::min<int64_t>(4, rows - r);
          t.fn[rr](a16.data() + r * lda16, lda16, bp, kh, C + (m0 + r) * ldc + n0, ldc, ncols);
        }
      }
    }
  };
  const int64_t tasks = row_chunks * col_chunks;
  if (parallel)
    pool->parallel_for(tasks, 1, task);
  else
    task(0, tasks);
}

}  // namespace runnx
