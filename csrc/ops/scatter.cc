// Scatter ops: ScatterND, ScatterElements and the deprecated Scatter (opset 9-10, the same as
// ScatterElements without reduction). The output starts as a copy of data (or is data's own buffer
// when the planner lets output 0 overwrite input 0) and updates are applied in index order, so
// duplicate indices under reduction=none give "last write wins" and reductions accumulate.
// Every index is checked (negative ones wrap once) before anything is written.
#include <cmath>
#include <cstring>
#include <string>

#include "ops/copy_util.h"
#include "ops/kernel.h"
#include "ops/op_util.h"

namespace runnx {
namespace {

enum class Reduction { kNone, kAdd, kMul, kMax, kMin };

Reduction parse_reduction(const KernelInfo& info) {
  const Node& n = info.node;
  const std::string s = n.get_string("reduction", "none");
  if (s == "none") return Reduction::kNone;
  if (s == "add" && info.opset >= 16) return Reduction::kAdd;
  if (s == "mul" && info.opset >= 16) return Reduction::kMul;
  if (s == "max" && info.opset >= 18) return Reduction::kMax;
  if (s == "min" && info.opset >= 18) return Reduction::kMin;
  fail(ErrorKind::kInvalidModel, n.label(), ": reduction '", s, "' is not valid at opset ",
       info.opset);
}

// o = reduce(o, u) elementwise over n elements. Max/min propagate NaN like numpy's maximum.
template <typename T>
void reduce_into(T* o, const T* u, int64_t n, Reduction red) {
  switch (red) {
    case Reduction::kNone:
      std::memcpy(o, u, n * sizeof(T));
      break;
    case Reduction::kAdd:
      for (int64_t i = 0; i < n; ++i) o[i] = static_cast<T>(o[i] + u[i]);
      break;
    case Reduction::kMul:
      for (int64_t i = 0; i < n; ++i) o[i] = static_cast<T>(o[i] * u[i]);
      break;
    case Reduction::kMax:
      for (int64_t i = 0; i < n; ++i) o[i] = (u[i] > o[i] || u[i] != u[i]) && o[i] == o[i] ? u[i] : o[i];
      break;
    case Reduction::kMin:
      for (int64_t i = 0; i < n; ++i) o[i] = (u[i] < o[i] || u[i] != u[i]) && o[i] == o[i] ? u[i] : o[i];
      break;
  }
}

template <typename T>
void reduce_one(T& o, T u, Reduction red) {
  reduce_into(&o, &u, 1, red);
}

// Output 0 as a copy of data (skipped when the executor gave us data's own buffer).
Tensor& init_output(KernelContext& ctx, const Tensor& x) {
  Tensor& y = ctx.allocate_output(0, x.dtype, x.shape);
  if (y.data != x.data) {
    const size_t es = element_size(x.dtype, ctx.node().label());
    copy_strided(y.data, x.data, es, x.shape, contiguous_strides(x.shape),
                 contiguous_strides(x.shape), ctx.pool());
  }
  return y;
}

std::vector<int64_t> read_indices(const Tensor& idx, const Node& node) {
  RUNNX_CHECK(idx.dtype == DType::kI64 || idx.dtype == DType::kI32, kInvalidArgument, node.label(),
              ": indices must be int32 or int64, got ", dtype_name(idx.dtype));
  return tensor_to_i64(idx);
}

// ScatterND: indices [..., k] address slices data[i_0..i_{k-1}, :...]; updates has shape
// indices.shape[:-1] + data.shape[k:].
class ScatterNDKernel : public Kernel {
 public:
  explicit ScatterNDKernel(const KernelInfo& info)
      : red_(info.opset >= 16 ? parse_reduction(info) : Reduction::kNone) {}
  int inplace_input() const override { return 0; }

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    const Tensor& it = ctx.required_input(1);
    const Tensor& up = ctx.required_input(2);
    RUNNX_CHECK(x.rank() >= 1 && it.rank() >= 1, kInvalidArgument, node.label(),
                ": data and indices must have rank >= 1, got ", shape_str(x.shape), " and ",
                shape_str(it.shape));
    const int64_t k = it.shape.back();
    RUNNX_CHECK(k <= x.rank(), kInvalidArgument, node.label(), ": indices ", shape_str(it.shape),
                " address more dims than data ", shape_str(x.shape), " has");
    Shape want(it.shape.begin(), it.shape.end() - 1);
    want.insert(want.end(), x.shape.begin() + k, x.shape.end());
    RUNNX_CHECK(up.shape == want && up.dtype == x.dtype, kInvalidArgument, node.label(),
                ": updates ", shape_str(up.shape), " must have shape ", shape_str(want),
                " and data's type");
    std::vector<int64_t> idx = read_indices(it, node);
    const std::vector<int64_t> cs = contiguous_strides(x.shape);
    int64_t inner = 1;
    for (int64_t d = k; d < x.rank(); ++d) inner *= x.shape[d];
    int64_t n = 1;  // number of index tuples
    for (int64_t d = 0; d + 1 < it.rank(); ++d) n *= it.shape[d];
    // Offsets (in elements) of each addressed slice, checked before anything is written.
    std::vector<int64_t> off(n, 0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t d = 0; d < k; ++d) {
        int64_t v = idx[i * k + d];
        const int64_t dim = x.shape[d];
        RUNNX_CHECK(v >= -dim && v < dim, kInvalidArgument, node.label(), ": index ", v,
                    " is out of range for axis ", d, " of size ", dim);
        off[i] += (v < 0 ? v + dim : v) * cs[d];
      }
    Tensor& y = init_output(ctx, x);
    if (n == 0 || inner == 0) return;
    auto apply = [&](auto tag) {
      using T = decltype(tag);
      T* Y = static_cast<T*>(y.data);
      const T* U = static_cast<const T*>(up.data);
      if (inner >= kCopyGrainElems) {
        // Long slices: split each slice across threads (slices applied in order).
        for (int64_t i = 0; i < n; ++i)
          ctx.pool().parallel_for(inner, kCopyGrainElems, [&](int64_t b, int64_t e) {
            reduce_into(Y + off[i] + b, U + i * inner + b, e - b, red_);
          });
        return;
      }
      for (int64_t i = 0; i < n; ++i) reduce_into(Y + off[i], U + i * inner, inner, red_);
    };
    if (red_ == Reduction::kNone) {
      by_size(element_size(x.dtype, node.label()), apply);
    } else {
      dispatch_numeric(x.dtype, node, apply);
    }
  }

