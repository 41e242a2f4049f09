// The fp32 FMA peak of this machine, measured: each thread runs chains of independent FMAs
// (12 accumulators, more than the FMA latency x throughput needs) on registers only.
#include <immintrin.h>

#include <atomic>
#include <chrono>

#include "kernels/cpu/sgemm_avx2.h"

namespace runnx {

double sgemm_avx2_fma_peak_gflops(ThreadPool& pool, double seconds) {
  const int threads = pool.num_threads();
  std::atomic<int64_t> total_iters{0};
  const auto t0 = std::chrono::steady_clock::now();
  pool.parallel_for(threads, 1, [&](int64_t b, int64_t e) {
    for (int64_t w = b; w < e; ++w) {
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
      // Fold the result into the count so the loop cannot be dropped (it is never NaN).
      total_iters += iters + (out[0] != out[0] ? 1 : 0);
    }
  });
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // 12 FMAs x 8 lanes x 2 flops per iteration.
  return static_cast<double>(total_iters.load()) * 12 * 8 * 2 / dt / 1e9;
}

}  // namespace runnx
