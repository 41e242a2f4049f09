// Pad (ONNX modes constant, reflect, edge, wrap) of a contiguous row-major tensor of up to 8
// dims. Output dim d has out_dims[d] = x_dims[d] + pads_begin[d] + pads_end[d] elements (the
// caller's); a negative pad crops. Output element j of dim d reads input index j - pads_begin[d]
// when that is inside, else: constant writes `constant_bits` (the value's bytes, little-endian,
// elem_size of them); reflect mirrors without repeating the edge; edge repeats the edge; wrap
// is periodic (all relative to the whole input, also when the other side is cropped; a dim of 1
// reflects to itself), as the CPU kernel. Elements are opaque (elem_size 1, 2, 4 or 8 bytes).
// Modes other than constant refuse to pad an empty dim.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

namespace runnx::cuda {

enum class PadMode : int32_t { kConstant, kReflect, kEdge, kWrap };

void launch_pad(int64_t elem_size, PadMode mode, const void* x, const std::vector<int64_t>& x_dims,
                const std::vector<int64_t>& pads_begin, uint64_t constant_bits, void* y,
                const std::vector<int64_t>& out_dims, cudaStream_t stream);

}  // namespace runnx::cuda
