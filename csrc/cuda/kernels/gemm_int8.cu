// int8 GEMM: the tensor-core kernel (gemm_mma.cuh, kS8NT) or, for unaligned operands and
// RUNNX_CUDA_SIMPLE=1, one thread per output summing in int32. Both end in store_int8_result.
#include <cstdint>

#include "cuda/kernels/gemm.h"
#include "cuda/kernels/gemm_int8.h"
#include "cuda/kernels/gemm_mma.cuh"
#include "cuda/kernels/simple_mode.h"

namespace runnx::cuda {

namespace {

constexpr uint32_t kFlip = 0x80808080u;

// out[b*rows + r] = sum_k x'[b][r][k], x' = x as int8, or x - 128 for uint8. One warp per row.
__global__ void row_sums_kernel(const int8_t* x, int64_t rows, int64_t K, int64_t ld, int64_t batch,
                                BatchOffsets bo, bool is_b, bool is_unsigned, int32_t* out) {
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows * batch) return;
  const int64_t b = row / rows, r = row % rows;
  int64_t oa, ob, oc;
  batch_offsets(bo, b, oa, ob, oc);
  const int8_t* p = x + (is_b ? ob : oa) + r * ld;
  int32_t s = 0;
  for (int64_t k = lane; k < K; k += 32) s += is_unsigned ? static_cast<int32_t>(static_cast<uint8_t>(p[k])) - 128 : p[k];
  for (int off = 16; off > 0; off /= 2) s += __shfl_xor_sync(0xffffffffu, s, off);
  if (lane == 0) out[row] = s;
}

void launch_row_sums(const void* x, int64_t rows, int64_t K, int64_t ld, int64_t batch, const BatchOffsets& bo,
                     bool is_b, bool is_unsigned, int32_t* out, cudaStream_t stream) {
  const int64_t threads = rows * batch * 32;
  row_sums_kernel<<<static_cast<unsigned>(ceil_div(threads, 256)), 256, 0, stream>>>(
      static_cast<const int8_t*>(x), rows, K, ld, batch, bo, is_b, is_unsigned, out);
}

__device__ __forceinline__ int32_t signed_value(const void* p, int64_t i, bool is_unsigned) {
  return is_unsigned ? static_cast<int32_t>(static_cast<const uint8_t*>(p)[i]) - 128
                     : static_cast<int32_t>(static_cast<const int8_t*>(p)[i]);
}

// The simple kernel: thread (x, y) of the grid computes C[m = y][n = x] for each batch entry.
__global__ void simple_int8_kernel(MmaParams p) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int64_t m = static_cast<int64_t>(blockIdx.y) * blockDim.y + threadIdx.y; m < p.M;
       m += static_cast<int64_t>(gridDim.y) * blockDim.y) {
    for (int64_t b = blockIdx.z; b < p.batch; b += gridDim.z) {
      if (n >= p.N) continue;
      int64_t oa, ob, oc;
      batch_offsets(p.bo, b, oa, ob, oc);
      int32_t acc = 0;
      for (int64_t k = 0; k < p.K; ++k)
        acc += signed_value(p.A, oa + m * p.lda + k, p.q.a_unsigned) * signed_value(p.B, ob + n * p.ldb + k, p.q.b_unsigned);
      store_int8_result(p, b, oc + m * p.ldc + n, m, n, acc);
    }
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

}  // namespace

size_t gemm_int8_workspace_bytes(const GemmInt8Args& a) {
  const int64_t batch = a.batch_outer * a.batch_inner;
  return static_cast<size_t>(4 * batch * (a.M + a.N));
}

bool gemm_int8_uses_tensor_cores(const GemmInt8Args& a) {
  if (use_simple_kernels()) return false;
  for (int64_t v : {a.lda, a.ldb, a.a_outer, a.a_inner, a.b_outer, a.b_inner})
    if (v % 16 != 0) return false;
  return aligned16(a.A) && aligned16(a.B);
}

void launch_gemm_int8(const GemmInt8Args& a, void* workspace, cudaStream_t stream) {
  const int64_t batch = a.batch_outer * a.batch_inner;
  if (a.M <= 0 || a.N <= 0 || batch <= 0) return;
  MmaParams p = mma_params_of(a);
  p.q = a;
  p.a_flip = a.a_unsigned ? kFlip : 0u;
  p.b_flip = a.b_unsigned ? kFlip : 0u;
  // The zero-point terms: a nonzero effective A zero point multiplies the sums of B's rows (B^T)
  // and vice versa. A uint8 operand always has one (its -128 shift).
  int32_t* sums = static_cast<int32_t*>(workspace);
  if (a.a_zero || a.a_unsigned) {
    p.col_sum_b = sums + batch * a.M;
    launch_row_sums(a.B, a.N, a.K, a.ldb, batch, p.bo, true, a.b_unsigned, sums + batch * a.M, stream);
  }
  if (a.b_zero || a.b_unsigned) {
    p.row_sum_a = sums;
    launch_row_sums(a.A, a.M, a.K, a.lda, batch, p.bo, false, a.a_unsigned, sums, stream);
  }
  if (gemm_int8_uses_tensor_cores(a)) {
    const int64_t padded_k = ceil_div(a.K, kMmaBKBytes) * kMmaBKBytes;
    if (a.a_unsigned && a.b_unsigned) p.k_pad_term = static_cast<int32_t>((padded_k - a.K) * 128 * 128);
    return launch_mma_gemm<MmaMode::kS8NT>(p, stream);
  }
  const dim3 block(32, 8);
  const dim3 grid(static_cast<unsigned>(ceil_div(a.N, 32)),
                  static_cast<unsigned>(ceil_div(a.M, 8) < kMaxGridYZ ? ceil_div(a.M, 8) : kMaxGridYZ),
                  static_cast<unsigned>(batch < kMaxGridYZ ? batch : kMaxGridYZ));
  simple_int8_kernel<<<grid, block, 0, stream>>>(p);
}

}  // namespace runnx::cuda
