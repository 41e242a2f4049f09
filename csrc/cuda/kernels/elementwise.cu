// Element-wise kernels (see elementwise.h). One template parameter at most (the storage type);
// the op is a runtime switch, uniform across a launch, so it costs a predictable branch.
#include <type_traits>

#include "common/status.h"
#include "cuda/kernels/elementwise.h"
#include "cuda/kernels/kernel_util.cuh"
#include "cuda/kernels/simple_mode.h"

namespace runnx::cuda {
namespace {

constexpr int kThreads = 256;

// ---- binary -------------------------------------------------------------------------------

__host__ __device__ __forceinline__ bool is_comparison(BinaryOp op) {
  return static_cast<int32_t>(op) >= static_cast<int32_t>(BinaryOp::kEqual);
}

// Floats compute in fp32, integers in int64.
__device__ __forceinline__ float to_compute(float v) { return v; }
__device__ __forceinline__ float to_compute(__half v) { return __half2float(v); }
__device__ __forceinline__ int64_t to_compute(int32_t v) { return v; }
__device__ __forceinline__ int64_t to_compute(int64_t v) { return v; }
template <typename T>
__device__ __forceinline__ T from_compute(float v) { return from_float<T>(v); }
template <typename T>
__device__ __forceinline__ T from_compute(int64_t v) { return static_cast<T>(v); }

__device__ __forceinline__ float binary_math(BinaryOp op, float a, float b) {
  switch (op) {
    case BinaryOp::kAdd: return a + b;
    case BinaryOp::kSub: return a - b;
    case BinaryOp::kMul: return a * b;
    case BinaryOp::kDiv: return a / b;
    case BinaryOp::kPow: return powf(a, b);
    case BinaryOp::kMax: return (a > b || a != a) ? a : b;  // NaN in either gives NaN
    case BinaryOp::kMin: return (a < b || a != a) ? a : b;
    default: return 0.f;
  }
}
__device__ __forceinline__ int64_t binary_math(BinaryOp op, int64_t a, int64_t b) {
  switch (op) {
    case BinaryOp::kAdd: return a + b;
    case BinaryOp::kSub: return a - b;
    case BinaryOp::kMul: return a * b;
    case BinaryOp::kDiv: return b == 0 ? 0 : a / b;
    case BinaryOp::kPow: return static_cast<int64_t>(pow(static_cast<double>(a), static_cast<double>(b)));
    case BinaryOp::kMax: return a > b ? a : b;
    case BinaryOp::kMin: return a < b ? a : b;
    default: return 0;
  }
}
template <typename C>
__device__ __forceinline__ bool compare(BinaryOp op, C a, C b) {
  switch (op) {
    case BinaryOp::kEqual: return a == b;
    case BinaryOp::kLess: return a < b;
    case BinaryOp::kLessOrEqual: return a <= b;
    case BinaryOp::kGreater: return a > b;
    case BinaryOp::kGreaterOrEqual: return a >= b;
    default: return false;
  }
}

// Any shape: each output element finds its operands through the plan.
template <typename T>
__global__ void binary_general_kernel(BinaryOp op, const T* a, const T* b, void* y, StridedPlan p) {
  for (int64_t i = global_thread(); i < p.numel; i += grid_threads()) {
    int64_t off[2];
    plan_offsets<2>(p, i, off);
    const auto va = to_compute(a[off[0]]), vb = to_compute(b[off[1]]);
    if (is_comparison(op))
      static_cast<bool*>(y)[i] = compare(op, va, vb);
    else
      static_cast<T*>(y)[i] = from_compute<T>(binary_math(op, va, vb));
  }
}

// Operand offset of output element i in a coalesced plan of rank <= 2 (dims [M, N] or [n]):
// (i / div) % mod. Same shape: (1, numel); row vector [N]: (1, N); column [M, 1]: (N, M);
// scalar: (1, 1). `vector` marks the first two, whose 4 consecutive elements are adjacent.
struct OperandWalk {
  int64_t div = 1, mod = 1;
  bool vector = false;
};

template <typename T, typename C>
__device__ __forceinline__ void load4(const T* p, const OperandWalk& w, int64_t i, C (&v)[4]) {
  const int64_t o = (i / w.div) % w.mod;
  if (w.vector) {
    const Pack<T, 4> pk = *reinterpret_cast<const Pack<T, 4>*>(p + o);
#pragma unroll
    for (int k = 0; k < 4; ++k) v[k] = to_compute(pk.v[k]);
  } else {
    const C s = to_compute(p[o]);
#pragma unroll
    for (int k = 0; k < 4; ++k) v[k] = s;
  }
}

// Four outputs per thread with vector loads and stores; the host checks that 4 consecutive
// outputs never cross a row (N % 4 == 0) and that every vector access is aligned. The n % 4
// tail (rank 1 only) is done one element at a time.
template <typename T>
__global__ void binary_vec4_kernel(BinaryOp op, const T* a, OperandWalk wa, const T* b, OperandWalk wb, void* y,
                                   int64_t n) {
  using C = decltype(to_compute(T()));
  const int64_t groups = n / 4;
  for (int64_t g = global_thread(); g < groups; g += grid_threads()) {
    const int64_t i = g * 4;
    C va[4], vb[4];
    load4(a, wa, i, va);
    load4(b, wb, i, vb);
    if (is_comparison(op)) {
      Pack<bool, 4> out;
#pragma unroll
      for (int k = 0; k < 4; ++k) out.v[k] = compare(op, va[k], vb[k]);
      *reinterpret_cast<Pack<bool, 4>*>(static_cast<bool*>(y) + i) = out;
    } else {
      Pack<T, 4> out;
#pragma unroll
      for (int k = 0; k < 4; ++k) out.v[k] = from_compute<T>(binary_math(op, va[k], vb[k]));
      *reinterpret_cast<Pack<T, 4>*>(static_cast<T*>(y) + i) = out;
    }
  }
  for (int64_t i = groups * 4 + global_thread(); i < n; i += grid_threads()) {
    const C va = to_compute(a[(i / wa.div) % wa.mod]), vb = to_compute(b[(i / wb.div) % wb.mod]);
    if (is_comparison(op))
      static_cast<bool*>(y)[i] = compare(op, va, vb);
    else
      static_cast<T*>(y)[i] = from_compute<T>(binary_math(op, va, vb));
  }
}

// The walk of operand k in a plan of rank <= 2, or false when it is not one of the four forms.
bool operand_walk(const StridedPlan& p, int k, OperandWalk* w) {
  if (p.rank == 1) {
    const int64_t s = p.strides[k][0];
    if (s == 1) *w = {1, p.numel, true};
    else if (s == 0) *w = {1, 1, false};
    else return false;
    return true;
  }
  if (p.rank != 2) return false;
  const int64_t m = p.dims[0], n = p.dims[1], s0 = p.strides[k][0], s1 = p.strides[k][1];
  if (s0 == n && s1 == 1) *w = {1, m * n, true};
  else if (s0 == 0 && s1 == 1) *w = {1, n, true};
  else if (s0 == 1 && s1 == 0) *w = {n, m, false};
  else if (s0 == 0 && s1 == 0) *w = {1, 1, false};
  else return false;
  return true;
}

bool aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

template <typename T>
void binary_typed(BinaryOp op, const void* a_bytes, const void* b_bytes, void* y, const StridedPlan& p,
                  cudaStream_t stream) {
  const T* a = static_cast<const T*>(a_bytes);
  const T* b = static_cast<const T*>(b_bytes);
  OperandWalk wa, wb;
  const bool rows_fit = p.rank == 1 || p.dims[1] % 4 == 0;
  const size_t out_pack = is_comparison(op) ? 4 : 4 * sizeof(T);
  if (!use_simple_kernels() && rows_fit && operand_walk(p, 0, &wa) && operand_walk(p, 1, &wb) &&
      aligned(y, out_pack) && (!wa.vector || aligned(a, 4 * sizeof(T))) && (!wb.vector || aligned(b, 4 * sizeof(T)))) {
    binary_vec4_kernel<T><<<grid_for((p.numel + 3) / 4, kThreads), kThreads, 0, stream>>>(op, a, wa, b, wb, y, p.numel);
    return;
  }
  binary_general_kernel<T><<<grid_for(p.numel, kThreads), kThreads, 0, stream>>>(op, a, b, y, p);
}

// ---- unary --------------------------------------------------------------------------------

__device__ __forceinline__ float unary_math(const UnaryFn& f, float x) {
  switch (f.op) {
    case UnaryOp::kActivation: return apply_activation(x, f.act, f.p0, f.p1);
    case UnaryOp::kExp: return expf(x);
    case UnaryOp::kLog: return logf(x);
    case UnaryOp::kSqrt: return sqrtf(x);
    case UnaryOp::kRsqrt: return 1.f / sqrtf(x);
    case UnaryOp::kNeg: return -x;
    case UnaryOp::kReciprocal: return 1.f / x;
    case UnaryOp::kAbs: return fabsf(x);
    case UnaryOp::kErf: return erff(x);
    case UnaryOp::kFloor: return floorf(x);
    case UnaryOp::kCeil: return ceilf(x);
    case UnaryOp::kRound: return rintf(x);  // round half to even in the default rounding mode
    case UnaryOp::kSin: return sinf(x);
    case UnaryOp::kCos: return cosf(x);
    case UnaryOp::kSign: return x > 0.f ? 1.f : (x < 0.f ? -1.f : x);  // keeps 0, -0 and NaN
    case UnaryOp::kSoftplus: return x > 0.f ? x + log1pf(expf(-x)) : log1pf(expf(x));
    case UnaryOp::kElu: return x >= 0.f ? x : f.p0 * expm1f(x);
    case UnaryOp::kHardSigmoid: return fminf(fmaxf(f.p0 * x + f.p1, 0.f), 1.f);
    case UnaryOp::kIdentity: return x;
  }
  return x;
}

// vec: x and y are 4-element aligned, so groups of 4 go as one access; the tail goes singly.
template <typename T>
__global__ void unary_kernel(UnaryFn f, const T* x, T* y, int64_t n, bool vec) {
  int64_t start = 0;
  if (vec) {
    const int64_t groups = n / 4;
    for (int64_t g = global_thread(); g < groups; g += grid_threads()) {
      Pack<T, 4> pk = reinterpret_cast<const Pack<T, 4>*>(x)[g];
#pragma unroll
      for (int k = 0; k < 4; ++k) pk.v[k] = from_float<T>(unary_math(f, to_float(pk.v[k])));
      reinterpret_cast<Pack<T, 4>*>(y)[g] = pk;
    }
    start = groups * 4;
  }
  for (int64_t i = start + global_thread(); i < n; i += grid_threads())
    y[i] = from_float<T>(unary_math(f, to_float(x[i])));
}

template <typename T>
void unary_typed(const UnaryFn& f, const void* x, void* y, int64_t n, cudaStream_t stream) {
  const bool vec = !use_simple_kernels() && aligned(x, 4 * sizeof(T)) && aligned(y, 4 * sizeof(T));
  const int64_t work = vec ? (n + 3) / 4 : n;
  unary_kernel<T><<<grid_for(work, kThreads), kThreads, 0, stream>>>(f, static_cast<const T*>(x), static_cast<T*>(y),
                                                                      n, vec);
}

// ---- where --------------------------------------------------------------------------------

template <typename U>  // an unsigned integer of the element's size: the bytes are copied as they are
__global__ void where_kernel(const bool* cond, const U* x, const U* y, U* out, StridedPlan p) {
  for (int64_t i = global_thread(); i < p.numel; i += grid_threads()) {
    int64_t off[3];
    plan_offsets<3>(p, i, off);
    out[i] = cond[off[0]] ? x[off[1]] : y[off[2]];
  }
}

// ---- cast ---------------------------------------------------------------------------------

__device__ __forceinline__ bool is_float_dtype(DType t) {
  return t == DType::kF32 || t == DType::kF16 || t == DType::kF64;
}

// Floats travel as double (exact for fp16/fp32), integers as int64 (exact for all of ours).
__device__ __forceinline__ double load_f64(const void* x, DType t, int64_t i) {
  switch (t) {
    case DType::kF32: return static_cast<const float*>(x)[i];
    case DType::kF16: return __half2float(static_cast<const __half*>(x)[i]);
    default: return static_cast<const double*>(x)[i];
  }
}
__device__ __forceinline__ int64_t load_i64(const void* x, DType t, int64_t i) {
  switch (t) {
    case DType::kI64: return static_cast<const int64_t*>(x)[i];
    case DType::kI32: return static_cast<const int32_t*>(x)[i];
    case DType::kI8: return static_cast<const int8_t*>(x)[i];
    case DType::kU8: return static_cast<const uint8_t*>(x)[i];
    default: return static_cast<const uint8_t*>(x)[i] != 0;  // bool
  }
}

template <typename V>  // double or int64_t
__device__ __forceinline__ void store_cast(void* y, DType t, int64_t i, V v) {
  switch (t) {
    case DType::kF32: static_cast<float*>(y)[i] = static_cast<float>(v); break;
    case DType::kF64: static_cast<double*>(y)[i] = static_cast<double>(v); break;
    case DType::kF16:
      if constexpr (std::is_floating_point_v<V>) static_cast<__half*>(y)[i] = __double2half(v);
      else static_cast<__half*>(y)[i] = __ll2half_rn(static_cast<long long>(v));
      break;
    case DType::kI64: static_cast<int64_t*>(y)[i] = static_cast<int64_t>(v); break;
    // Narrowing integers wrap: go through int64 first so a double is truncated, then narrowed.
    case DType::kI32: static_cast<int32_t*>(y)[i] = static_cast<int32_t>(static_cast<int64_t>(v)); break;
    case DType::kI8: static_cast<int8_t*>(y)[i] = static_cast<int8_t>(static_cast<int64_t>(v)); break;
    case DType::kU8: static_cast<uint8_t*>(y)[i] = static_cast<uint8_t>(static_cast<int64_t>(v)); break;
    default: static_cast<bool*>(y)[i] = v != V(0); break;  // bool
  }
}

__global__ void cast_kernel(DType from, const void* x, DType to, void* y, int64_t n) {
  // fp32 <-> fp16 (the casts at an fp16 model's edges) convert directly: one rounding, as through double.
  const bool f32_to_f16 = from == DType::kF32 && to == DType::kF16;
  const bool f16_to_f32 = from == DType::kF16 && to == DType::kF32;
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    if (f32_to_f16)
      static_cast<__half*>(y)[i] = __float2half_rn(static_cast<const float*>(x)[i]);
    else if (f16_to_f32)
      static_cast<float*>(y)[i] = __half2float(static_cast<const __half*>(x)[i]);
    else if (is_float_dtype(from))
      store_cast(y, to, i, load_f64(x, from, i));
    else
      store_cast(y, to, i, load_i64(x, from, i));
  }
}

bool castable(DType t) {
  switch (t) {
    case DType::kF32: case DType::kF16: case DType::kF64: case DType::kI64:
    case DType::kI32: case DType::kI8: case DType::kU8: case DType::kBool: return true;
    default: return false;
  }
}

}  // namespace

