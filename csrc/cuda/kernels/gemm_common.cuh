// Device helpers shared by the GEMM, convolution and attention kernels (nvcc only): batch
// offsets, block rasterisation, and thin wrappers over the PTX instructions the tensor-core
// kernels use (cp.async, ldmatrix, mma.sync). Each wrapper is one instruction; the fragment
// layouts they produce are spelled out where they are consumed (gemm_mma.cuh).
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/kernels/gemm.h"

namespace runnx::cuda {

// Grid dimensions y and z may not exceed 65535; kernels loop over the rest.
constexpr int64_t kMaxGridYZ = 65535;

__host__ __device__ inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Element offsets of one batch entry b = o*inner + i.
struct BatchOffsets {
  int64_t inner = 1;
  int64_t a_outer = 0, a_inner = 0, b_outer = 0, b_inner = 0, c_outer = 0, c_inner = 0;
};

__device__ __forceinline__ void batch_offsets(const BatchOffsets& bo, int64_t b, int64_t& oa, int64_t& ob,
                                              int64_t& oc) {
  const int64_t o = b / bo.inner, i = b % bo.inner;
  oa = o * bo.a_outer + i * bo.a_inner;
  ob = o * bo.b_outer + i * bo.b_inner;
  oc = o * bo.c_outer + i * bo.c_inner;
}

inline BatchOffsets batch_offsets_of(const GemmOperands& a) {
  BatchOffsets bo;
  bo.inner = a.batch_inner > 0 ? a.batch_inner : 1;
  bo.a_outer = a.a_outer;
  bo.a_inner = a.a_inner;
  bo.b_outer = a.b_outer;
  bo.b_inner = a.b_inner;
  bo.c_outer = a.c_outer;
  bo.c_inner = a.c_inner;
  return bo;
}

// Maps a linear block index to (tile_m, tile_n), walking groups of 8 tile rows column by column
// so that blocks running at the same time share A rows and B columns in L2.
__device__ __forceinline__ void raster_tile(int64_t linear, int64_t tiles_m, int64_t tiles_n, int64_t& tm,
                                            int64_t& tn) {
  constexpr int64_t kGroup = 8;
  const int64_t per_group = kGroup * tiles_n;
  const int64_t group = linear / per_group;
  const int64_t first_m = group * kGroup;
  const int64_t rows = min(kGroup, tiles_m - first_m);
  const int64_t in_group = linear % per_group;
  tm = first_m + in_group % rows;
  tn = in_group / rows;
}

// ---- PTX wrappers (sm_80+) ----

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Copies 16 bytes global -> shared asynchronously; bytes past `src_bytes` (0..16) are zero-filled
// and not read, so a tail or out-of-range chunk needs no branch.
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(smem)), "l"(gmem),
               "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

// Four 8x8 b16 matrices; lane l gives the address of row (l % 8) of matrix (l / 8).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(smem)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(smem)));
}

// D = A*B + D, 16x8x16, fp16 inputs, fp32 accumulators.
__device__ __forceinline__ void mma_f16_16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// D = A*B + D, 16x8x32, int8 inputs, int32 accumulators (wrapping, as the hardware does).
__device__ __forceinline__ void mma_s8_16832(int32_t (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

}  // namespace runnx::cuda
