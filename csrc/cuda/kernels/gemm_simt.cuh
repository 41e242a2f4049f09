// The SIMT (no tensor core) tiled GEMM: the always-correct path. fp32 GEMM runs on it, and fp16
// GEMM and convolution fall back to it when the tensor-core kernel's alignment rules do not hold.
// Inputs are converted to fp32 as they are staged in shared memory, so every input type
// accumulates in fp32. A is read through a loader (a plain matrix, or the implicit im2col view of
// an NHWC image in conv.cu), B as a matrix [K][N] or its transpose [N][K].
//
// Block tile 64x64, K step 16, 256 threads; thread (tx, ty) owns rows ty + 16i and columns
// tx + 16j (i, j < 4) so that shared-memory reads are broadcasts or consecutive.
#pragma once
#include "cuda/kernels/epilogue.h"
#include "cuda/kernels/gemm_common.cuh"

namespace runnx::cuda {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }

// A[m][k] = A + batch_offset + m*lda + k.
template <typename T>
struct MatrixA {
  const T* A;
  int64_t lda;
  __device__ __forceinline__ float at(int64_t batch_offset, int64_t m, int64_t k) const {
    return to_float(A[batch_offset + m * lda + k]);
  }
};

template <typename T>
struct SimtGemmParams {
  int64_t M, N, K;
  const T* B;
  int64_t ldb;
  bool trans_b;
  void* C;
  int64_t ldc;
  bool c_is_f32;
  int64_t batch;
  BatchOffsets bo;
  Epilogue epi;
};

constexpr int kSimtBM = 64, kSimtBN = 64, kSimtBK = 16, kSimtThreads = 256;

template <typename T, typename ALoader>
__global__ void __launch_bounds__(kSimtThreads) simt_gemm_kernel(SimtGemmParams<T> p, ALoader a_loader) {
  __shared__ float As[kSimtBK][kSimtBM + 1];  // As[k][m]
  __shared__ float Bs[kSimtBK][kSimtBN + 1];  // Bs[k][n]
  __shared__ float Cs[kSimtBM][kSimtBN + 1];  // the finished tile, for the epilogue
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int64_t tiles_m = ceil_div(p.M, kSimtBM), tiles_n = ceil_div(p.N, kSimtBN);
  int64_t tm, tn;
  raster_tile(blockIdx.x, tiles_m, tiles_n, tm, tn);
  const int64_t m0 = tm * kSimtBM, n0 = tn * kSimtBN;

  for (int64_t b = blockIdx.y; b < p.batch; b += gridDim.y) {
    int64_t oa, ob, oc;
    batch_offsets(p.bo, b, oa, ob, oc);
    float acc[4][4] = {};
    for (int64_t k0 = 0; k0 < p.K; k0 += kSimtBK) {
      for (int e = tid; e < kSimtBM * kSimtBK; e += kSimtThreads) {
        const int mm = e / kSimtBK, kk = e % kSimtBK;
        const int64_t m = m0 + mm, k = k0 + kk;
        As[kk][mm] = (m < p.M && k < p.K) ? a_loader.at(oa, m, k) : 0.f;
      }
      for (int e = tid; e < kSimtBN * kSimtBK; e += kSimtThreads) {
        // Consecutive threads walk the operand's contiguous dimension.
        const int nn = p.trans_b ? e / kSimtBK : e % kSimtBN;
        const int kk = p.trans_b ? e % kSimtBK : e / kSimtBN;
        const int64_t n = n0 + nn, k = k0 + kk;
        float v = 0.f;
        if (n < p.N && k < p.K) v = to_float(p.B[ob + (p.trans_b ? n * p.ldb + k : k * p.ldb + n)]);
        Bs[kk][nn] = v;
      }
      __syncthreads();
#pragma unroll
      for (int kk = 0; kk < kSimtBK; ++kk) {
        float a[4], bv[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) a[i] = As[kk][ty + 16 * i];
#pragma unroll
        for (int j = 0; j < 4; ++j) bv[j] = Bs[kk][tx + 16 * j];
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], bv[j], acc[i][j]);
      }
      __syncthreads();
    }
    // Stage C in shared memory so the epilogue is compiled once (a plain loop, not 16 unrolled
    // copies of its activation switch) and the stores are coalesced.
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) Cs[ty + 16 * i][tx + 16 * j] = acc[i][j];
    __syncthreads();
#pragma unroll 1
    for (int e = tid; e < kSimtBM * kSimtBN; e += kSimtThreads) {
      const int64_t m = m0 + e / kSimtBN, n = n0 + e % kSimtBN;
      if (m >= p.M || n >= p.N) continue;
      const float v = Cs[e / kSimtBN][e % kSimtBN];
      const int64_t at = oc + m * p.ldc + n;
      if (p.c_is_f32)
        store_output(static_cast<float*>(p.C) + at, apply_epilogue<float>(p.epi, v, b, m, n));
      else
        store_output(static_cast<__half*>(p.C) + at, apply_epilogue<__half>(p.epi, v, b, m, n));
    }
    __syncthreads();  // Cs is rewritten by the next batch entry
  }
}

template <typename T, typename ALoader>
void launch_simt_gemm(const SimtGemmParams<T>& p, const ALoader& a_loader, cudaStream_t stream) {
  if (p.M <= 0 || p.N <= 0 || p.batch <= 0) return;
  const int64_t tiles = ceil_div(p.M, kSimtBM) * ceil_div(p.N, kSimtBN);
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(p.batch < kMaxGridYZ ? p.batch : kMaxGridYZ));
  simt_gemm_kernel<T, ALoader><<<grid, kSimtThreads, 0, stream>>>(p, a_loader);
}

}  // namespace runnx::cuda
