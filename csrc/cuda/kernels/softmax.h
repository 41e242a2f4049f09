// Softmax / LogSoftmax over one axis of a contiguous row-major tensor viewed as
// [outer, axis_len, inner] (inner = product of the dims after the axis; 1 for the last axis,
// which is also opset < 13's coerced 2-D form). fp32 or fp16 (fp32 arithmetic); the row max is
// subtracted first, so large inputs do not overflow. y may alias x.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "common/dtype.h"

namespace runnx::cuda {

void launch_softmax(DType dtype, const void* x, void* y, int64_t outer, int64_t axis_len, int64_t inner,
                    bool log_softmax, cudaStream_t stream);

}  // namespace runnx::cuda
