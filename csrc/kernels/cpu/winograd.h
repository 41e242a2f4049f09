// Winograd F(4x4, 3x3) convolution for 3x3, stride 1, dilation 1, group 1 (any pads), float32.
// Each 4x4 output tile is A^T [ (G g G^T) .* (B^T d B) ] A over a 6x6 input tile: the 36
// element-wise products over channels become 36 GEMMs U[xi] (M x C) * V[xi] (C x tiles), which
// is 36 multiplies per 16 outputs instead of 144: 4x fewer than direct convolution.
// The transforms use points 0, +-1, +-2, +-1/2, so results differ from direct convolution by a
// few float32 rounding steps more (relative error around 1e-5..1e-4 of the output's scale).
#pragma once
#include <cstdint>
#include <vector>

#include "common/thread_pool.h"
#include "kernels/cpu/conv_epilogue.h"
#include "kernels/cpu/gemm.h"

namespace runnx {

// Winograd pays off once an OH x OW output has 16 or more 4x4 tiles (measured by bench/conv.py:
// at 7x7 the 36 transformed weight matrices cost more to stream than the multiplies they save).
inline bool winograd_pays(int64_t OH, int64_t OW) { return ((OH + 3) / 4) * ((OW + 3) / 4) >= 16; }

class WinogradF43 {
 public:
  // w: [M, C, 3, 3]; transformed once here into U[36][M][C], each U[xi] packed for the GEMM of
  // the layout that will run: channels first, Mo[xi] = U[xi] V[xi] (U the packed A); channels
  // last, Mo[xi] = V[xi] U[xi]^T (U^T the packed B, V's rows tiles; C and M multiples of 8).
  // The transform and packing run on `pool` when given.
  WinogradF43(const float* w, int64_t M, int64_t C, bool channels_last = false, ThreadPool* pool = nullptr);

  // x [N, C, H, W] -> y [N, M, OH, OW] with OH = H + pt + pb - 2 (pads at the top/left given,
  // the bottom/right implied by OH/OW). e.residual, when set, has y's shape.
  void run(const float* x, int64_t N, int64_t H, int64_t W, int64_t pt, int64_t pl, int64_t OH,
           int64_t OW, const ConvEpilogue& e, float* y, ThreadPool& pool) const;
  // The same channels last: x [N, H, W, C] -> y [N, OH, OW, M].
  void run_nhwc(const float* x, int64_t N, int64_t H, int64_t W, int64_t pt, int64_t pl,
                int64_t OH, int64_t OW, const ConvEpilogue& e, float* y, ThreadPool& pool) const;

 private:
  int64_t M_, C_;
  std::vector<PackedA> U_;   // channels first: U[xi], M x C
  std::vector<PackedB> Ut_;  // channels last: U[xi]^T, C x M
};

// Per-thread scratch buffers that grow and are kept (slot 0..3): no allocation per run.
float* conv_scratch(int slot, int64_t floats);

}  // namespace runnx
