// Fused attention (attention.h). One block of 128 threads owns 32 query rows of one (batch, head);
// key/value tiles of 32 rows pass through shared memory. Thread t works on query row t / 4 and,
// of that row, 8 of the tile's scores and every fourth output feature (c = t % 4 + 4u), keeping the
// row's running max m, normaliser l and output accumulator in registers (online softmax:
// on a new max, the old l and o are rescaled by exp(m_old - m_new)).
#include <cuda_fp16.h>

#include <cmath>
#include <string>

#include "common/status.h"
#include "cuda/kernels/attention.h"
#include "cuda/kernels/gemm_common.cuh"
#include "cuda/kernels/gemm_simt.cuh"

namespace runnx::cuda {

namespace {

constexpr int kRows = 32, kKeys = 32, kThreads = 128, kOutPerThread = kAttentionMaxHeadDim / 4;

__host__ __device__ inline int64_t smem_floats(int64_t D, int64_t Dv) {
  return kRows * (D + 1) + kKeys * (D + 1) + kKeys * Dv + kRows * (kKeys + 1);
}

template <typename T>
__global__ void __launch_bounds__(kThreads) attention_kernel(AttentionArgs a) {
  extern __shared__ float sm[];
  const int D = static_cast<int>(a.D), Dv = static_cast<int>(a.Dv);
  float* Qs = sm;                      // [kRows][D + 1]
  float* Ks = Qs + kRows * (D + 1);    // [kKeys][D + 1]
  float* Vs = Ks + kKeys * (D + 1);    // [kKeys][Dv]
  float* Ps = Vs + kKeys * Dv;         // [kRows][kKeys + 1] scores of the current tile
  const T* q = static_cast<const T*>(a.q);
  const T* k = static_cast<const T*>(a.k);
  const T* v = static_cast<const T*>(a.v);
  const T* mask = static_cast<const T*>(a.mask);
  T* o = static_cast<T*>(a.o);
  const int tid = threadIdx.x, row = tid / 4, part = tid % 4;
  const bool k_seq_contiguous = a.k_st.s == 1 && a.k_st.d != 1;
  const int64_t i0 = static_cast<int64_t>(blockIdx.x) * kRows, qi = i0 + row;

  for (int64_t bh = blockIdx.y; bh < a.B * a.heads; bh += gridDim.y) {
    const int64_t b = bh / a.heads, h = bh % a.heads;
    const int64_t qb = b * a.q_st.b + h * a.q_st.h, kb = b * a.k_st.b + h * a.k_st.h;
    const int64_t vb = b * a.v_st.b + h * a.v_st.h, mb = b * a.mask_st.b + h * a.mask_st.h;
    __syncthreads();  // the previous (batch, head)'s readers of Qs are done
    for (int e = tid; e < kRows * D; e += kThreads) {
      const int r = e / D, d = e % D;
      Qs[r * (D + 1) + d] = i0 + r < a.S ? to_float(q[qb + (i0 + r) * a.q_st.s + d * a.q_st.d]) : 0.f;
    }
    float m = -INFINITY, l = 0.f, acc[kOutPerThread];
#pragma unroll
    for (int u = 0; u < kOutPerThread; ++u) acc[u] = 0.f;

    for (int64_t j0 = 0; j0 < a.Sk; j0 += kKeys) {
      __syncthreads();  // everyone is done with the previous K/V tile (and Qs is written)
      for (int e = tid; e < kKeys * D; e += kThreads) {
        // Consecutive threads walk K's contiguous axis: the feature (K as [.., Sk, D]) or the
        // sequence (K^T storage [.., D, Sk], as exporters write it).
        const int r = k_seq_contiguous ? e % kKeys : e / D, d = k_seq_contiguous ? e / kKeys : e % D;
        Ks[r * (D + 1) + d] = j0 + r < a.Sk ? to_float(k[kb + (j0 + r) * a.k_st.s + d * a.k_st.d]) : 0.f;
      }
      for (int e = tid; e < kKeys * Dv; e += kThreads) {
        const int r = e / Dv, c = e % Dv;
        Vs[r * Dv + c] = j0 + r < a.Sk ? to_float(v[vb + (j0 + r) * a.v_st.s + c * a.v_st.d]) : 0.f;
      }
      __syncthreads();
      for (int x = 0; x < kKeys / 4; ++x) {
        const int jj = part * (kKeys / 4) + x;
        const int64_t j = j0 + jj;
        float s = -INFINITY;
        if (j < a.Sk) {
          float dot = 0.f;
          for (int d = 0; d < D; ++d) dot = fmaf(Qs[row * (D + 1) + d], Ks[jj * (D + 1) + d], dot);
          s = dot * a.scale;
          if (mask && qi < a.S) s += to_float(mask[mb + qi * a.mask_st.s + j * a.mask_st.d]);
        }
        Ps[row * (kKeys + 1) + jj] = s;
      }
      __syncwarp();  // a row's four threads (one warp) exchange their scores
      float tile_max = -INFINITY;
      for (int jj = 0; jj < kKeys; ++jj) tile_max = fmaxf(tile_max, Ps[row * (kKeys + 1) + jj]);
      const float m_new = fmaxf(m, tile_max);
      // exp(-inf - x) = 0 handles masked keys; guard m_new = -inf (all masked so far) against NaN.
      const float rescale = m == -INFINITY ? 0.f : expf(m - m_new);
      l *= rescale;
#pragma unroll
      for (int u = 0; u < kOutPerThread; ++u) acc[u] *= rescale;
      for (int jj = 0; jj < kKeys; ++jj) {
        const float s = Ps[row * (kKeys + 1) + jj];
        const float pj = s == -INFINITY ? 0.f : expf(s - m_new);
        l += pj;
#pragma unroll
        for (int u = 0; u < kOutPerThread; ++u) {
          const int c = part + 4 * u;
          if (c < Dv) acc[u] = fmaf(pj, Vs[jj * Dv + c], acc[u]);
        }
      }
      m = m_new;
      __syncwarp();  // Ps is rewritten by the next tile
    }
    if (qi < a.S) {
      // l = 0 only when every score was -inf (NaN, as the CPU) or there are no keys (zeros).
      const float inv = a.Sk > 0 ? 1.f / l : 0.f;
      const int64_t ob = b * a.o_st.b + h * a.o_st.h + qi * a.o_st.s;
#pragma unroll
      for (int u = 0; u < kOutPerThread; ++u) {
        const int c = part + 4 * u;
        if (c < Dv) store_output(o + ob + c * a.o_st.d, acc[u] * inv);
      }
    }
  }
}

template <typename T>
void launch_attention(const AttentionArgs& a, cudaStream_t stream) {
  if (!attention_supported(a))
    throw Error(ErrorKind::kUnsupportedOp, "CUDA attention: head sizes D=" + std::to_string(a.D) + ", Dv=" +
                                               std::to_string(a.Dv) + " exceed " + std::to_string(kAttentionMaxHeadDim));
  if (a.B <= 0 || a.heads <= 0 || a.S <= 0 || a.Dv <= 0) return;
  const size_t smem = static_cast<size_t>(smem_floats(a.D, a.Dv)) * sizeof(float);
  cudaFuncSetAttribute(attention_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  const int64_t bh = a.B * a.heads;
  const dim3 grid(static_cast<unsigned>(ceil_div(a.S, kRows)), static_cast<unsigned>(bh < kMaxGridYZ ? bh : kMaxGridYZ));
  attention_kernel<T><<<grid, kThreads, smem, stream>>>(a);
}

}  // namespace

bool attention_supported(const AttentionArgs& a) {
  return a.D >= 0 && a.Dv >= 0 && a.D <= kAttentionMaxHeadDim && a.Dv <= kAttentionMaxHeadDim;
}

void launch_attention_f32(const AttentionArgs& args, cudaStream_t stream) { launch_attention<float>(args, stream); }
void launch_attention_f16(const AttentionArgs& args, cudaStream_t stream) { launch_attention<__half>(args, stream); }

}  // namespace runnx::cuda
