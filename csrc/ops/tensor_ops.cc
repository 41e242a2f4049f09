// Data-movement ops: Transpose, Concat, Split, Expand, Tile, ConstantOfShape. They never look at
// the values, so each works for every fixed-size dtype through the byte-level loops of
// copy_util.h.
#include <algorithm>
#include <climits>
#include <cstring>
#include <numeric>

#include "ops/copy_util.h"
#include "ops/kernel.h"
#include "ops/op_util.h"

namespace runnx {
namespace {

class TransposeKernel : public Kernel {
 public:
  explicit TransposeKernel(const KernelInfo& info)
      : has_perm_(info.node.has_attr("perm")), perm_(info.node.get_ints("perm")) {
    std::vector<bool> seen(perm_.size(), false);
    for (int64_t p : perm_) {
      RUNNX_CHECK(p >= 0 && p < static_cast<int64_t>(perm_.size()) && !seen[p], kInvalidModel,
                  info.node.label(), ": perm ", shape_str(perm_), " is not a permutation");
      seen[p] = true;
    }
  }
  void run(KernelContext& ctx) const override {
    const Tensor& x = ctx.required_input(0);
    const int64_t r = x.rank();
    std::vector<int64_t> perm = perm_;
    if (!has_perm_) {
      perm.resize(r);
      for (int64_t k = 0; k < r; ++k) perm[k] = r - 1 - k;
    }
    RUNNX_CHECK(static_cast<int64_t>(perm.size()) == r, kInvalidArgument, ctx.node().label(),
                ": perm ", shape_str(perm), " does not match the input's rank ", r, " (shape ",
                shape_str(x.shape), ")");
    Shape out(r);
    std::vector<int64_t> cs = contiguous_strides(x.shape), src(r);
    for (int64_t k = 0; k < r; ++k) out[k] = x.shape[perm[k]], src[k] = cs[perm[k]];
    // When only size-1 dims move, the bytes keep their order: a view is enough.
    int64_t last = -1;
    bool same_order = true;
    for (int64_t p : perm)
      if (x.shape[p] != 1) same_order &= p > last, last = p;
    if (same_order) return ctx.set_output_view(0, x, out);
    size_t es = element_size(x.dtype, ctx.node().label());
    Tensor& y = ctx.allocate_output(0, x.dtype, out);
    copy_strided(y.data, x.data, es, out, contiguous_strides(out), src, ctx.pool());
  }

 private:
  bool has_perm_;
  std::vector<int64_t> perm_;
};

class ConcatKernel : public Kernel {
 public:
  explicit ConcatKernel(const KernelInfo& info) : axis_(info.node.get_int("axis", 0)) {
    RUNNX_CHECK(info.node.has_attr("axis"), kInvalidModel, info.node.label(),
                ": attribute axis is required");
  }
  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    RUNNX_CHECK(ctx.num_inputs() > 0, kInvalidModel, node.label(), ": needs at least one input");
    const Tensor& x0 = ctx.required_input(0);
    const int64_t r = x0.rank();
    RUNNX_CHECK(r > 0, kInvalidArgument, node.label(), ": cannot concatenate 0-d tensors");
    const int64_t axis = normalize_axis(axis_, r, node);
    Shape out = x0.shape;
    out[axis] = 0;
    for (int i = 0; i < ctx.num_inputs(); ++i) {
      const Tensor& x = ctx.required_input(i);
      RUNNX_CHECK(x.dtype == x0.dtype, kInvalidArgument, node.label(), ": input ", i, " is ",
                  dtype_name(x.dtype), " but input 0 is ", dtype_name(x0.dtype));
      bool ok = x.rank() == r;
      for (int64_t k = 0; ok && k < r; ++k) ok = k == axis || x.shape[k] == x0.shape[k];
      RUNNX_CHECK(ok, kInvalidArgument, node.label(), ": input ", i, " has shape ",
                  shape_str(x.shape), ", which does not match input 0's ", shape_str(x0.shape),
                  " outside axis ", axis);
      out[axis] += x.shape[axis];
    }
    size_t es = element_size(x0.dtype, node.label());
    Tensor& y = ctx.allocate_output(0, x0.dtype, out);
    int64_t outer = 1, inner = 1;
    for (int64_t k = 0; k < r; ++k)
      if (k != axis) (k < axis ? outer : inner) *= out[k];
    const int64_t row = out[axis] * inner;
    int64_t offset = 0;
    for (int i = 0; i < ctx.num_inputs(); ++i) {
      const Tensor& x = *ctx.input(i);
      const int64_t chunk = x.shape[axis] * inner;
      if (chunk > 0 && outer > 0)
        copy_strided(static_cast<uint8_t*>(y.data) + offset * es, x.data, es, {outer, chunk},
                     {row, 1}, {chunk, 1}, ctx.pool());
      offset += chunk;
    }
  }

