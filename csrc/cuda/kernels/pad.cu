// Pad kernel (pad.h): a thread per output element maps each coordinate back into the input.
#include <cstring>

#include "common/status.h"
#include "cuda/kernels/kernel_util.cuh"
#include "cuda/kernels/pad.h"
#include "cuda/kernels/simple_mode.h"

namespace runnx::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxPadRank = 8;

struct PadGeom {
  int rank = 0;
  int64_t out_dims[kMaxPadRank] = {};
  int64_t in_dims[kMaxPadRank] = {};
  int64_t in_strides[kMaxPadRank] = {};
  int64_t begin[kMaxPadRank] = {};
};

// Input index for position i of a dim of n >= 1 elements, or -1 for the constant.
__device__ __forceinline__ int64_t source_index(PadMode mode, int64_t i, int64_t n) {
  if (i >= 0 && i < n) return i;
  switch (mode) {
    case PadMode::kConstant: return -1;
    case PadMode::kEdge: return i < 0 ? 0 : n - 1;
    case PadMode::kWrap: return ((i % n) + n) % n;
    default: {  // reflect: period 2(n-1), then fold the second half back
      if (n == 1) return 0;
      const int64_t period = 2 * (n - 1);
      int64_t r = ((i % period) + period) % period;
      return r < n ? r : period - r;
    }
  }
}

template <typename U>
__global__ void pad_kernel(PadMode mode, const U* x, U constant, U* y, PadGeom g, int64_t total, bool fits32) {
  for (int64_t t = global_thread(); t < total; t += grid_threads()) {
    int64_t rest = t, offset = 0;
    bool inside = true;
#pragma unroll
    for (int d = kMaxPadRank - 1; d >= 0; --d) {
      if (d >= g.rank) continue;
      const int64_t j = div_mod(rest, g.out_dims[d], fits32);
      const int64_t src = source_index(mode, j - g.begin[d], g.in_dims[d]);
      if (src < 0) inside = false;
      else offset += src * g.in_strides[d];
    }
    y[t] = inside ? x[offset] : constant;
  }
}

}  // namespace

void launch_pad(int64_t elem_size, PadMode mode, const void* x, const std::vector<int64_t>& x_dims,
                const std::vector<int64_t>& pads_begin, uint64_t constant_bits, void* y,
                const std::vector<int64_t>& out_dims, cudaStream_t stream) {
  RUNNX_CHECK(elem_size == 1 || elem_size == 2 || elem_size == 4 || elem_size == 8, kInvalidArgument,
              "CUDA Pad: element size ", elem_size, " is not 1, 2, 4 or 8 bytes");
  const size_t rank = x_dims.size();
  RUNNX_CHECK(pads_begin.size() == rank && out_dims.size() == rank, kInvalidArgument,
              "CUDA Pad: pads and output need one entry per dim");
  RUNNX_CHECK(rank <= static_cast<size_t>(kMaxPadRank), kInvalidArgument, "CUDA Pad: at most ", kMaxPadRank, " dims");
  PadGeom g;
  g.rank = static_cast<int>(rank);
  const std::vector<int64_t> strides = contiguous_strides(x_dims);
  int64_t total = 1;
  for (size_t d = 0; d < rank; ++d) {
    g.out_dims[d] = out_dims[d];
    g.in_dims[d] = x_dims[d];
    g.in_strides[d] = strides[d];
    g.begin[d] = pads_begin[d];
    total *= out_dims[d];
  }
  if (total <= 0) return;
  for (size_t d = 0; d < rank; ++d) {
    // A dim that reads outside its input (padded or cropped past the end) needs a rule for it.
    const bool padded = pads_begin[d] > 0 || out_dims[d] - pads_begin[d] > x_dims[d];
    if (!padded || mode == PadMode::kConstant) continue;
    RUNNX_CHECK(x_dims[d] >= 1, kInvalidArgument, "CUDA Pad: dim ", d, " is empty and cannot be padded in this mode");
  }
  with_unit<false>(elem_size, [&](auto tag) {
    using U = typename decltype(tag)::type;
    U constant;
    std::memcpy(&constant, &constant_bits, sizeof(U));  // little-endian: the low bytes
    pad_kernel<U><<<grid_for(total, kThreads), kThreads, 0, stream>>>(mode, static_cast<const U*>(x), constant,
                                                                       static_cast<U*>(y), g, total,
                                                                       use_32bit_index(total));
  });
}

}  // namespace runnx::cuda
