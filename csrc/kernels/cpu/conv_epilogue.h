// What a convolution applies to its output while the tile is still hot:
//   y = act(conv + bias[m] + residual)
// (FusedConv's semantics; plain Conv uses only the bias). Shared by every conv algorithm.
#pragma once
#include <cstdint>

namespace runnx {

enum class ConvActivation { kNone, kRelu, kClip, kSigmoid, kLeakyRelu, kHardSwish };

struct ConvEpilogue {
  const float* bias = nullptr;      // [M] or null
  const float* residual = nullptr;  // same layout as y (the image's [M, spatial]) or null
  ConvActivation act = ConvActivation::kNone;
  float alpha = 0.f, beta = 0.f;  // Clip: min, max; LeakyRelu: alpha; HardSwish: 1/6, 0.5

  bool is_identity() const {
    return !bias && !residual && act == ConvActivation::kNone;
  }
};

}  // namespace runnx
