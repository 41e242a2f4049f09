// Quantize / dequantize / requantize kernels (see quantize.h): one thread per element in a
// grid-stride loop; the quantized type is a runtime switch (uniform per launch).
#include "common/status.h"
#include "cuda/kernels/kernel_util.cuh"
#include "cuda/kernels/quantize.h"

namespace runnx::cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ int32_t load_q(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::kI8: return static_cast<const int8_t*>(p)[i];
    case DType::kU8: return static_cast<const uint8_t*>(p)[i];
    default: return static_cast<const int32_t*>(p)[i];
  }
}

// saturate(rint(v) + zero) into `t` (kI8 / kU8) at y[i]. Saturating before rounding gives the
// same result (the bounds are integers); fmaxf after fminf sends NaN to the minimum.
__device__ __forceinline__ void store_q(void* y, DType t, int64_t i, float v, int32_t zero) {
  const bool u8 = t == DType::kU8;
  const float lo = (u8 ? 0.f : -128.f) - zero, hi = (u8 ? 255.f : 127.f) - zero;
  v = v != v ? lo : fmaxf(lo, fminf(v, hi));
  const int32_t q = static_cast<int32_t>(rintf(v)) + zero;
  if (u8)
    static_cast<uint8_t*>(y)[i] = static_cast<uint8_t>(q);
  else
    static_cast<int8_t*>(y)[i] = static_cast<int8_t>(q);
}

__global__ void quantize_kernel(const float* x, const float* scale, const void* zero, DType t, void* y, int64_t n,
                                int64_t axis_len, int64_t inner) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    const int64_t c = axis_len > 1 ? (i / inner) % axis_len : 0;
    store_q(y, t, i, x[i] / scale[c], zero ? load_q(zero, t, c) : 0);
  }
}

__global__ void dequantize_kernel(const void* x, DType t, const float* scale, const void* zero, float* y, int64_t n,
                                  int64_t axis_len, int64_t inner) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    const int64_t c = axis_len > 1 ? (i / inner) % axis_len : 0;
    const float z = zero ? static_cast<float>(load_q(zero, t, c)) : 0.f;
    y[i] = (static_cast<float>(load_q(x, t, i)) - z) * scale[c];
  }
}

__global__ void requantize_kernel(RequantizeArgs a) {
  const int64_t n = a.rows * a.cols;
  const int32_t zero = a.y_zero ? load_q(a.y_zero, a.qtype, 0) : 0;
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    const int64_t c = i % a.cols;
    // int32 wraps as the CPU kernel's sum does (unsigned add: no overflow UB).
    const uint32_t s = static_cast<uint32_t>(a.acc[i]) + static_cast<uint32_t>(a.bias ? a.bias[c * a.bias_stride] : 0);
    const float mult = a.a_scale[0] * a.b_scale[c * a.b_scale_stride] / a.y_scale[0];
    store_q(a.y, a.qtype, i, static_cast<float>(static_cast<int32_t>(s)) * mult, zero);
  }
}

__global__ void patches_kernel(PatchArgs a) {
  const int64_t K = a.kernel_h * a.kernel_w * a.c, P = a.out_h * a.out_w, total = a.n * P * K;
  const uint8_t zero = a.zero ? *static_cast<const uint8_t*>(a.zero) : 0;
  const auto* x = static_cast<const uint8_t*>(a.x);
  for (int64_t i = global_thread(); i < total; i += grid_threads()) {
    const int64_t row = i / K, k = i % K, n = row / P, p = row % P;
    const int64_t t = k / a.c, ch = k % a.c;
    const int64_t ih = (p / a.out_w) * a.stride_h - a.pad_top + (t / a.kernel_w) * a.dilation_h;
    const int64_t iw = (p % a.out_w) * a.stride_w - a.pad_left + (t % a.kernel_w) * a.dilation_w;
    const bool inside = ih >= 0 && ih < a.h && iw >= 0 && iw < a.w;
    static_cast<uint8_t*>(a.patches)[i] = inside ? x[((n * a.c + ch) * a.h + ih) * a.w + iw] : zero;
  }
}

void check_q8(DType t, const char* who) {
  RUNNX_CHECK(t == DType::kI8 || t == DType::kU8, kInvalidArgument, who, ": quantized type ", dtype_name(t),
              " is not int8 or uint8");
}

}  // namespace

void launch_quantize_linear(const float* x, const float* scale, const void* zero, DType qtype, void* y, int64_t n,
                            int64_t axis_len, int64_t inner, cudaStream_t stream) {
  check_q8(qtype, "CUDA QuantizeLinear");
  if (n <= 0) return;
  quantize_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(x, scale, zero, qtype, y, n, axis_len,
                                                                   inner < 1 ? 1 : inner);
}

void launch_dequantize_linear(const void* x, DType qtype, const float* scale, const void* zero, float* y, int64_t n,
                              int64_t axis_len, int64_t inner, cudaStream_t stream) {
  RUNNX_CHECK(qtype == DType::kI8 || qtype == DType::kU8 || qtype == DType::kI32, kInvalidArgument,
              "CUDA DequantizeLinear: type ", dtype_name(qtype), " is not int8, uint8 or int32");
  if (n <= 0) return;
  dequantize_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(x, qtype, scale, zero, y, n, axis_len,
                                                                     inner < 1 ? 1 : inner);
}

void launch_requantize(const RequantizeArgs& args, cudaStream_t stream) {
  check_q8(args.qtype, "CUDA requantize");
  const int64_t n = args.rows * args.cols;
  if (n <= 0) return;
  requantize_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(args);
}

void launch_int8_patches(const PatchArgs& args, cudaStream_t stream) {
  const int64_t total = args.n * args.out_h * args.out_w * args.kernel_h * args.kernel_w * args.c;
  if (total <= 0) return;
  patches_kernel<<<grid_for(total, kThreads), kThreads, 0, stream>>>(args);
}

}  // namespace runnx::cuda
