// The integer GEMM under MatMulInteger, QLinearMatMul and com.runnx QGemm:
//   C[m][n] = sum_k (A[m][k] - za[m]) * (B[k][n] - zb[n])        int32, wrapping as int32 does
// A and B are int8 or uint8. Both are widened to int16 with their zero point subtracted
// (|v| <= 255, so a pair of products fits the int16 multiply-add without saturating): B is packed
// once per constant weight, A per row block. AVX2 runs vpmaddwd; the portable loop does the same
// math. The result is exact, so the ISA never changes it.
#pragma once
#include <cstdint>
#include <vector>

#include "common/thread_pool.h"
#include "ir/tensor.h"

namespace runnx {

// B - zb in 16-column panels of k pairs: data[panel][k / 2][column][k % 2], zero padded.
struct PackedQuantB {
  int64_t K = 0, N = 0;
  std::vector<int16_t> data;
};

// B[k][n] at B + k*ldb + n (or B + n*ldb + k when `trans`); zb per column (stride 1) or one value
// (stride 0); null zb: 0.
PackedQuantB pack_quant_b(const void* B, bool b_unsigned, int64_t K, int64_t N, int64_t ldb, bool trans,
                          const int32_t* zb, int64_t zb_stride);

// A[m][k] at A + m*lda + k; za per row (stride 1) or one value (stride 0); null za: 0.
// C[m][n] at C + m*ldc + n. Runs on `pool` when the product is large enough (pool may be null).
void quant_gemm(int64_t M, const void* A, bool a_unsigned, int64_t lda, const int32_t* za, int64_t za_stride,
                const PackedQuantB& B, int32_t* C, int64_t ldc, ThreadPool* pool);

// "avx2" or "portable": the path quant_gemm takes on this CPU.
const char* quant_gemm_isa();

inline bool is_q8(DType t) { return t == DType::kI8 || t == DType::kU8; }

// An int8 / uint8 tensor's values as int32 (zero points).
inline std::vector<int32_t> read_q8(const Tensor& t) {
  std::vector<int32_t> v(static_cast<size_t>(t.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = t.dtype == DType::kU8 ? t.ptr<uint8_t>()[i] : t.ptr<int8_t>()[i];
  return v;
}

// The requantize step of QLinearMatMul / QLinearConv / QGemm, as onnxruntime and the CUDA
// launcher do it: saturate(rint(float(sum) * mult) + zero) into uint8 (u8) or int8 bits. `sum` is
// the int32 product plus any int32 bias. Saturating first gives the same result (the bounds are
// integers) and lets 1.5 * 2^23 round half to even without libm; NaN (mult from a zero scale) ends
// at the minimum.
inline uint8_t requantize_q8(int32_t sum, float mult, float zero, bool u8) {
  const float lo = (u8 ? 0.f : -128.f) - zero, hi = (u8 ? 255.f : 127.f) - zero;
  float v = static_cast<float>(sum) * mult;
  v = v > lo ? v : lo;  // NaN too
  v = v < hi ? v : hi;
  v = (v + 12582912.0f) - 12582912.0f + zero;
  return u8 ? static_cast<uint8_t>(v) : static_cast<uint8_t>(static_cast<int8_t>(v));
}

}  // namespace runnx
