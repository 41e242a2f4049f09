// Scatter ops: ScatterND, ScatterElements, the deprecated Scatter (opset 9-10, the same as
// ScatterElements without reduction) and TensorScatter (opset 24). The output starts as a copy of
// data (or is data's own buffer when the planner lets output 0 overwrite input 0) and updates are
// applied in index order, so duplicate indices under reduction=none give "last write wins" and
// reductions accumulate. Every index is checked (negative ones wrap once) before anything is
// written.
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
      for (int64_t i = 0; i < n; ++i)
        o[i] = (u[i] > o[i] || u[i] != u[i]) && o[i] == o[i] ? u[i] : o[i];
      break;
    case Reduction::kMin:
      for (int64_t i = 0; i < n; ++i)
        o[i] = (u[i] < o[i] || u[i] != u[i]) && o[i] == o[i] ? u[i] : o[i];
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

// TensorScatter (opset 24, KV-cache update): copies `update` into past_cache along `axis`
// starting at write_indices[batch] (0 if omitted); "circular" mode wraps positions modulo the
// axis size, "linear" mode requires the write to fit.
class TensorScatterKernel : public Kernel {
 public:
  explicit TensorScatterKernel(const KernelInfo& info) : axis_(info.node.get_int("axis", -2)) {
    const std::string mode = info.node.get_string("mode", "linear");
    RUNNX_CHECK(mode == "linear" || mode == "circular", kInvalidModel, info.node.label(),
                ": mode '", mode, "' must be linear or circular");
    circular_ = mode == "circular";
  }
  int inplace_input() const override { return 0; }

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    const Tensor& up = ctx.required_input(1);
    const int64_t r = x.rank();
    RUNNX_CHECK(r >= 2, kInvalidArgument, node.label(), ": past_cache must have rank >= 2, got ",
                shape_str(x.shape));
    const int64_t axis = normalize_axis(axis_, r, node);
    RUNNX_CHECK(axis >= 1, kInvalidArgument, node.label(), ": axis cannot be the batch axis");
    bool ok = up.rank() == r && up.dtype == x.dtype;
    for (int64_t d = 0; ok && d < r; ++d)
      ok = d == axis ? up.shape[d] <= x.shape[d] : up.shape[d] == x.shape[d];
    RUNNX_CHECK(ok, kInvalidArgument, node.label(), ": update ", shape_str(up.shape),
                " must match past_cache ", shape_str(x.shape), " except on axis ", axis,
                " (where it may be shorter) and have its type");
    const int64_t B = x.shape[0], M = x.shape[axis], L = up.shape[axis];
    std::vector<int64_t> w = read_ints(ctx.input(2), std::vector<int64_t>(B, 0));
    RUNNX_CHECK(static_cast<int64_t>(w.size()) == B, kInvalidArgument, node.label(),
                ": write_indices has ", w.size(), " entries for a batch of ", B);
    for (int64_t& v : w) {
      if (circular_) {
        if (M > 0) v = ((v % M) + M) % M;
      } else {
        RUNNX_CHECK(v >= 0 && v <= M - L, kInvalidArgument, node.label(), ": write index ", v,
                    " with ", L, " updates does not fit a sequence axis of size ", M);
      }
    }
    Tensor& y = init_output(ctx, x);
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < r; ++d)
      if (d < axis)
        outer *= x.shape[d];
      else if (d > axis)
        inner *= x.shape[d];
    if (outer * L * inner == 0) return;
    const int64_t per_batch = outer / B;
    const size_t row = inner * element_size(x.dtype, node.label());
    const auto* U = static_cast<const uint8_t*>(up.data);
    auto* Y = static_cast<uint8_t*>(y.data);
    ctx.pool().parallel_for(outer * L, rows_grain(inner), [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k) {
        const int64_t o = k / L, s = k % L;
        int64_t pos = w[o / per_batch] + s;
        if (circular_) pos %= M;
        std::memcpy(Y + (o * M + pos) * row, U + k * row, row);
      }
    });
  }

 private:
  int64_t axis_;
  bool circular_ = false;
};

}  // namespace

void register_scatter_ops(OpRegistry& r) {
  r.add("Scatter", "", 9, factory<ScatterElementsKernel>());
  r.add("ScatterElements", "", 11, factory<ScatterElementsKernel>());
  r.add("ScatterND", "", 11, factory<ScatterNDKernel>());
  r.add("TensorScatter", "", 24, factory<TensorScatterKernel>());
}

}  // namespace runnx
