#include "common/cpu_features.h"

#include <cpuid.h>
#include <cstdlib>

namespace runnx {

namespace {

CpuFeatures detect() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  bool osxsave = c & bit_OSXSAVE;
  bool avx = c & bit_AVX;
  f.fma = c & bit_FMA;
  f.f16c = c & bit_F16C;
  if (!(osxsave && avx)) return CpuFeatures{};
  unsigned xcr0_lo, xcr0_hi;
  __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  if ((xcr0_lo & 6) != 6) return CpuFeatures{};  // the OS does not save YMM state
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    f.avx2 = b & bit_AVX2;
    f.avx512f = (b & bit_AVX512F) && (xcr0_lo & 0xe0) == 0xe0;
  }
  // RUNNX_DISABLE_AVX2=1 forces the portable kernels (to test them on an AVX2 machine).
  const char* off = std::getenv("RUNNX_DISABLE_AVX2");
  if (off && *off && *off != '0') f.avx2 = false;
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

}  // namespace runnx
