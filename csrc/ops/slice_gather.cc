// Ops that pick elements by position: Slice (a strided window), Gather and GatherElements (by an
// index tensor). Byte-level, so every fixed-size dtype works. Indices are checked before any
// read: a bad index raises InvalidArgument, never reads out of bounds.
#include <algorithm>
#include <climits>
#include <cstring>

#include "ops/copy_util.h"
#include "ops/kernel.h"
#include "ops/op_util.h"
#include "ops/slice_bounds.h"

namespace runnx {
namespace {

// Slice: starts/ends/axes attributes before opset 10; inputs starts, ends, axes, steps from 10.
class SliceKernel : public Kernel {
 public:
  explicit SliceKernel(const KernelInfo& info) : from_inputs_(info.opset >= 10) {
    if (!from_inputs_) {
      const Node& n = info.node;
      RUNNX_CHECK(n.has_attr("starts") && n.has_attr("ends"), kInvalidModel, n.label(),
                  ": attributes starts and ends are required");
      starts_ = n.get_ints("starts");
      ends_ = n.get_ints("ends");
      has_axes_ = n.has_attr("axes");
      axes_ = n.get_ints("axes");
    }
  }

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    std::vector<int64_t> starts = starts_, ends = ends_, axes = axes_, steps;
    bool has_axes = has_axes_;
    if (from_inputs_) {
      for (int i = 1; i <= 4; ++i)
        if (const Tensor* t = ctx.input(i))
          RUNNX_CHECK(t->rank() == 1, kInvalidArgument, node.label(), ": input ", i,
                      " must be 1-D, got ", shape_str(t->shape));
      starts = read_ints(&ctx.required_input(1));
      ends = read_ints(&ctx.required_input(2));
      has_axes = ctx.input(3) != nullptr;
      axes = read_ints(ctx.input(3));
      steps = read_ints(ctx.input(4));
    }
    const size_t n = starts.size();
    if (!has_axes) {
      axes.resize(n);
      for (size_t i = 0; i < n; ++i) axes[i] = static_cast<int64_t>(i);
    }
    if (steps.empty()) steps.assign(n, 1);
    RUNNX_CHECK(ends.size() == n && axes.size() == n && steps.size() == n, kInvalidArgument,
                node.label(), ": starts, ends, axes and steps must have the same length (", n, ", ",
                ends.size(), ", ", axes.size(), ", ", steps.size(), ")");
    const int64_t r = x.rank();
    const SliceWindow w = slice_window(x.shape, starts, ends, axes, steps, node);
    const Shape& out = w.out;
    const std::vector<int64_t>& first = w.first;
    const std::vector<int64_t>& step = w.step;
    const size_t es = element_size(x.dtype, node.label());
    Tensor& y = ctx.allocate_output(0, x.dtype, out);
    if (y.numel() == 0) return;
    std::vector<int64_t> cs = contiguous_strides(x.shape), src(r);
    int64_t offset = 0;
    for (int64_t k = 0; k < r; ++k) {
      offset += first[k] * cs[k];
      // A stride only matters when the dim has more than one element (steps can be huge).
      src[k] = out[k] > 1 ? cs[k] * step[k] : 0;
    }
    copy_strided(y.data, static_cast<const uint8_t*>(x.data) + offset * es, es, out,
                 contiguous_strides(out), src, ctx.pool());
  }

