// fp32 GEMM and the fp16 SIMT fallback: the SIMT kernel of gemm_simt.cuh over plain matrices.
#include "cuda/kernels/gemm.h"
#include "cuda/kernels/gemm_simt.cuh"

namespace runnx::cuda {

namespace {

template <typename T>
void launch_simt_matrix(const GemmArgs& a, bool c_is_f32, cudaStream_t stream) {
  SimtGemmParams<T> p{};
  p.M = a.M;
  p.N = a.N;
  p.K = a.K;
  p.B = static_cast<const T*>(a.B);
  p.ldb = a.ldb;
  p.trans_b = a.trans_b;
  p.C = a.C;
  p.ldc = a.ldc;
  p.c_is_f32 = c_is_f32;
  p.batch = a.batch_outer * a.batch_inner;
  p.bo = batch_offsets_of(a);
  p.epi = a.epi;
  launch_simt_gemm(p, MatrixA<T>{static_cast<const T*>(a.A), a.lda}, stream);
}

}  // namespace

void launch_gemm_f32(const GemmArgs& args, cudaStream_t stream) { launch_simt_matrix<float>(args, true, stream); }

void launch_gemm_f16_simt(const GemmArgs& args, bool c_is_f32, cudaStream_t stream) {
  launch_simt_matrix<__half>(args, c_is_f32, stream);
}

}  // namespace runnx::cuda
