// Element-wise CUDA launchers: broadcasting binaries, unary math and activations, Where, Cast.
// All tensors are contiguous row-major device buffers; shapes follow numpy broadcasting
// (right-aligned, size-1 dims stretch); the output has the broadcast shape. Empty outputs launch
// nothing. fp16 (__half) is computed in fp32. Launchers never synchronise; the caller checks
// cudaGetLastError(). Bad arguments (dtype, shapes) throw runnx::Error on the host.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "common/dtype.h"
#include "cuda/kernels/epilogue.h"

namespace runnx::cuda {

enum class BinaryOp : int32_t {
  kAdd, kSub, kMul, kDiv, kPow, kMax, kMin,
  // Comparisons write bool (one byte, 0 or 1).
  kEqual, kLess, kLessOrEqual, kGreater, kGreaterOrEqual,
};

// y = a op b. dtype (of a and b; of y too, except comparisons: bool): kF32, kF16, kI32, kI64.
// Integers: Div truncates toward zero (x / 0 gives 0), Pow goes through double.
// Max/Min propagate NaN (as numpy's maximum/minimum).
void launch_binary(BinaryOp op, DType dtype, const void* a, const std::vector<int64_t>& a_dims, const void* b,
                   const std::vector<int64_t>& b_dims, void* y, cudaStream_t stream);

enum class UnaryOp : int32_t {
  kActivation,  // the epilogue's Activation (act, p0, p1): Relu, Clip, Sigmoid, Tanh, Gelu, ...
  kExp, kLog, kSqrt, kRsqrt, kNeg, kReciprocal, kAbs, kErf, kFloor, kCeil,
  kRound,        // half to even, as ONNX Round
  kSin, kCos, kSign,
  kSoftplus,     // log(1 + exp(x))
  kElu,          // x >= 0 ? x : p0 (exp(x) - 1)
  kHardSigmoid,  // clamp(p0 x + p1, 0, 1)
  kIdentity,
};

struct UnaryFn {
  UnaryOp op = UnaryOp::kIdentity;
  Activation act = Activation::kNone;  // used when op == kActivation
  float p0 = 0.f, p1 = 0.f;            // per op, see above and epilogue.h
};

// y[i] = f(x[i]) for i < n; x and y float or __half (same dtype). y may alias x.
void launch_unary(const UnaryFn& f, DType dtype, const void* x, void* y, int64_t n, cudaStream_t stream);

// out = cond ? x : y with the three shapes broadcast. cond is bool (1 byte); x, y, out share a
// dtype of 1, 2, 4 or 8 bytes (any: the bytes are copied).
void launch_where(const bool* cond, const std::vector<int64_t>& cond_dims, DType dtype, const void* x,
                  const std::vector<int64_t>& x_dims, const void* y, const std::vector<int64_t>& y_dims,
                  void* out, cudaStream_t stream);

// y[i] = (to) x[i] for i < n between kF32, kF16, kF64, kI64, kI32, kI8, kU8, kBool. Floats to
// integers truncate toward zero (out-of-range values are undefined, as in C); to bool is x != 0;
// between integers, two's-complement wrap (as numpy's astype).
void launch_cast(DType from, const void* x, DType to, void* y, int64_t n, cudaStream_t stream);

}  // namespace runnx::cuda