 private:
  Reduction red_;
};

// ScatterElements / Scatter: y[i with i_axis replaced by indices[i]] = updates[i].
class ScatterElementsKernel : public Kernel {
 public:
  explicit ScatterElementsKernel(const KernelInfo& info)
      : axis_(info.node.get_int("axis", 0)),
        red_(info.opset >= 16 && info.node.op_type == "ScatterElements" ? parse_reduction(info)
                                                                         : Reduction::kNone) {}
  int inplace_input() const override { return 0; }

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    const Tensor& it = ctx.required_input(1);
    const Tensor& up = ctx.required_input(2);
    const int64_t r = x.rank();
    RUNNX_CHECK(r >= 1 && it.rank() == r && up.shape == it.shape && up.dtype == x.dtype,
                kInvalidArgument, node.label(), ": data ", shape_str(x.shape), ", indices ",
                shape_str(it.shape), " and updates ", shape_str(up.shape),
                " must have one rank (>= 1), updates the shape of indices and data's type");
    const int64_t axis = normalize_axis(axis_, r, node);
    for (int64_t d = 0; d < r; ++d)
      RUNNX_CHECK(d == axis || it.shape[d] <= x.shape[d], kInvalidArgument, node.label(),
                  ": indices ", shape_str(it.shape), " exceed data ", shape_str(x.shape),
                  " on axis ", d);
    std::vector<int64_t> idx = read_indices(it, node);
    const int64_t dim = x.shape[axis];
    for (int64_t& v : idx) {
      RUNNX_CHECK(v >= -dim && v < dim, kInvalidArgument, node.label(), ": index ", v,
                  " is out of range for axis ", axis, " of size ", dim);
      if (v < 0) v += dim;
    }
    Tensor& y = init_output(ctx, x);
    const int64_t total = static_cast<int64_t>(idx.size());
    if (total == 0) return;
    const std::vector<int64_t> cs = contiguous_strides(x.shape);
    // Element offset in y of every update, computed by walking the indices' shape.
    std::vector<int64_t> off(total);
    {
      std::vector<int64_t> pos(r, 0);
      int64_t base = 0;  // sum over non-axis dims of pos[d] * cs[d]
      for (int64_t i = 0; i < total; ++i) {
        off[i] = base + idx[i] * cs[axis];
        for (int64_t d = r - 1; d >= 0; --d) {
          if (d != axis) base += cs[d];
          if (++pos[d] < it.shape[d]) break;
          if (d != axis) base -= pos[d] * cs[d];
          pos[d] = 0;
        }
      }
    }
    auto apply = [&](auto tag) {
      using T = decltype(tag);
      T* Y = static_cast<T*>(y.data);
      const T* U = static_cast<const T*>(up.data);
      if (red_ == Reduction::kNone) {
        for (int64_t i = 0; i < total; ++i) Y[off[i]] = U[i];
      } else {
        for (int64_t i = 0; i < total; ++i) reduce_one(Y[off[i]], U[i], red_);
      }
    };
    if (red_ == Reduction::kNone) {
      by_size(element_size(x.dtype, node.label()), apply);
    } else {
      dispatch_numeric(x.dtype, node, apply);
    }
  }

 private:
  int64_t axis_;
  Reduction red_;
};

}  // namespace

void register_scatter_ops(OpRegistry& r) {
  r.add("Scatter", "", 9, factory<ScatterElementsKernel>());
  r.add("ScatterElements", "", 11, factory<ScatterElementsKernel>());
  r.add("ScatterND", "", 11, factory<ScatterNDKernel>());
}

}  // namespace runnx
