// Implicit-GEMM convolution (conv.h): the SIMT kernel with an im2col loader, or the tensor-core
// main loop in its kConvF16 mode.
#include <cstdint>
#include <limits>

#include "cuda/kernels/conv.h"
#include "cuda/kernels/gemm.h"
#include "cuda/kernels/gemm_mma.cuh"
#include "cuda/kernels/simple_mode.h"
#include "cuda/kernels/gemm_simt.cuh"

namespace runnx::cuda {

namespace {

// A[m][k] of the implicit GEMM: m = (n, p, q) output pixel, k = (r, s, c) filter tap.
template <typename T>
struct Im2colA {
  const T* x;
  int64_t H, W, C, P, Q, S;
  int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
  __device__ __forceinline__ float at(int64_t, int64_t m, int64_t k) const {
    const int64_t q = m % Q, np = m / Q, p = np % P, n = np / P;
    const int64_t c = k % C, rs = k / C, s = rs % S, r = rs / S;
    const int64_t h = p * stride_h - pad_h + r * dil_h, w = q * stride_w - pad_w + s * dil_w;
    if (h < 0 || h >= H || w < 0 || w >= W) return 0.f;
    return to_float(x[((n * H + h) * W + w) * C + c]);
  }
};

template <typename T>
void launch_conv_simt(const ConvArgs& a, cudaStream_t stream) {
  SimtGemmParams<T> p{};
  p.M = a.N * a.P * a.Q;
  p.N = a.K;
  p.K = a.R * a.S * a.C;
  p.B = static_cast<const T*>(a.w);
  p.ldb = p.K;
  p.trans_b = true;
  p.C = a.y;
  p.ldc = a.K;
  p.c_is_f32 = std::is_same<T, float>::value;
  p.batch = 1;
  p.epi = a.epi;
  const Im2colA<T> loader{static_cast<const T*>(a.x), a.H, a.W, a.C, a.P, a.Q, a.S, a.stride_h, a.stride_w,
                          a.pad_h, a.pad_w, a.dil_h, a.dil_w};
  launch_simt_gemm(p, loader, stream);
}

bool fits_int32(int64_t v) { return v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max(); }

}  // namespace

void launch_conv_f32(const ConvArgs& args, cudaStream_t stream) { launch_conv_simt<float>(args, stream); }

bool conv_f16_uses_tensor_cores(const ConvArgs& a) {
  if (use_simple_kernels()) return false;
  const bool aligned = (reinterpret_cast<uintptr_t>(a.x) & 15) == 0 && (reinterpret_cast<uintptr_t>(a.w) & 15) == 0;
  // The kernel decomposes k and the pixel coordinates in 32-bit arithmetic.
  const bool small = fits_int32(a.R * a.S * a.C) && fits_int32(a.P * a.Q) && fits_int32(a.H * a.W) &&
                     fits_int32(a.N) && fits_int32(a.P * a.stride_h + a.R * a.dil_h) &&
                     fits_int32(a.Q * a.stride_w + a.S * a.dil_w);
  return aligned && small && a.C % 8 == 0;
}

namespace {

MmaParams conv_mma_params(const ConvArgs& a) {
  MmaParams p{};
  p.M = a.N * a.P * a.Q;
  p.N = a.K;
  p.K = a.R * a.S * a.C;
  p.A = a.x;
  p.B = a.w;
  p.ldb = p.K;
  p.C = a.y;
  p.ldc = a.K;
  p.c_is_f32 = false;
  p.batch = 1;
  p.epi = a.epi;
  ConvGeometry& g = p.g;
  g.H = static_cast<int32_t>(a.H);
  g.W = static_cast<int32_t>(a.W);
  g.C = static_cast<int32_t>(a.C);
  g.R = static_cast<int32_t>(a.R);
  g.S = static_cast<int32_t>(a.S);
  g.P = static_cast<int32_t>(a.P);
  g.Q = static_cast<int32_t>(a.Q);
  g.stride_h = static_cast<int32_t>(a.stride_h);
  g.stride_w = static_cast<int32_t>(a.stride_w);
  g.pad_h = static_cast<int32_t>(a.pad_h);
  g.pad_w = static_cast<int32_t>(a.pad_w);
  g.dil_h = static_cast<int32_t>(a.dil_h);
  g.dil_w = static_cast<int32_t>(a.dil_w);
  p.forced_k_splits = a.force_k_splits;
  return p;
}

}  // namespace

size_t conv_f16_workspace_bytes(const ConvArgs& a) {
  if (!conv_f16_uses_tensor_cores(a)) return 0;
  return mma_split_workspace_bytes(conv_mma_params(a), kMmaBKBytes / 2);
}

void launch_conv_f16(const ConvArgs& a, cudaStream_t stream, void* workspace, size_t workspace_bytes) {
  if (!conv_f16_uses_tensor_cores(a)) return launch_conv_simt<__half>(a, stream);
  launch_mma_gemm<MmaMode::kConvF16>(conv_mma_params(a), stream, workspace, workspace_bytes);
}

}  // namespace runnx::cuda
