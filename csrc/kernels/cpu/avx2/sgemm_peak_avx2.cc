// The fp32 FMA peak of this machine, measured: each thread runs chains of independent FMAs
// (12 accumulators, more than the FMA latency x throughput needs) on registers only, in the widest
// vectors the sgemm uses: 512-bit where sgemm_avx2_uses_avx512() (Zen 5 runs them at twice the
// 256-bit rate, Zen 4 at the same), 256-bit otherwise.
#include <immintrin.h>

#include <atomic>
#include <chrono>
#include <cstring>

#include "kernels/cpu/sgemm_avx2.h"

namespace runnx {
namespace {

// FMAs of `lanes` floats each, run on one thread for `seconds`: the count.
template <typename V, V (*Set1)(float), V (*Fma)(V, V, V), V (*Add)(V, V)>
int64_t fma_chains(double seconds, float* sum) {
  V acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = Set1(static_cast<float>(i));
  const V m = Set1(0.999999f), a = Set1(1e-7f);
  int64_t iters = 0;
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    for (int r = 0; r < 1000; ++r)
      for (int i = 0; i < 12; ++i) acc[i] = Fma(acc[i], m, a);
    iters += 1000;
  }
  V s = acc[0];
  for (int i = 1; i < 12; ++i) s = Add(s, acc[i]);
  alignas(64) float out[sizeof(V) / 4];
  std::memcpy(out, &s, sizeof(V));
  *sum = out[0];
  return iters * 12;
}

__m256 set1_256(float v) { return _mm256_set1_ps(v); }
__m256 fma_256(__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); }
__m256 add_256(__m256 a, __m256 b) { return _mm256_add_ps(a, b); }

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
      const int64_t fmas = wide ? fma_chains_512(seconds, &sum)
                                : fma_chains<__m256, set1_256, fma_256, add_256>(seconds, &sum);
      // Fold the result into the count so the loop cannot be dropped (it is never NaN).
      total_fmas += fmas + (sum != sum ? 1 : 0);
    }
  });
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return static_cast<double>(total_fmas.load()) * lanes * 2 / dt / 1e9;
}

}  // namespace runnx
