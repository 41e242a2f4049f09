// fp16 GEMM on tensor cores (gemm_mma.cuh), with the SIMT kernel as the fallback for operands whose
// rows or batch offsets are not 16-byte aligned.
#include <cstdint>

#include "cuda/kernels/gemm.h"
#include "cuda/kernels/gemm_mma.cuh"
#include "cuda/kernels/simple_mode.h"

namespace runnx::cuda {

namespace {

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }
bool multiple_of_8(int64_t v) { return v % 8 == 0; }

__global__ void split_k_reduce_kernel(MmaParams p) {
  const int64_t total = p.M * p.N;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float acc = 0.f;
    for (int32_t z = 0; z < p.k_splits; ++z) acc += p.partial[z * total + i];
    const int64_t m = i / p.N, n = i % p.N;
    mma_store<MmaMode::kF16NT>(p, 0, 0, m, n, acc, 0);
  }
}

int sm_count() {
  int device = 0, sms = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
    cudaGetLastError();  // a failed query only means "do not split"
    return 0;
  }
  return sms;
}

}  // namespace

void launch_split_k_reduce(const MmaParams& p, cudaStream_t stream) {
  const int64_t blocks = ceil_div(p.M * p.N, 256);
  split_k_reduce_kernel<<<static_cast<unsigned>(blocks < 65536 ? blocks : 65536), 256, 0, stream>>>(p);
}

int32_t choose_k_splits(const MmaParams& p, int k_per_stage) {
  if (p.forced_k_splits > 0) return p.forced_k_splits;
  if (p.batch != 1) return 1;
  const int64_t tiles = ceil_div(p.M, kMmaBM) * ceil_div(p.N, kMmaBN);
  const int64_t sms = sm_count();
  const int64_t stages = ceil_div(p.K, k_per_stage);
  if (tiles * 2 > sms || stages < 8) return 1;
  int64_t splits = sms / tiles;
  splits = splits < 8 ? splits : 8;
  splits = splits < stages / 4 ? splits : stages / 4;
  return static_cast<int32_t>(splits > 1 ? splits : 1);
}

size_t mma_split_workspace_bytes(const MmaParams& p, int k_per_stage) {
  if (p.batch != 1 || p.M <= 0 || p.N <= 0) return 0;
  const int32_t splits = choose_k_splits(p, k_per_stage);
  return splits > 1 ? static_cast<size_t>(splits) * p.M * p.N * sizeof(float) : 0;
}

bool gemm_f16_uses_tensor_cores(const GemmArgs& a) {
  if (use_simple_kernels()) return false;
  return aligned16(a.A) && aligned16(a.B) && multiple_of_8(a.lda) && multiple_of_8(a.ldb) &&
         multiple_of_8(a.a_outer) && multiple_of_8(a.a_inner) && multiple_of_8(a.b_outer) &&
         multiple_of_8(a.b_inner);
}

namespace {

MmaParams fp16_params(const GemmArgs& a, bool c_is_f32) {
  MmaParams p = mma_params_of(a);
  p.c_is_f32 = c_is_f32;
  p.epi = a.epi;
  p.forced_k_splits = a.force_k_splits;
  return p;
}

}  // namespace

size_t gemm_f16_workspace_bytes(const GemmArgs& a) {
  if (!gemm_f16_uses_tensor_cores(a)) return 0;
  return mma_split_workspace_bytes(fp16_params(a, false), kMmaBKBytes / 2);
}

void launch_gemm_f16(const GemmArgs& a, bool c_is_f32, cudaStream_t stream, void* workspace,
                     size_t workspace_bytes) {
  if (!gemm_f16_uses_tensor_cores(a)) return launch_gemm_f16_simt(a, c_is_f32, stream);
  const MmaParams p = fp16_params(a, c_is_f32);
  if (a.trans_b)
    launch_mma_gemm<MmaMode::kF16NT>(p, stream, workspace, workspace_bytes);
  else
    launch_mma_gemm<MmaMode::kF16NN>(p, stream, workspace, workspace_bytes);
}

}  // namespace runnx::cuda
