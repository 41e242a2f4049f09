// Transpose kernels (transpose.h). After merging dims that stay adjacent, a transpose that swaps
// the last two dims ([n, b, a] -> [n, a, b], also the NCHW <-> NHWC conversion) goes through
// 32x32 shared-memory tiles so both the reads and the writes are coalesced; anything else (and
// RUNNX_CUDA_SIMPLE) is the strided copy: a thread per output element.
#include "common/status.h"
#include "cuda/kernels/kernel_util.cuh"
#include "cuda/kernels/simple_mode.h"
#include "cuda/kernels/transpose.h"

namespace runnx::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kTile = 32, kTileRows = 8;  // a 32x8 block moves a 32x32 tile

template <typename U>
__global__ void strided_copy_kernel(const U* x, U* y, StridedPlan p) {
  for (int64_t i = global_thread(); i < p.numel; i += grid_threads()) {
    int64_t off[1];
    plan_offsets<1>(p, i, off);
    y[i] = x[off[0]];
  }
}

// x: [n, b, a] -> y: [n, a, b]. Blocks walk the tiles (n, a-tile, b-tile) in a grid-stride loop.
template <typename U>
__global__ void transpose_tiled_kernel(const U* x, U* y, int64_t n, int64_t b, int64_t a) {
  __shared__ U tile[kTile][kTile + 1];  // +1: column reads hit distinct banks
  const int64_t tiles_a = (a + kTile - 1) / kTile, tiles_b = (b + kTile - 1) / kTile;
  const int64_t tiles = n * tiles_a * tiles_b;
  const int tx = threadIdx.x, ty = threadIdx.y;
  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
    const int64_t tb = t % tiles_b, ta = (t / tiles_b) % tiles_a, img = t / (tiles_b * tiles_a);
    const U* xi = x + img * a * b;
    U* yi = y + img * a * b;
    // Read rows bb of x (a run of a-values each), write rows aa of y.
    for (int j = ty; j < kTile; j += kTileRows) {
      const int64_t bb = tb * kTile + j, aa = ta * kTile + tx;
      if (bb < b && aa < a) tile[j][tx] = xi[bb * a + aa];
    }
    __syncthreads();
    for (int j = ty; j < kTile; j += kTileRows) {
      const int64_t aa = ta * kTile + j, bb = tb * kTile + tx;
      if (aa < a && bb < b) yi[aa * b + bb] = tile[tx][j];
    }
    __syncthreads();  // the tile is refilled by the next iteration
  }
}

void strided_copy(int64_t elem_size, const void* x, const StridedPlan& p, void* y, cudaStream_t stream) {
  with_unit<false>(elem_size, [&](auto tag) {
    using U = typename decltype(tag)::type;
    strided_copy_kernel<U><<<grid_for(p.numel, kThreads), kThreads, 0, stream>>>(static_cast<const U*>(x),
                                                                                  static_cast<U*>(y), p);
  });
}

void check_elem_size(int64_t elem_size) {
  RUNNX_CHECK(elem_size == 1 || elem_size == 2 || elem_size == 4 || elem_size == 8, kInvalidArgument,
              "CUDA copy: element size ", elem_size, " is not 1, 2, 4 or 8 bytes");
}

}  // namespace

void launch_strided_copy(int64_t elem_size, const void* x, int64_t x_offset, const std::vector<int64_t>& x_strides,
                         void* y, const std::vector<int64_t>& out_dims, cudaStream_t stream) {
  check_elem_size(elem_size);
  const StridedPlan p = make_strided_plan(out_dims, {x_strides});
  if (p.numel == 0) return;
  strided_copy(elem_size, static_cast<const char*>(x) + x_offset * elem_size, p, y, stream);
}

void launch_transpose(int64_t elem_size, const void* x, const std::vector<int64_t>& x_dims,
                      const std::vector<int64_t>& perm, void* y, cudaStream_t stream) {
  check_elem_size(elem_size);
  const size_t rank = x_dims.size();
  RUNNX_CHECK(perm.size() == rank, kInvalidArgument, "CUDA Transpose: perm has ", perm.size(), " entries for rank ",
              rank);
  std::vector<bool> seen(rank, false);
  const std::vector<int64_t> x_strides = contiguous_strides(x_dims);
  std::vector<int64_t> out_dims(rank), in_strides(rank);
  for (size_t d = 0; d < rank; ++d) {
    RUNNX_CHECK(perm[d] >= 0 && perm[d] < static_cast<int64_t>(rank) && !seen[perm[d]], kInvalidArgument,
                "CUDA Transpose: perm is not a permutation");
    seen[perm[d]] = true;
    out_dims[d] = x_dims[perm[d]];
    in_strides[d] = x_strides[perm[d]];
  }
  const StridedPlan p = make_strided_plan(out_dims, {in_strides});
  if (p.numel == 0) return;
  // Swap of the last two merged dims: out [n, a, b] reading x [n, b, a] at strides [a*b, 1, a].
  const int r = p.rank;
  if (!use_simple_kernels() && r >= 2 && r <= 3 && p.strides[0][r - 2] == 1 && p.strides[0][r - 1] == p.dims[r - 2] &&
      (r == 2 || p.strides[0][0] == p.dims[1] * p.dims[2])) {
    const int64_t a = p.dims[r - 2], b = p.dims[r - 1], n = r == 3 ? p.dims[0] : 1;
    const int64_t tiles = n * ((a + kTile - 1) / kTile) * ((b + kTile - 1) / kTile);
    with_unit<false>(elem_size, [&](auto tag) {
      using U = typename decltype(tag)::type;
      transpose_tiled_kernel<U><<<grid_for(tiles, 1), dim3(kTile, kTileRows), 0, stream>>>(
          static_cast<const U*>(x), static_cast<U*>(y), n, b, a);
    });
    return;
  }
  strided_copy(elem_size, x, p, y, stream);
}

void launch_layout_convert(int64_t elem_size, Layout from, const void* x, int64_t n, int64_t c, int64_t hw, void* y,
                           cudaStream_t stream) {
  if (from == Layout::kNCHW)
    launch_transpose(elem_size, x, {n, c, hw}, {0, 2, 1}, y, stream);
  else
    launch_transpose(elem_size, x, {n, hw, c}, {0, 2, 1}, y, stream);
}

}  // namespace runnx::cuda
