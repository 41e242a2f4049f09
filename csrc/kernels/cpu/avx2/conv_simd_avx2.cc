// The ConvSimd routines compiled with -mavx2 -mfma (conv_simd_impl.h; chosen in conv_simd.cc).
#include <cmath>
#include <cstdint>

#include "kernels/cpu/conv_simd.h"
#include "kernels/cpu/sgemm_avx2.h"  // sgemm_avx2_uses_avx512: the 512-bit stem

namespace runnx {
namespace conv_avx2 {
#include "kernels/cpu/conv_simd_impl.h"
}  // namespace conv_avx2

const ConvSimd& conv_simd_avx2() { return conv_avx2::kConvSimd; }

}  // namespace runnx
