#include "cuda/kernels/strided_plan.h"

#include <algorithm>

#include "common/status.h"
#include "cuda/kernels/simple_mode.h"

namespace runnx::cuda {

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& dims) {
  std::vector<int64_t> s(dims.size(), 1);
  for (size_t d = dims.size(); d-- > 1;) s[d - 1] = s[d] * dims[d];
  return s;
}

std::vector<int64_t> broadcast_dims(const std::vector<std::vector<int64_t>>& shapes) {
  size_t rank = 0;
  for (const auto& s : shapes) rank = std::max(rank, s.size());
  std::vector<int64_t> out(rank, 1);
  for (const auto& s : shapes) {
    const size_t lead = rank - s.size();
    for (size_t d = 0; d < s.size(); ++d) {
      int64_t& o = out[lead + d];
      if (s[d] == o || s[d] == 1) continue;
      RUNNX_CHECK(o == 1, kInvalidArgument, "CUDA broadcast: dims ", o, " and ", s[d], " do not broadcast");
      o = s[d];
    }
  }
  return out;
}

StridedPlan make_broadcast_plan(const std::vector<std::vector<int64_t>>& shapes) {
  const std::vector<int64_t> out = broadcast_dims(shapes);
  std::vector<std::vector<int64_t>> strides;
  for (const auto& s : shapes) {
    // Right-aligned: an operand's missing leading dims and its size-1 dims get stride 0.
    std::vector<int64_t> st(out.size(), 0);
    const std::vector<int64_t> own = contiguous_strides(s);
    const size_t lead = out.size() - s.size();
    for (size_t d = 0; d < s.size(); ++d) st[lead + d] = s[d] == 1 ? 0 : own[d];
    strides.push_back(st);
  }
  return make_strided_plan(out, strides);
}

StridedPlan make_strided_plan(const std::vector<int64_t>& out_dims,
                              const std::vector<std::vector<int64_t>>& strides) {
  const size_t n_ops = strides.size();
  RUNNX_CHECK(n_ops <= kMaxPlanOperands, kInvalidArgument, "CUDA strided plan: too many operands");
  for (const auto& s : strides)
    RUNNX_CHECK(s.size() == out_dims.size(), kInvalidArgument, "CUDA strided plan: strides rank mismatch");

  // Keep dims of size != 1 (a size-1 dim adds nothing to any offset), outermost first.
  std::vector<int64_t> dims;
  std::vector<std::vector<int64_t>> st(n_ops);
  int64_t numel = 1;
  for (size_t d = 0; d < out_dims.size(); ++d) {
    RUNNX_CHECK(out_dims[d] >= 0, kInvalidArgument, "CUDA strided plan: negative dim");
    numel *= out_dims[d];
    if (out_dims[d] == 1) continue;
    // Merge into the previous kept dim when that is contiguous with this one in every operand.
    bool merge = !dims.empty();
    for (size_t k = 0; k < n_ops && merge; ++k) merge = st[k].back() == strides[k][d] * out_dims[d];
    if (merge) {
      dims.back() *= out_dims[d];
      for (size_t k = 0; k < n_ops; ++k) st[k].back() = strides[k][d];
    } else {
      dims.push_back(out_dims[d]);
      for (size_t k = 0; k < n_ops; ++k) st[k].push_back(strides[k][d]);
    }
  }
  StridedPlan p;
  p.numel = numel;
  p.index32 = use_32bit_index(numel);
  if (numel == 0 || dims.empty()) return p;  // empty: nothing is launched; scalar: rank 1, size 1
  RUNNX_CHECK(dims.size() <= static_cast<size_t>(kMaxPlanRank), kInvalidArgument, "CUDA kernels take at most ",
              kMaxPlanRank, " non-mergeable dims, got ", dims.size());
  p.rank = static_cast<int>(dims.size());
  for (int d = 0; d < p.rank; ++d) {
    p.dims[d] = dims[d];
    for (size_t k = 0; k < n_ops; ++k) p.strides[k][d] = st[k][d];
  }
  return p;
}

}  // namespace runnx::cuda