void launch_binary(BinaryOp op, DType dtype, const void* a, const std::vector<int64_t>& a_dims, const void* b,
                   const std::vector<int64_t>& b_dims, void* y, cudaStream_t stream) {
  const StridedPlan p = make_broadcast_plan({a_dims, b_dims});
  if (p.numel == 0) return;
  switch (dtype) {
    case DType::kF32: return binary_typed<float>(op, a, b, y, p, stream);
    case DType::kF16: return binary_typed<__half>(op, a, b, y, p, stream);
    case DType::kI32: return binary_typed<int32_t>(op, a, b, y, p, stream);
    case DType::kI64: return binary_typed<int64_t>(op, a, b, y, p, stream);
    default: fail(ErrorKind::kInvalidArgument, "CUDA binary op: unsupported dtype ", dtype_name(dtype));
  }
}

void launch_unary(const UnaryFn& f, DType dtype, const void* x, void* y, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  switch (dtype) {
    case DType::kF32: return unary_typed<float>(f, x, y, n, stream);
    case DType::kF16: return unary_typed<__half>(f, x, y, n, stream);
    default: fail(ErrorKind::kInvalidArgument, "CUDA unary op: unsupported dtype ", dtype_name(dtype));
  }
}

void launch_where(const bool* cond, const std::vector<int64_t>& cond_dims, DType dtype, const void* x,
                  const std::vector<int64_t>& x_dims, const void* y, const std::vector<int64_t>& y_dims,
                  void* out, cudaStream_t stream) {
  const StridedPlan p = make_broadcast_plan({cond_dims, x_dims, y_dims});
  if (p.numel == 0) return;
  const int64_t size = static_cast<int64_t>(dtype_size(dtype));
  RUNNX_CHECK(size == 1 || size == 2 || size == 4 || size == 8, kInvalidArgument, "CUDA Where: unsupported dtype ",
              dtype_name(dtype));
  with_unit<false>(size, [&](auto tag) {
    using U = typename decltype(tag)::type;
    where_kernel<U><<<grid_for(p.numel, kThreads), kThreads, 0, stream>>>(
        cond, static_cast<const U*>(x), static_cast<const U*>(y), static_cast<U*>(out), p);
  });
}

void launch_cast(DType from, const void* x, DType to, void* y, int64_t n, cudaStream_t stream) {
  RUNNX_CHECK(castable(from) && castable(to), kInvalidArgument, "CUDA Cast: unsupported cast ", dtype_name(from),
              " -> ", dtype_name(to));
  if (n <= 0) return;
  cast_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(from, x, to, y, n);
}

}  // namespace runnx::cuda
