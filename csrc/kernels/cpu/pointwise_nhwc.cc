// Weight packing for the channels-last pointwise kernel (pointwise_nhwc.h).
#include "kernels/cpu/pointwise_nhwc.h"

#include <cstddef>

#include "common/cpu_features.h"

namespace runnx {

PointwiseWeights pack_pointwise(const float* w, int64_t N, int64_t K) {
  PointwiseWeights p;
  if (!cpu_features().has_avx2_fma() || N % 8 != 0 || K < 1 || K > kPointwiseMaxK) return p;
  p.K = K;
  p.N = N;
  p.data.resize(static_cast<size_t>(N * K));
  for (int64_t j = 0; j < N; j += 16) {
    const int64_t width = N - j >= 16 ? 16 : 8;
    float* panel = p.data.data() + j * K;
    for (int64_t k = 0; k < K; ++k)
      for (int64_t c = 0; c < width; ++c) panel[k * width + c] = w[(j + c) * K + k];
  }
  return p;
}

}  // namespace runnx