 private:
  bool from_inputs_;
  std::vector<int64_t> starts_, ends_, axes_;
  bool has_axes_ = false;
};

// Indices as int64 in [0, dim): negative ones wrap once, anything else out of range is an error.
std::vector<int64_t> checked_indices(const Tensor& idx, int64_t dim, const Node& node) {
  RUNNX_CHECK(idx.dtype == DType::kI64 || idx.dtype == DType::kI32, kInvalidArgument, node.label(),
              ": indices must be int32 or int64, got ", dtype_name(idx.dtype));
  std::vector<int64_t> v = tensor_to_i64(idx);
  for (int64_t& i : v) {
    RUNNX_CHECK(i >= -dim && i < dim, kInvalidArgument, node.label(), ": index ", i,
                " is out of range for an axis of size ", dim);
    if (i < 0) i += dim;
  }
  return v;
}

class GatherKernel : public Kernel {
 public:
  explicit GatherKernel(const KernelInfo& info) : axis_(info.node.get_int("axis", 0)) {}
  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    const Tensor& it = ctx.required_input(1);
    RUNNX_CHECK(x.rank() > 0, kInvalidArgument, node.label(), ": cannot gather from a 0-d tensor");
    const int64_t axis = normalize_axis(axis_, x.rank(), node);
    const int64_t dim = x.shape[axis];
    const std::vector<int64_t> idx = checked_indices(it, dim, node);
    Shape out(x.shape.begin(), x.shape.begin() + axis);
    out.insert(out.end(), it.shape.begin(), it.shape.end());
    out.insert(out.end(), x.shape.begin() + axis + 1, x.shape.end());
    const size_t es = element_size(x.dtype, node.label());
    Tensor& y = ctx.allocate_output(0, x.dtype, out);
    if (y.numel() == 0) return;
    int64_t outer = 1, inner = 1;
    for (int64_t k = 0; k < x.rank(); ++k)
      if (k != axis) (k < axis ? outer : inner) *= x.shape[k];
    const int64_t ni = static_cast<int64_t>(idx.size());
    const auto* src = static_cast<const uint8_t*>(x.data);
    auto* dst = static_cast<uint8_t*>(y.data);
    by_size(es, [&](auto u) {
      using U = decltype(u);
      U* D = reinterpret_cast<U*>(dst);
      if (inner == 1) {
        // Gathering single elements (e.g. along the last axis): one flat loop per outer row.
        ctx.pool().parallel_for(outer, rows_grain(ni), [&](int64_t b, int64_t e) {
          for (int64_t o = b; o < e; ++o) {
            // Byte copies: a weight left misaligned in the file may be read here (graph_prep).
            const uint8_t* s = src + o * dim * sizeof(U);
            U* d = D + o * ni;
            for (int64_t k = 0; k < ni; ++k) std::memcpy(d + k, s + idx[k] * sizeof(U), sizeof(U));
          }
        });
        return;
      }
      ctx.pool().parallel_for(outer * ni, rows_grain(inner), [&](int64_t b, int64_t e) {
        for (int64_t row = b; row < e; ++row) {
          const int64_t o = row / ni, k = row % ni;
          std::memcpy(D + row * inner, src + (o * dim + idx[k]) * inner * sizeof(U), inner * sizeof(U));
        }
      });
    });
  }

 private:
  int64_t axis_;
};

// out[i] = x[i with i_axis replaced by indices[i]]; indices may be smaller than x on other dims.
class GatherElementsKernel : public Kernel {
 public:
  explicit GatherElementsKernel(const KernelInfo& info) : axis_(info.node.get_int("axis", 0)) {}
  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    const Tensor& it = ctx.required_input(1);
    const int64_t r = x.rank();
    RUNNX_CHECK(r > 0 && it.rank() == r, kInvalidArgument, node.label(), ": indices ",
                shape_str(it.shape), " must have the rank of data ", shape_str(x.shape),
                " (at least 1)");
    const int64_t axis = normalize_axis(axis_, r, node);
    for (int64_t k = 0; k < r; ++k)
      RUNNX_CHECK(k == axis || it.shape[k] <= x.shape[k], kInvalidArgument, node.label(),
                  ": indices ", shape_str(it.shape), " exceed data ", shape_str(x.shape),
                  " on axis ", k);
    const std::vector<int64_t> idx = checked_indices(it, x.shape[axis], node);
    const size_t es = element_size(x.dtype, node.label());
    Tensor& y = ctx.allocate_output(0, x.dtype, it.shape);
    if (y.numel() == 0) return;
    std::vector<int64_t> cs = contiguous_strides(x.shape);
    const int64_t n = it.shape[r - 1], astride = cs[axis];
    const bool axis_last = axis == r - 1;
    int64_t rows = y.numel() / n;
    by_size(es, [&](auto u) {
      using U = decltype(u);
      const U* S = static_cast<const U*>(x.data);
      U* D = static_cast<U*>(y.data);
      ctx.pool().parallel_for(rows, rows_grain(n), [&](int64_t b, int64_t e) {
        std::vector<int64_t> pos(r - 1, 0);
        int64_t lin = b;
        for (int64_t k = r - 2; k >= 0; --k) pos[k] = lin % it.shape[k], lin /= it.shape[k];
        for (int64_t row = b; row < e; ++row) {
          int64_t base = 0;  // offset of this row in x, without the axis term
          for (int64_t k = 0; k < r - 1; ++k)
            if (k != axis) base += pos[k] * cs[k];
          const int64_t* ix = idx.data() + row * n;
          U* d = D + row * n;
          if (axis_last) {
            for (int64_t j = 0; j < n; ++j) d[j] = S[base + ix[j]];
          } else {
            for (int64_t j = 0; j < n; ++j) d[j] = S[base + j + ix[j] * astride];
          }
          for (int64_t k = r - 2; k >= 0; --k) {
            if (++pos[k] < it.shape[k]) break;
            pos[k] = 0;
          }
        }
      });
    });
  }

 private:
  int64_t axis_;
};

}  // namespace

void register_slice_gather_ops(OpRegistry& r) {
  r.add("Slice", "", 1, factory<SliceKernel>());
  r.add("Gather", "", 1, factory<GatherKernel>());
  r.add("GatherElements", "", 11, factory<GatherElementsKernel>());
}

}  // namespace runnx