 private:
  int64_t axis_;
};

// Split: sizes from the `split` attribute (before opset 13) or input (13+), else `num_outputs`
// (18+) or the node's output count, with a smaller last chunk when the axis does not divide.
class SplitKernel : public Kernel {
 public:
  explicit SplitKernel(const KernelInfo& info)
      : axis_(info.node.get_int("axis", 0)),
        split_from_input_(info.opset >= 13),
        attr_split_(info.node.get_ints("split")),
        num_outputs_(info.opset >= 18 ? info.node.get_int("num_outputs", 0) : 0) {
    const int outs = static_cast<int>(info.node.outputs.size());
    RUNNX_CHECK(num_outputs_ == 0 || num_outputs_ == outs, kInvalidModel, info.node.label(),
                ": num_outputs=", num_outputs_, " but the node has ", outs, " outputs");
  }
  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    RUNNX_CHECK(x.rank() > 0, kInvalidArgument, node.label(), ": cannot split a 0-d tensor");
    const int64_t axis = normalize_axis(axis_, x.rank(), node);
    const int64_t dim = x.shape[axis];
    const int n = ctx.num_outputs();
    std::vector<int64_t> sizes = split_from_input_ ? read_ints(ctx.input(1)) : attr_split_;
    if (!sizes.empty()) {
      RUNNX_CHECK(static_cast<int>(sizes.size()) == n, kInvalidArgument, node.label(), ": split ",
                  shape_str(sizes), " has ", sizes.size(), " entries for ", n, " outputs");
      int64_t total = 0;
      for (int64_t s : sizes) {
        RUNNX_CHECK(s >= 0 && s <= dim - total, kInvalidArgument, node.label(), ": split ",
                    shape_str(sizes), " does not fit axis ", axis, " of ", shape_str(x.shape));
        total += s;
      }
      RUNNX_CHECK(total == dim, kInvalidArgument, node.label(), ": split ", shape_str(sizes),
                  " sums to ", total, " but axis ", axis, " of ", shape_str(x.shape), " has size ",
                  dim);
    } else {
      const int64_t chunk = (dim + n - 1) / n;
      RUNNX_CHECK(dim == 0 || chunk * (n - 1) < dim, kInvalidArgument, node.label(),
                  ": cannot split size ", dim, " into ", n, " chunks of ", chunk);
      sizes.assign(n, chunk);
      sizes.back() = dim - chunk * (n - 1);
    }
    const size_t es = element_size(x.dtype, node.label());
    int64_t outer = 1, inner = 1;
    for (int64_t k = 0; k < x.rank(); ++k)
      if (k != axis) (k < axis ? outer : inner) *= x.shape[k];
    int64_t offset = 0;
    for (int i = 0; i < n; ++i) {
      const int64_t chunk = sizes[i] * inner;
      if (ctx.wants_output(i)) {
        Shape s = x.shape;
        s[axis] = sizes[i];
        Tensor& y = ctx.allocate_output(i, x.dtype, s);
        if (chunk > 0 && outer > 0)
          copy_strided(y.data, static_cast<const uint8_t*>(x.data) + offset * es, es,
                       {outer, chunk}, {chunk, 1}, {dim * inner, 1}, ctx.pool());
      }
      offset += chunk;
    }
  }

 private:
  int64_t axis_;
  bool split_from_input_;
  std::vector<int64_t> attr_split_;
  int64_t num_outputs_;
};

