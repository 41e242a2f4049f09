// Slice's window per axis, shared by the CPU kernel (ops/slice_gather.cc) and the CUDA wrapper
// (cuda/ops/data.cc): ONNX bounds (negative from the end, then clamped) to a first index, a step
// and a length per dim of the input.
#pragma once
#include <algorithm>
#include <climits>
#include <vector>

#include "ops/op_util.h"

namespace runnx {

struct SliceWindow {
  Shape out;                         // the output's dims
  std::vector<int64_t> first, step;  // per input dim (0 and 1 where the slice leaves it whole)
};

// `starts`, `ends`, `axes` and `steps` have one entry per sliced axis (the caller fills defaults).
inline SliceWindow slice_window(const Shape& dims, const std::vector<int64_t>& starts, const std::vector<int64_t>& ends,
                                const std::vector<int64_t>& axes, const std::vector<int64_t>& steps, const Node& node) {
  const int64_t r = static_cast<int64_t>(dims.size());
  SliceWindow w{dims, std::vector<int64_t>(r, 0), std::vector<int64_t>(r, 1)};
  std::vector<bool> seen(r, false);
  for (size_t i = 0; i < starts.size(); ++i) {
    const int64_t a = normalize_axis(axes[i], r, node);
    RUNNX_CHECK(!seen[a], kInvalidArgument, node.label(), ": axis ", axes[i], " is repeated");
    seen[a] = true;
    const int64_t st = steps[i], dim = dims[a];
    RUNNX_CHECK(st != 0, kInvalidArgument, node.label(), ": step 0 on axis ", axes[i]);
    // Negative bounds count from the end; then clamp (INT64_MAX/MIN mean "to the end").
    int64_t s = starts[i], e = ends[i];
    if (s < 0) s = s < -dim ? -1 : s + dim;
    if (e < 0) e = e < -dim ? -1 : e + dim;
    int64_t len = 0;
    if (st > 0) {
      s = std::clamp<int64_t>(s, 0, dim);
      e = std::clamp<int64_t>(e, 0, dim);
      if (e > s) len = (e - s - 1) / st + 1;
    } else if (dim > 0) {
      s = std::clamp<int64_t>(s, 0, dim - 1);
      e = std::clamp<int64_t>(e, -1, dim - 1);
      const int64_t ast = st == INT64_MIN ? INT64_MAX : -st;  // |st| exceeds any distance anyway
      if (s > e) len = (s - e - 1) / ast + 1;
    }
    w.out[a] = len;
    w.first[a] = len > 0 ? s : 0;
    w.step[a] = st;
  }
  return w;
}

}  // namespace runnx
