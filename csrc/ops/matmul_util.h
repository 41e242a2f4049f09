// Helpers shared by the ops built on the shared GEMM (MatMul, Gemm, Einsum).
#pragma once
#include "common/status.h"
#include "ir/graph.h"
#include "kernels/cpu/gemm.h"
#include "ops/kernel.h"

namespace runnx {

// Calls f(T{}) for the element types gemm<T> is instantiated for.
template <typename F>
auto dispatch_gemm_type(DType dt, const Node& node, F&& f) {
  switch (dt) {
    case DType::kF32:
      return f(float{});
    case DType::kF64:
      return f(double{});
    case DType::kI32:
      return f(int32_t{});
    case DType::kI64:
      return f(int64_t{});
    case DType::kU32:
      return f(uint32_t{});
    case DType::kU64:
      return f(uint64_t{});
    default:
      fail(ErrorKind::kUnsupportedOp, node.label(), ": element type ", dtype_name(dt),
           " is not supported");
  }
}

// A constant float 2-D B (a Linear layer's weight, input 1) packed once at session creation for
// the microkernel; the mapped original's pages are released (only the packed copy is read).
struct ConstantB {
  PackedB packed;              // empty when B is not such a constant
  const void* from = nullptr;  // the constant it was made from

  ConstantB() = default;
  ConstantB(const KernelInfo& info, bool trans_b) {
    const Tensor* b = info.constant_input(1);
    if (!b || b->dtype != DType::kF32 || b->rank() != 2 || b->numel() == 0) return;
    const int64_t K = trans_b ? b->shape[1] : b->shape[0], N = trans_b ? b->shape[0] : b->shape[1];
    packed = pack_b_f32(K, N, b->ptr<float>(), b->shape[1], trans_b);
    from = b->data;
    if (info.release_constant) info.release_constant(1);
  }
  // True when the run's B is the constant that was packed.
  bool is(const Tensor& b) const { return !packed.empty() && b.data == from; }
};

}  // namespace runnx
