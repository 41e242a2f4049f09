// Reductions over any set of axes of a contiguous row-major tensor (ReduceSum/Mean/Max/Min/Prod/
// SumSquare/L1/L2/LogSum; GlobalAveragePool is kMean over the spatial axes). y holds the kept
// dims in their order, contiguous (keepdims only changes the shape). fp32 or fp16, accumulated
// in fp32. An empty reduction gives the op's identity: Sum 0, Prod 1, Max -inf, Min +inf,
// Mean NaN, LogSum -inf. Max/Min propagate NaN.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "common/dtype.h"

namespace runnx::cuda {

enum class ReduceOp : int32_t { kSum, kMean, kMax, kMin, kProd, kSumSquare, kL1, kL2, kLogSum };

// axes: any order, negative counts from the end, duplicates refused; empty means none reduced
// (y = x through the op's finalisation, e.g. L2 gives |x|).
void launch_reduce(ReduceOp op, DType dtype, const void* x, const std::vector<int64_t>& dims,
                   const std::vector<int64_t>& axes, void* y, cudaStream_t stream);

}  // namespace runnx::cuda
