// The tensor-core GEMM main loop (sm_80+): 128x128 block tile, 64 bytes of K per stage (32 fp16
// or 64 int8), 4-stage cp.async pipeline, 4 warps as 2 (M) x 2 (N), each warp 64x64 built from
// mma.sync m16n8k16 (fp16) or m16n8k32 (int8) fed by ldmatrix. One kernel template serves:
//   kF16NN   A fp16 [M][K], B fp16 [K][N]          (gemm_f16.cu)
//   kF16NT   A fp16 [M][K], B fp16 B^T [N][K]      (gemm_f16.cu)
//   kS8NT    A int8 [M][K], B int8 B^T [N][K]      (gemm_int8.cu; uint8 by flipping the sign bit)
//   kConvF16 A = implicit im2col of an NHWC fp16 image (C % 8 == 0), B = weights [K][R][S][C] (conv.cu)
// Requirements checked by the launchers: 16-byte aligned rows and batch offsets for every cp.async
// source (lda, ldb, strides multiples of 16 bytes). Tails in M, N and K are zero-filled by cp.async's
// src-size operand, so no out-of-range byte is read and padding contributes zeros.
//
// Shared-memory rows are padded (80 bytes for a 64-byte K row, 272 for a 256-byte N row) so the
// eight 16-byte rows an ldmatrix phase reads land in distinct banks.
#pragma once
#include <type_traits>

#include "cuda/kernels/epilogue.h"
#include "cuda/kernels/gemm_common.cuh"
#include "cuda/kernels/gemm_int8.h"

