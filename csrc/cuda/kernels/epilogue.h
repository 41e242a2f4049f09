// The fused epilogue every CUDA GEMM / convolution / attention launcher applies to an output element
// while it is still in registers, in fp32, before the one store:
//
//   y[b, row, col] = act(alpha * acc + bias[col] + beta * residual[b, row, col])
//
// It mirrors the CPU FusedGemm / FusedConv semantics (kernels/cpu/gemm.h GemmEpilogue,
// kernels/cpu/conv_epilogue.h). Plain host struct: .cc files (cudart's op wrappers) fill it in;
// the device helpers below are only compiled by nvcc.
//
// dtypes: bias and residual have the OUTPUT's dtype (float for an fp32 output, __half for an fp16
// output). The int8 GEMM keeps its own int32 bias (see gemm_int8.h) and uses only `act` from here.
#pragma once
#include <cstdint>

#include <cuda_fp16.h>

namespace runnx::cuda {

// Same set as the CPU fused ops: FusedGemm (Relu, Clip, Sigmoid, Tanh, Gelu, GeluTanh) and
// FusedConv (Relu, Clip, Sigmoid, LeakyRelu, HardSwish).
enum class Activation : int32_t {
  kNone = 0,
  kRelu,
  kClip,       // clamp to [p0, p1]
  kSigmoid,
  kTanh,
  kGeluErf,    // 0.5 x (1 + erf(x / sqrt 2))
  kGeluTanh,   // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  kLeakyRelu,  // x >= 0 ? x : p0 * x
  kHardSwish,  // x * clamp(p0 * x + p1, 0, 1); ONNX HardSwish is p0 = 1/6, p1 = 0.5
};

struct Epilogue {
  float alpha = 1.f;               // scales the accumulator first (Gemm alpha, 1/sqrt(d), ...)
  const void* bias = nullptr;      // [N] (one per output column = per channel in NHWC), or null
  const void* residual = nullptr;  // element (b,row,col) at residual[b*residual_batch_stride + row*ldr + col], or null
  int64_t ldr = 0;                 // residual leading dimension (elements); usually = ldc
  int64_t residual_batch_stride = 0;  // elements between batches of a batched GEMM (0: shared)
  float beta = 1.f;                // scales the residual (Gemm beta with input C)
  Activation act = Activation::kNone;
  float p0 = 0.f, p1 = 0.f;        // Clip: min, max; LeakyRelu: alpha; HardSwish: alpha, beta

  bool is_identity() const { return alpha == 1.f && !bias && !residual && act == Activation::kNone; }
};

#ifdef __CUDACC__

__device__ __forceinline__ float apply_activation(float v, Activation act, float p0, float p1) {
  switch (act) {
    case Activation::kNone: return v;
    case Activation::kRelu: return v > 0.f ? v : 0.f;
    case Activation::kClip: return fminf(fmaxf(v, p0), p1);
    case Activation::kSigmoid: return 1.f / (1.f + expf(-v));
    case Activation::kTanh: return tanhf(v);
    case Activation::kGeluErf: return 0.5f * v * (1.f + erff(v * 0.70710678118654752f));
    case Activation::kGeluTanh: {
      const float inner = 0.79788456080286536f * (v + 0.044715f * v * v * v);
      return 0.5f * v * (1.f + tanhf(inner));
    }
    case Activation::kLeakyRelu: return v >= 0.f ? v : p0 * v;
    case Activation::kHardSwish: return v * fminf(fmaxf(p0 * v + p1, 0.f), 1.f);
  }
  return v;
}

__device__ __forceinline__ float epilogue_to_float(float v) { return v; }
__device__ __forceinline__ float epilogue_to_float(__half v) { return __half2float(v); }

// The epilogue for one element of an output of type OutT (float or __half); `acc` is the fp32
// accumulator. The caller bounds-checks (row, col) first.
template <typename OutT>
__device__ __forceinline__ float apply_epilogue(const Epilogue& e, float acc, int64_t batch, int64_t row,
                                                int64_t col) {
  float v = e.alpha * acc;
  if (e.bias) v += epilogue_to_float(static_cast<const OutT*>(e.bias)[col]);
  if (e.residual)
    v += e.beta * epilogue_to_float(
                      static_cast<const OutT*>(e.residual)[batch * e.residual_batch_stride + row * e.ldr + col]);
  return apply_activation(v, e.act, e.p0, e.p1);
}

__device__ __forceinline__ void store_output(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_output(__half* p, float v) { *p = __float2half_rn(v); }

#endif  // __CUDACC__

}  // namespace runnx::cuda
