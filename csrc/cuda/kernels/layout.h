// Image layouts the cudaops kernels take: NCHW (ONNX's) or NHWC (channels innermost, what the
// implicit-GEMM convolutions use). Both are contiguous row-major in the named order.
#pragma once
#include <cstdint>

namespace runnx::cuda {

enum class Layout : int32_t { kNCHW, kNHWC };

}  // namespace runnx::cuda
