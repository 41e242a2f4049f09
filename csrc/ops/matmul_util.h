// Helpers shared by the ops built on the shared GEMM (MatMul, Gemm, Einsum).
#pragma once
#include "common/status.h"
#include "ir/graph.h"

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

}  // namespace runnx
