// A channels-last 1x1 convolution of few input channels with a clamp, for MobileNetV2's
// expansions inside NhwcDwProject (K = 16-96 input channels -> 96-576):
//   y[p, n] = min(max(b[n] + sum_k x[p, k] * w[k, n], lo), hi)
// Six pixels x 16 channels of accumulators start from the bias, run the K loop and are clamped
// and stored straight from the registers. The sgemm does the same math through its general
// tile epilogue, whose per-tile setup costs a third of a K = 16 product. Each output element is
// one FMA chain in k order whatever the pixel count, so results do not depend on how pixels are
// grouped into calls.
#pragma once
#include <cstdint>
#include <vector>

namespace runnx {

// Input channels up to which the kernel serves: every 6 pixels meet all of W (K x N floats, at
// most 221 KB in MobileNetV2, from L2). In-process A/B on MobileNetV2 b32, 1 thread, CPU ms
// (expansions through it up to K): 32 277, 64 263, 96 261, 160 264; the sgemm alone 288. At
// batch 1 on 2 threads (14x14 bands of 8 rows: 112-120 pixels per call) the 96 -> 576
// expansions of blocks 12-14 took their nodes 478-483 -> 402-409 us and 348 -> 277 us through
// it; the 160 -> 960 ones (7x7) were 2-4% slower than through the sgemm.
constexpr int64_t kPointwiseMaxK = 96;

// W [N, K] (a 1x1 conv weight) as [N / 16][K][16] panels, the last one 8 wide when N % 16 == 8.
struct PointwiseWeights {
  int64_t K = 0, N = 0;
  std::vector<float> data;
  bool empty() const { return data.empty(); }
};

// Packed weights when the kernel serves this shape on this CPU (AVX2+FMA, N % 8 == 0,
// K <= kPointwiseMaxK), else empty.
PointwiseWeights pack_pointwise(const float* w, int64_t N, int64_t K);

// P pixels: x rows ldx floats apart, y rows ldy apart; bias may be null.
void pointwise_clamp_avx2(int64_t P, const float* x, int64_t ldx, const PointwiseWeights& w,
                          const float* bias, float lo, float hi, float* y, int64_t ldy);

}  // namespace runnx
