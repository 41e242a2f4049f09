// What this CPU can run, read once by cpuid. Kernels pick an ISA-specific microkernel from it so
// one wheel runs everywhere and uses AVX2/FMA where present.
#pragma once

namespace runnx {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  // AVX2+FMA+F16C and an OS that saves the YMM registers: the set our avx2 kernels assume.
  bool has_avx2_fma() const { return avx2 && fma && f16c; }
};

const CpuFeatures& cpu_features();

}  // namespace runnx
