// The portable copy of the ConvSimd routines, and the run-time choice between it and AVX2.
#include "kernels/cpu/conv_simd.h"

#include <cmath>
#include <cstdint>

#include "common/cpu_features.h"

// The 8-float vectors are returned by value between static functions of this file only, so the
// ABI note GCC prints for vector returns without AVX does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace runnx {
namespace conv_portable {
#include "kernels/cpu/conv_simd_impl.h"
}  // namespace conv_portable

const ConvSimd& conv_simd_portable() { return conv_portable::kConvSimd; }

const ConvSimd& conv_simd() {
  static const ConvSimd& chosen =
      cpu_features().has_avx2_fma() ? conv_simd_avx2() : conv_simd_portable();
  return chosen;
}

}  // namespace runnx