namespace runnx::cuda {

enum class MmaMode { kF16NN, kF16NT, kS8NT, kConvF16 };

constexpr int kMmaBM = 128, kMmaBN = 128, kMmaBKBytes = 64, kMmaStages = 4, kMmaThreads = 128;
// Warp tiles of 64x64: 8 ldmatrix.x4 feed 32 mma per K step (a 64x32 tile needs 6 for 16, which
// would make shared-memory bandwidth the limit before the tensor cores).
constexpr int kWarpsN = 2, kWarpTileM = 64, kWarpTileN = kMmaBN / kWarpsN;
constexpr int kMi = kWarpTileM / 16, kNj = kWarpTileN / 8;  // mma tiles per warp (m16, n8)
static_assert((kMmaThreads / 32 / kWarpsN) * kWarpTileM == kMmaBM, "warps must cover the block tile");
// 16-byte chunks each thread copies per stage for A, B^T (rows x 4 chunks) and B (32 rows x 16).
constexpr int kChunksPerThread = kMmaBM * 4 / kMmaThreads;
static_assert(kMmaBN * 4 / kMmaThreads == kChunksPerThread && 32 * 16 / kMmaThreads == kChunksPerThread,
              "every operand tile splits evenly over the threads");
constexpr int kRowK = 80;                 // padded bytes of one 64-byte K row (A, and B^T)
constexpr int kRowN = 272;                // padded bytes of one 128-half N row (B as [K][N])
constexpr int kStageA = kMmaBM * kRowK;   // 10240
constexpr int kStageB = kMmaBN * kRowK;   // 10240 >= 32 * kRowN = 8704
constexpr int kStageBytes = kStageA + kStageB;
constexpr int kMmaSmemBytes = kMmaStages * kStageBytes;  // 81920: needs the opt-in attribute
constexpr int kCRow = kMmaBN + 4;  // floats per row when C is staged in shared memory at the end
static_assert(kMmaBM * kCRow * 4 <= kMmaSmemBytes, "C staging must fit in the pipeline's shared memory");

// The implicit-GEMM view of an NHWC convolution (row m = output pixel, column k = (r, s, c)).
struct ConvGeometry {
  int32_t H = 0, W = 0, C = 0, R = 0, S = 0, P = 0, Q = 0;
  int32_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dil_h = 1, dil_w = 1;
};

struct MmaParams {
  int64_t M, N, K;
  const void* A;  // fp16/int8 matrix, or the NHWC image for kConvF16
  int64_t lda;
  const void* B;
  int64_t ldb;
  void* C;
  int64_t ldc;
  bool c_is_f32;                 // fp16 modes: C is float (else __half)
  int64_t batch;
  BatchOffsets bo;
  Epilogue epi;                  // fp16 modes
  // kS8NT: the quantized output stage (gemm_int8.h); the row sums of A (b*M + m) and of B^T
  // (b*N + n) over the sign-flipped bytes, each null when its zero-point term is known to vanish.
  GemmInt8Args q;
  const int32_t* row_sum_a = nullptr;
  const int32_t* col_sum_b = nullptr;
  uint32_t a_flip = 0, b_flip = 0;  // 0x80808080 turns uint8 bytes into int8 (x - 128)
  // The zero-filled K tail flips too: with both operands uint8 each padded k adds (-128)^2 to
  // the tensor-core sum; the launcher sets this to that total so the epilogue can remove it.
  int32_t k_pad_term = 0;
  // Split-K (fp16 modes, batch 1): block z sums K range [z*k_per_split, (z+1)*k_per_split) and
  // stores its raw fp32 tile in partial[z][M][N]; split_k_reduce adds the splits and applies the
  // epilogue. k_splits = 1: the whole K, epilogue in the kernel.
  int32_t k_splits = 1;
  int64_t k_per_split = 0;  // a multiple of the stage's K elements
  float* partial = nullptr;
  int32_t forced_k_splits = 0;  // tests: split this many ways (batch 1) whatever the heuristic says
  ConvGeometry g;                // kConvF16
};

__device__ __forceinline__ int32_t load_q8(const void* p, int64_t i, bool is_unsigned) {
  return is_unsigned ? static_cast<int32_t>(static_cast<const uint8_t*>(p)[i])
                     : static_cast<int32_t>(static_cast<const int8_t*>(p)[i]);
}

// acc is the int32 sum over the sign-flipped (int8) values a' = a - 128*[a unsigned]; with the
// effective zero points za' = za - 128*[a unsigned] (likewise for B), the exact sum is
//   sum (a' - za')(b' - zb') = acc - za' * colsum(b') - zb' * rowsum(a') + K * za' * zb'
// computed in wrapping (unsigned) arithmetic: the terms may overflow, the result fits in int32.
__device__ __forceinline__ void store_int8_result(const MmaParams& p, int64_t b, int64_t at, int64_t m, int64_t n,
                                                  int32_t acc) {
  const GemmInt8Args& q = p.q;
  const int32_t za = (q.a_zero ? load_q8(q.a_zero, 0, q.a_unsigned) : 0) - (q.a_unsigned ? 128 : 0);
  const int32_t zb = (q.b_zero ? load_q8(q.b_zero, n * q.b_zero_stride, q.b_unsigned) : 0) - (q.b_unsigned ? 128 : 0);
  uint32_t u = static_cast<uint32_t>(acc) - static_cast<uint32_t>(p.k_pad_term);
  if (p.col_sum_b) u -= static_cast<uint32_t>(za) * static_cast<uint32_t>(p.col_sum_b[b * p.N + n]);
  if (p.row_sum_a) u -= static_cast<uint32_t>(zb) * static_cast<uint32_t>(p.row_sum_a[b * p.M + m]);
  u += static_cast<uint32_t>(p.K) * static_cast<uint32_t>(za) * static_cast<uint32_t>(zb);
  const int32_t v = static_cast<int32_t>(u);
  if (q.out == Int8Output::kInt32) {
    static_cast<int32_t*>(p.C)[at] = v;
    return;
  }
  const float s = q.a_scale[0] * q.b_scale[n * q.b_scale_stride];
  if (q.out == Int8Output::kFloat) {
    float f = static_cast<float>(v) * s;
    if (q.bias) f += q.bias[n];
    static_cast<float*>(p.C)[at] = apply_activation(f, q.act, q.p0, q.p1);
    return;
  }
  const bool out_unsigned = q.out == Int8Output::kUInt8;
  const float yz = q.y_zero ? static_cast<float>(load_q8(q.y_zero, 0, out_unsigned)) : 0.f;
  const float f = rintf(static_cast<float>(v) * (s / q.y_scale[0])) + yz;
  if (out_unsigned)
    static_cast<uint8_t*>(p.C)[at] = static_cast<uint8_t>(fminf(fmaxf(f, 0.f), 255.f));
  else
    static_cast<int8_t*>(p.C)[at] = static_cast<int8_t>(fminf(fmaxf(f, -128.f), 127.f));
}

// The operand fields of MmaParams from a launcher's arguments (everything else left default).
inline MmaParams mma_params_of(const GemmOperands& g) {
  MmaParams p{};
  p.M = g.M;
  p.N = g.N;
  p.K = g.K;
  p.A = g.A;
  p.lda = g.lda;
  p.B = g.B;
  p.ldb = g.ldb;
  p.C = g.C;
  p.ldc = g.ldc;
  p.batch = g.batch_outer * g.batch_inner;
  p.bo = batch_offsets_of(g);
  return p;
}

template <MmaMode kMode>
__device__ __forceinline__ void mma_store(const MmaParams& p, int64_t b, int64_t oc, int64_t m, int64_t n,
                                          float accf, int32_t acci) {
  if (m >= p.M || n >= p.N) return;
  const int64_t at = oc + m * p.ldc + n;
  if constexpr (kMode == MmaMode::kS8NT) {
    store_int8_result(p, b, at, m, n, acci);
  } else {
    if (p.c_is_f32)
      store_output(static_cast<float*>(p.C) + at, apply_epilogue<float>(p.epi, accf, b, m, n));
    else
      store_output(static_cast<__half*>(p.C) + at, apply_epilogue<__half>(p.epi, accf, b, m, n));
  }
}

template <MmaMode kMode>
__global__ void __launch_bounds__(kMmaThreads, 2) mma_gemm_kernel(MmaParams p) {
  constexpr bool kInt8 = kMode == MmaMode::kS8NT;
  constexpr bool kBRowsAreN = kMode != MmaMode::kF16NN;  // B staged as B^T [N][K]
  constexpr int kElem = kInt8 ? 1 : 2;                     // bytes per element
  constexpr int kChunkElems = 16 / kElem;                  // elements per 16-byte chunk
  constexpr int kBK = kMmaBKBytes / kElem;                 // K elements per stage
  using Acc = typename std::conditional<kInt8, int32_t, float>::type;

  extern __shared__ __align__(128) unsigned char smem[];
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int warp_m = warp / kWarpsN, warp_n = warp % kWarpsN;
  const int64_t tiles_m = ceil_div(p.M, kMmaBM), tiles_n = ceil_div(p.N, kMmaBN);
  int64_t tm, tn;
  raster_tile(blockIdx.x, tiles_m, tiles_n, tm, tn);
  const int64_t m0 = tm * kMmaBM, n0 = tn * kMmaBN;
  const int64_t k_begin = blockIdx.z * p.k_per_split;
  const int64_t k_end = min(p.K, k_begin + p.k_per_split);
  const int64_t k_tiles = k_end > k_begin ? ceil_div(k_end - k_begin, kBK) : 0;
  const unsigned char* A = static_cast<const unsigned char*>(p.A);
  const unsigned char* B = static_cast<const unsigned char*>(p.B);

  // Each thread copies two 16-byte chunks of A and two of B per stage; for A (and B^T) chunk
  // c = tid + kMmaThreads*r is row c / 4, chunk column c % 4; for B [K][N] row c / 16, chunk
  // column c % 16.
  // For the convolution, this thread's two A rows are output pixels fixed for the whole loop.
  int32_t conv_img[kChunksPerThread] = {}, conv_h0[kChunksPerThread] = {}, conv_w0[kChunksPerThread] = {};
  if constexpr (kMode == MmaMode::kConvF16) {
    for (int r = 0; r < kChunksPerThread; ++r) {
      const int64_t m = m0 + (tid + kMmaThreads * r) / 4;
      const int64_t pq = static_cast<int64_t>(p.g.P) * p.g.Q;
      const int64_t mm = m < p.M ? m : 0;
      conv_img[r] = static_cast<int32_t>(mm / pq);
      const int32_t rem = static_cast<int32_t>(mm % pq);
      conv_h0[r] = (rem / p.g.Q) * p.g.stride_h - p.g.pad_h;
      conv_w0[r] = (rem % p.g.Q) * p.g.stride_w - p.g.pad_w;
    }
  }

  for (int64_t bidx = blockIdx.y; bidx < p.batch; bidx += gridDim.y) {
    int64_t oa, ob, oc;
    batch_offsets(p.bo, bidx, oa, ob, oc);

    auto load_stage = [&](int64_t kt, int stage) {
      unsigned char* sa = smem + stage * kStageBytes;
      unsigned char* sb = sa + kStageA;
      const int64_t k0 = k_begin + kt * kBK;
#pragma unroll
      for (int r = 0; r < kChunksPerThread; ++r) {
        const int c = tid + kMmaThreads * r, row = c / 4, col = c % 4;
        const int64_t m = m0 + row, k = k0 + col * kChunkElems;
        const void* src = A;
        int bytes = 0;
        if constexpr (kMode == MmaMode::kConvF16) {
          // k = (r*S + s)*C + ch; a chunk of 8 channels never straddles (r, s) because C % 8 == 0.
          if (m < p.M && k < k_end) {
            const int32_t kk = static_cast<int32_t>(k), ch = kk % p.g.C, rs = kk / p.g.C;
            const int32_t h = conv_h0[r] + (rs / p.g.S) * p.g.dil_h, w = conv_w0[r] + (rs % p.g.S) * p.g.dil_w;
            if (h >= 0 && h < p.g.H && w >= 0 && w < p.g.W) {
              src = A + ((((static_cast<int64_t>(conv_img[r]) * p.g.H + h) * p.g.W + w) * p.g.C + ch) * kElem);
              bytes = 16;
            }
          }
        } else {
          if (m < p.M && k < k_end) {
            src = A + (oa + m * p.lda + k) * kElem;
            bytes = static_cast<int>(min(static_cast<int64_t>(kChunkElems), k_end - k)) * kElem;
          }
        }
        cp_async_16(sa + row * kRowK + col * 16, src, bytes);
      }
#pragma unroll
      for (int r = 0; r < kChunksPerThread; ++r) {
        const int c = tid + kMmaThreads * r;
        const void* src = B;
        int bytes = 0;
        if constexpr (kBRowsAreN) {
          const int row = c / 4, col = c % 4;
          const int64_t n = n0 + row, k = k0 + col * kChunkElems;
          if (n < p.N && k < k_end) {
            src = B + (ob + n * p.ldb + k) * kElem;
            bytes = static_cast<int>(min(static_cast<int64_t>(kChunkElems), k_end - k)) * kElem;
          }
          cp_async_16(sb + row * kRowK + col * 16, src, bytes);
        } else {
          const int row = c / 16, col = c % 16;
          const int64_t k = k0 + row, n = n0 + col * kChunkElems;
          if (k < k_end && n < p.N) {
            src = B + (ob + k * p.ldb + n) * kElem;
            bytes = static_cast<int>(min(static_cast<int64_t>(kChunkElems), p.N - n)) * kElem;
          }
          cp_async_16(sb + row * kRowN + col * 16, src, bytes);
        }
      }
    };

    Acc acc[kMi][kNj][4];
#pragma unroll
    for (int i = 0; i < kMi; ++i)
#pragma unroll
      for (int j = 0; j < kNj; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[i][j][e] = 0;

    // Prologue: stages 0..kStages-2 in flight. One commit per stage, empty or not, keeps the
    // group count in step with the tile index for cp_async_wait.
#pragma unroll
    for (int s = 0; s < kMmaStages - 1; ++s) {
      if (s < k_tiles) load_stage(s, s);
      cp_async_commit();
    }

    for (int64_t kt = 0; kt < k_tiles; ++kt) {
      cp_async_wait<kMmaStages - 2>();  // tile kt has landed (for this thread's copies)
      __syncthreads();                  // ... and everyone's; the stage read at kt-1 is free
      {
        const int64_t next = kt + kMmaStages - 1;
        if (next < k_tiles) load_stage(next, static_cast<int>(next % kMmaStages));
        cp_async_commit();
      }
      const unsigned char* sa = smem + static_cast<int>(kt % kMmaStages) * kStageBytes;
      const unsigned char* sb = sa + kStageA;
#pragma unroll
      for (int ks = 0; ks < 2; ++ks) {  // two 32-byte K steps per stage
        uint32_t af[kMi][4], bf[kNj][2];
#pragma unroll
        for (int mi = 0; mi < kMi; ++mi) {
          // Matrices: rows 0-7 / 8-15 at K bytes 0-15, then at K bytes 16-31 -> a0..a3.
          const int row = warp_m * kWarpTileM + mi * 16 + (lane & 15);
          ldmatrix_x4(af[mi], sa + row * kRowK + ks * 32 + (lane >> 4) * 16);
          if constexpr (kInt8) {
#pragma unroll
            for (int e = 0; e < 4; ++e) af[mi][e] ^= p.a_flip;
          }
        }
#pragma unroll
        for (int nj2 = 0; nj2 < kNj / 2; ++nj2) {
          uint32_t r4[4];
          if constexpr (kBRowsAreN) {
            // Matrices: n 0-7 at K bytes 0-15 / 16-31, then n 8-15 likewise.
            const int row = warp_n * kWarpTileN + nj2 * 16 + (lane & 7) + ((lane >> 4) << 3);
            ldmatrix_x4(r4, sb + row * kRowK + ks * 32 + ((lane >> 3) & 1) * 16);
          } else {
            // Stored as [k][n]; transposed loads give the column-major B fragment. Matrices:
            // k 0-7 / 8-15 at n 0-7, then at n 8-15.
            const int krow = ks * 16 + (lane & 15);
            ldmatrix_x4_trans(r4, sb + krow * kRowN + (warp_n * kWarpTileN + nj2 * 16 + (lane >> 4) * 8) * 2);
          }
          bf[nj2 * 2][0] = r4[0];
          bf[nj2 * 2][1] = r4[1];
          bf[nj2 * 2 + 1][0] = r4[2];
          bf[nj2 * 2 + 1][1] = r4[3];
          if constexpr (kInt8) {
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              bf[nj2 * 2][e] ^= p.b_flip;
              bf[nj2 * 2 + 1][e] ^= p.b_flip;
            }
          }
        }
#pragma unroll
        for (int mi = 0; mi < kMi; ++mi)
#pragma unroll
          for (int nj = 0; nj < kNj; ++nj) {
            if constexpr (kInt8)
              mma_s8_16832(acc[mi][nj], af[mi], bf[nj]);
            else
              mma_f16_16816(acc[mi][nj], af[mi], bf[nj]);
          }
      }
    }
    cp_async_wait<0>();
    __syncthreads();  // every warp is done with the stages: reuse them to stage C

    // Accumulator fragment: e0,e1 at (row g, cols 2t, 2t+1), e2,e3 at (row g+8, same cols),
    // g = lane / 4, t = lane % 4. Staged through shared memory (int32 kept as its bits) so the
    // epilogue runs once per element in a plain loop with coalesced stores.
    float* cs = reinterpret_cast<float*>(smem);
#pragma unroll
    for (int mi = 0; mi < kMi; ++mi)
#pragma unroll
      for (int nj = 0; nj < kNj; ++nj)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int row = warp_m * kWarpTileM + mi * 16 + (lane >> 2) + (e >> 1) * 8;
          const int col = warp_n * kWarpTileN + nj * 8 + (lane & 3) * 2 + (e & 1);
          if constexpr (kInt8)
            cs[row * kCRow + col] = __int_as_float(acc[mi][nj][e]);
          else
            cs[row * kCRow + col] = acc[mi][nj][e];
        }
    __syncthreads();
#pragma unroll 1
    for (int e = tid; e < kMmaBM * kMmaBN; e += kMmaThreads) {
      const int row = e / kMmaBN, col = e % kMmaBN;
      const float v = cs[row * kCRow + col];
      const int64_t m = m0 + row, n = n0 + col;
      if (p.k_splits > 1) {
        if (m < p.M && n < p.N) p.partial[(blockIdx.z * p.M + m) * p.N + n] = v;
      } else {
        mma_store<kMode>(p, bidx, oc, m, n, v, __float_as_int(v));
      }
    }
    __syncthreads();  // the next batch entry's prologue overwrites shared memory
  }
}

