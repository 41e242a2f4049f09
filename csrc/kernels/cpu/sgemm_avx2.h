// AVX2/FMA single-precision GEMM (compiled in csrc/kernels/cpu/avx2/ with -mavx2 -mfma; call only
// when cpu_features().has_avx2_fma()). Same contract as gemm_f32 in gemm.h.
#pragma once
#include <cstdint>

#include "common/thread_pool.h"

namespace runnx {

void sgemm_avx2(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                int64_t ldb, float* C, int64_t ldc, float beta, ThreadPool* pool);

}  // namespace runnx