class ExpandKernel : public Kernel {
 public:
  explicit ExpandKernel(const KernelInfo&) {}
  void run(KernelContext& ctx) const override {
    const Tensor& x = ctx.required_input(0);
    const Tensor& s = ctx.required_input(1);
    RUNNX_CHECK(s.rank() == 1, kInvalidArgument, ctx.node().label(), ": shape must be 1-D, got ",
                shape_str(s.shape));
    Shape target = read_ints(&s);
    for (int64_t d : target)
      RUNNX_CHECK(d >= 0, kInvalidArgument, ctx.node().label(), ": invalid shape ",
                  shape_str(target));
    Shape out = broadcast_shapes({&x.shape, &target}, ctx.node());
    const size_t es = element_size(x.dtype, ctx.node().label());
    Tensor& y = ctx.allocate_output(0, x.dtype, out);
    copy_strided(y.data, x.data, es, out, contiguous_strides(out), broadcast_strides(x.shape, out),
                 ctx.pool());
  }
};

// Tile: the output seen as dims [rep_0, d_0, rep_1, d_1, ...] reads the input with stride 0 on
// the repeat dims, so it is one strided copy.
class TileKernel : public Kernel {
 public:
  explicit TileKernel(const KernelInfo&) {}
  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    const Tensor& rt = ctx.required_input(1);
    std::vector<int64_t> reps = read_ints(&rt);
    const int64_t r = x.rank();
    RUNNX_CHECK(rt.rank() == 1 && static_cast<int64_t>(reps.size()) == r, kInvalidArgument,
                node.label(), ": repeats ", shape_str(reps),
                " must be 1-D with one entry per input dim (input shape ", shape_str(x.shape), ")");
    Shape out(r), split(2 * r);
    std::vector<int64_t> cs = contiguous_strides(x.shape), src(2 * r);
    for (int64_t k = 0; k < r; ++k) {
      RUNNX_CHECK(reps[k] >= 0, kInvalidArgument, node.label(), ": negative repeat in ",
                  shape_str(reps));
      RUNNX_CHECK(x.shape[k] == 0 || reps[k] <= INT64_MAX / x.shape[k], kInvalidArgument,
                  node.label(), ": repeats ", shape_str(reps), " are too large");
      out[k] = x.shape[k] * reps[k];
      split[2 * k] = reps[k], split[2 * k + 1] = x.shape[k];
      src[2 * k] = 0, src[2 * k + 1] = cs[k];
    }
    const size_t es = element_size(x.dtype, node.label());
    Tensor& y = ctx.allocate_output(0, x.dtype, out);
    copy_strided(y.data, x.data, es, split, contiguous_strides(split), src, ctx.pool());
  }
};

class ConstantOfShapeKernel : public Kernel {
 public:
  explicit ConstantOfShapeKernel(const KernelInfo& info) {
    if (const Attribute* a = info.node.attr("value")) {
      RUNNX_CHECK(a->type == Attribute::Type::kTensor, kInvalidModel, info.node.label(),
                  ": attribute value must be a tensor");
      const Tensor& t = a->t;
      RUNNX_CHECK(t.numel() == 1, kInvalidModel, info.node.label(),
                  ": value must hold one element, got shape ", shape_str(t.shape));
      dtype_ = t.dtype;
      esize_ = element_size(dtype_, info.node.label());
      std::memcpy(&value_, t.data, esize_);
    }
  }
  void run(KernelContext& ctx) const override {
    const Tensor& s = ctx.required_input(0);
    RUNNX_CHECK(s.rank() == 1, kInvalidArgument, ctx.node().label(), ": shape must be 1-D, got ",
                shape_str(s.shape));
    Shape out = read_ints(&s);
    for (int64_t d : out)
      RUNNX_CHECK(d >= 0, kInvalidArgument, ctx.node().label(), ": invalid shape ", shape_str(out));
    Tensor& y = ctx.allocate_output(0, dtype_, out);
    fill_elements(y.data, esize_, y.numel(), &value_, ctx.pool());
  }

 private:
  DType dtype_ = DType::kF32;
  size_t esize_ = 4;
  uint64_t value_ = 0;
};

}  // namespace

void register_tensor_ops_ops(OpRegistry& r) {
  r.add("Transpose", "", 1, factory<TransposeKernel>());
  r.add("Concat", "", 4, factory<ConcatKernel>());
  r.add("Split", "", 2, factory<SplitKernel>());
  r.add("Expand", "", 8, factory<ExpandKernel>());
  r.add("Tile", "", 6, factory<TileKernel>());
  r.add("ConstantOfShape", "", 9, factory<ConstantOfShapeKernel>());
}

}  // namespace runnx
