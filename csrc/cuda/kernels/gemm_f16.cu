// fp16 GEMM on tensor cores (gemm_mma.cuh), with the SIMT kernel as the fallback for operands whose
// rows or batch offsets are not 16-byte aligned.
#include <cstdint>

#include "cuda/kernels/gemm.h"
#include "cuda/kernels/gemm_mma.cuh"

namespace runnx::cuda {

namespace {

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }
bool multiple_of_8(int64_t v) { return v % 8 == 0; }

}  // namespace

bool gemm_f16_uses_tensor_cores(const GemmArgs& a) {
  if (cuda_simple_kernels_requested()) return false;
  return aligned16(a.A) && aligned16(a.B) && multiple_of_8(a.lda) && multiple_of_8(a.ldb) &&
         multiple_of_8(a.a_outer) && multiple_of_8(a.a_inner) && multiple_of_8(a.b_outer) &&
         multiple_of_8(a.b_inner);
}

void launch_gemm_f16(const GemmArgs& a, bool c_is_f32, cudaStream_t stream) {
  if (!gemm_f16_uses_tensor_cores(a)) return launch_gemm_f16_simt(a, c_is_f32, stream);
  MmaParams p{};
  p.M = a.M;
  p.N = a.N;
  p.K = a.K;
  p.A = a.A;
  p.lda = a.lda;
  p.B = a.B;
  p.ldb = a.ldb;
  p.C = a.C;
  p.ldc = a.ldc;
  p.c_is_f32 = c_is_f32;
  p.batch = a.batch_outer * a.batch_inner;
  p.bo = batch_offsets_of(a);
  p.epi = a.epi;
  if (a.trans_b)
    launch_mma_gemm<MmaMode::kF16NT>(p, stream);
  else
    launch_mma_gemm<MmaMode::kF16NN>(p, stream);
}

}  // namespace runnx::cuda
