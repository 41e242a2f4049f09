// The fp32 FMA peak of this machine, measured: each thread runs chains of independent FMAs
// (12 accumulators, more than the FMA latency x throughput needs) on registers only, in the widest
// vectors the sgemm uses: 512-bit where sgemm_avx2_uses_avx512() (Zen 5 runs them at twice the
// 256-bit rate, Zen 4 at the same), 256-bit otherwise.
#include <immintrin.h>

#include <atomic>
#include <chrono>

#include "kernels/cpu/sgemm_avx2.h"

namespace runnx {
namespace {

// Register-only FMA chains on one thread for `seconds`, 256-bit: the FMA count (the sum of the
// chains goes to *sum, so the loop cannot be dropped). fma_chains_512 below is the same in 512-bit
// registers (a function of its own: its target differs).
int64_t fma_chains_256(double seconds, float* sum) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i));
  const __m256 m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-7f);
  int64_t iters = 0;
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    for (int r = 0; r < 1000; ++r)
      for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], m, a);
    iters += 1000;
  }
  __m256 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, acc[i]);
  alignas(32) float out[8];
  _mm256_store_ps(out, s);
  *sum = out[0];
  return iters * 12;
}

__attribute__((target("avx512f"))) int64_t fma_chains_512(double seconds, float* sum) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  const __m512 m = _mm512_set1_ps(0.999999f), a = _mm512_set1_ps(1e-7f);
  int64_t iters = 0;
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    for (int r = 0; r < 1000; ++r)
      for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], m, a);
    iters += 1000;
  }
  __m512 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, acc[i]);
  *sum = _mm512_reduce_add_ps(s);
  return iters * 12;
}

}  // namespace

double sgemm_avx2_fma_peak_gflops(ThreadPool& pool, double seconds) {
  const int threads = pool.num_threads();
  const bool wide = sgemm_avx2_uses_avx512();
  const int lanes = wide ? 16 : 8;
  std::atomic<int64_t> total_fmas{0};
  const auto t0 = std::chrono::steady_clock::now();
  pool.parallel_for(threads, 1, [&](int64_t b, int64_t e) {
    for (int64_t w = b; w < e; ++w) {
      float sum = 0.f;
      const int64_t fmas = wide ? fma_chains_512(seconds, &sum) : fma_chains_256(seconds, &sum);
      // Fold the result into the count so the loop cannot be dropped (it is never NaN).
      total_fmas += fmas + (sum != sum ? 1 : 0);
    }
  });
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return static_cast<double>(total_fmas.load()) * lanes * 2 / dt / 1e9;
}

}  // namespace runnx