// Adds the k_splits partial tiles of a split-K run in a fixed order (deterministic) and applies
// the fp16 modes' epilogue (gemm_f16.cu).
void launch_split_k_reduce(const MmaParams& p, cudaStream_t stream);

// How many K splits a launch gets: only when the output tiles leave most SMs idle (batch 1, few
// tiles, long K), at most 8, each at least 4 stages of K.
int32_t choose_k_splits(const MmaParams& p, int k_per_stage);

// Bytes of fp32 partial sums a split-K launch of `p` needs (0 when it would not split).
size_t mma_split_workspace_bytes(const MmaParams& p, int k_per_stage);

// Launches the tensor-core kernel; with a workspace of at least mma_split_workspace_bytes it
// splits K when that helps (fp16 modes only).
template <MmaMode kMode>
void launch_mma_gemm(const MmaParams& params, cudaStream_t stream, void* workspace = nullptr,
                     size_t workspace_bytes = 0) {
  if (params.M <= 0 || params.N <= 0 || params.batch <= 0) return;
  constexpr int kBK = kMode == MmaMode::kS8NT ? kMmaBKBytes : kMmaBKBytes / 2;
  MmaParams p = params;
  p.k_splits = 1;
  p.k_per_split = p.K;
  const size_t need = kMode == MmaMode::kS8NT ? 0 : mma_split_workspace_bytes(p, kBK);
  if (need > 0 && workspace && workspace_bytes >= need) {
    p.k_splits = choose_k_splits(p, kBK);
    p.k_per_split = ceil_div(ceil_div(p.K, kBK), p.k_splits) * kBK;
    p.partial = static_cast<float*>(workspace);
  }
  cudaFuncSetAttribute(mma_gemm_kernel<kMode>, cudaFuncAttributeMaxDynamicSharedMemorySize, kMmaSmemBytes);
  const int64_t tiles = ceil_div(p.M, kMmaBM) * ceil_div(p.N, kMmaBN);
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(p.batch < kMaxGridYZ ? p.batch : kMaxGridYZ),
                  static_cast<unsigned>(p.k_splits));
  mma_gemm_kernel<kMode><<<grid, kMmaThreads, kMmaSmemBytes, stream>>>(p);
  if (p.k_splits > 1) launch_split_k_reduce(p, stream);
}

}  // namespace runnx::cuda
