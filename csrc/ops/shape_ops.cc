// Ops that only re-interpret a tensor's shape: the output is a view of the input's bytes, never a
// copy (Reshape, Flatten, Squeeze, Unsqueeze, Identity, and Dropout at inference).
#include <algorithm>
#include <climits>
#include <cstring>

#include "ops/kernel.h"
#include "ops/op_util.h"

namespace runnx {
namespace {

// Reshape's target shape: 0 copies the input dim (unless allowzero), one -1 is inferred.
Shape reshape_target(const Shape& in, const std::vector<int64_t>& spec, bool allowzero,
                     const Node& node) {
  const int64_t numel = shape_numel(in);
  Shape out(spec.size());
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < spec.size(); ++i) {
    int64_t v = spec[i];
    if (v == -1) {
      RUNNX_CHECK(infer < 0, kInvalidArgument, node.label(), ": shape ", shape_str(spec),
                  " has more than one -1");
      infer = static_cast<int>(i);
      continue;
    }
    if (v == 0 && !allowzero) {
      RUNNX_CHECK(i < in.size(), kInvalidArgument, node.label(), ": shape ", shape_str(spec),
                  " copies dim ", i, " (0) but the input ", shape_str(in), " has rank ", in.size());
      v = in[i];
    }
    RUNNX_CHECK(v >= 0, kInvalidArgument, node.label(), ": invalid dim ", v, " in shape ",
                shape_str(spec));
    RUNNX_CHECK(v == 0 || known <= INT64_MAX / v, kInvalidArgument, node.label(), ": shape ",
                shape_str(spec), " is too large");
    out[i] = v;
    known *= v;
  }
  if (infer >= 0) {
    RUNNX_CHECK(!(known == 0 && allowzero), kInvalidArgument, node.label(), ": shape ",
                shape_str(spec), " has both 0 and -1 with allowzero=1");
    // A 0 beside the -1 leaves it undetermined (numpy and onnxruntime refuse it too).
    RUNNX_CHECK(known != 0 && numel % known == 0, kInvalidArgument, node.label(),
                ": cannot reshape input ", shape_str(in), " to ", shape_str(spec));
    out[infer] = numel / known;
  }
  RUNNX_CHECK(shape_numel(out) == numel, kInvalidArgument, node.label(), ": cannot reshape input ",
              shape_str(in), " (", numel, " elements) to ", shape_str(spec), " (resolved as ",
              shape_str(out), ")");
  return out;
}

class ReshapeKernel : public Kernel {
 public:
  int view_input() const override { return 0; }
  explicit ReshapeKernel(const KernelInfo& info)
      : allowzero_(info.opset >= 14 && info.node.get_int("allowzero", 0) != 0) {}
  void run(KernelContext& ctx) const override {
    const Tensor& x = ctx.required_input(0);
    const Tensor& s = ctx.required_input(1);
    RUNNX_CHECK(s.rank() == 1, kInvalidArgument, ctx.node().label(), ": shape must be 1-D, got ",
                shape_str(s.shape));
    ctx.set_output_view(0, x, reshape_target(x.shape, read_ints(&s), allowzero_, ctx.node()));
  }

 private:
  bool allowzero_;
};

class FlattenKernel : public Kernel {
 public:
  int view_input() const override { return 0; }
  explicit FlattenKernel(const KernelInfo& info) : axis_(info.node.get_int("axis", 1)) {}
  void run(KernelContext& ctx) const override {
    const Tensor& x = ctx.required_input(0);
    const int64_t r = x.rank();
    RUNNX_CHECK(axis_ >= -r && axis_ <= r, kInvalidArgument, ctx.node().label(), ": axis ", axis_,
                " is out of range for rank ", r);
    const int64_t axis = axis_ < 0 ? axis_ + r : axis_;
    int64_t a = 1, b = 1;
    for (int64_t k = 0; k < r; ++k) (k < axis ? a : b) *= x.shape[k];
    ctx.set_output_view(0, x, {a, b});
  }

 private:
  int64_t axis_;
};

// Squeeze/Unsqueeze take `axes` as an attribute before opset 13 and as an input from 13 on.
class AxesKernel : public Kernel {
 public:
  explicit AxesKernel(const KernelInfo& info) : from_input_(info.opset >= 13) {
    if (!from_input_) {
      has_attr_axes_ = info.node.has_attr("axes");
      attr_axes_ = info.node.get_ints("axes");
    }
  }

 protected:
  // The axes; `present` is false when none were given.
  std::vector<int64_t> axes(const KernelContext& ctx, bool& present) const {
    if (!from_input_) {
      present = has_attr_axes_;
      return attr_axes_;
    }
    const Tensor* t = ctx.input(1);
    present = t != nullptr;
    if (!t) return {};
    RUNNX_CHECK(t->rank() <= 1, kInvalidArgument, ctx.node().label(), ": axes must be 1-D, got ",
                shape_str(t->shape));
    return read_ints(t);
  }

 private:
  bool from_input_;
  bool has_attr_axes_ = false;
  std::vector<int64_t> attr_axes_;
};

class SqueezeKernel : public AxesKernel {
 public:
  int view_input() const override { return 0; }
  using AxesKernel::AxesKernel;
  void run(KernelContext& ctx) const override {
    const Tensor& x = ctx.required_input(0);
    const Node& node = ctx.node();
    bool present = false;
    std::vector<int64_t> ax = axes(ctx, present);
    std::vector<bool> drop(x.rank(), false);
    if (!present || ax.empty()) {  // no axes (or an empty list): drop every 1-dim
      for (int64_t k = 0; k < x.rank(); ++k) drop[k] = x.shape[k] == 1;
    } else {
      for (int64_t a : ax) {
        int64_t k = normalize_axis(a, x.rank(), node);
        RUNNX_CHECK(x.rank() > 0, kInvalidArgument, node.label(), ": cannot squeeze a 0-d tensor");
        RUNNX_CHECK(!drop[k], kInvalidArgument, node.label(), ": axis ", a, " is repeated");
        RUNNX_CHECK(x.shape[k] == 1, kInvalidArgument, node.label(), ": cannot squeeze axis ", a,
                    " of size ", x.shape[k], " (input shape ", shape_str(x.shape), ")");
        drop[k] = true;
      }
    }
    Shape out;
    for (int64_t k = 0; k < x.rank(); ++k)
      if (!drop[k]) out.push_back(x.shape[k]);
    ctx.set_output_view(0, x, std::move(out));
  }
};

class UnsqueezeKernel : public AxesKernel {
 public:
  int view_input() const override { return 0; }
  using AxesKernel::AxesKernel;
  void run(KernelContext& ctx) const override {
    const Tensor& x = ctx.required_input(0);
    const Node& node = ctx.node();
    bool present = false;
    std::vector<int64_t> ax = axes(ctx, present);
    RUNNX_CHECK(present, kInvalidModel, node.label(), ": axes are required");
    const int64_t r = x.rank() + static_cast<int64_t>(ax.size());
    std::vector<bool> inserted(r, false);
    for (int64_t a : ax) {
      int64_t k = normalize_axis(a, r, node);
      RUNNX_CHECK(!inserted[k], kInvalidArgument, node.label(), ": axis ", a, " is repeated");
      inserted[k] = true;
    }
    Shape out(r);
    for (int64_t k = 0, j = 0; k < r; ++k) out[k] = inserted[k] ? 1 : x.shape[j++];
    ctx.set_output_view(0, x, std::move(out));
  }
};

class IdentityKernel : public Kernel {
 public:
  int view_input() const override { return 0; }
  explicit IdentityKernel(const KernelInfo&) {}
  void run(KernelContext& ctx) const override {
    const Tensor& x = ctx.required_input(0);
    ctx.set_output_view(0, x, x.shape);
  }
};

// Inference-only Dropout: the output is the input and the optional mask is all "kept". Training
// mode would need a random mask; it is accepted only with ratio 0, where nothing is dropped.
class DropoutKernel : public Kernel {
 public:
  int view_input() const override { return 0; }
  explicit DropoutKernel(const KernelInfo& info) : opset_(info.opset) {
    if (opset_ < 12) return;
    const Tensor* t = info.constant_input(2);
    const bool ratio_known =
        info.node.inputs.size() < 2 || info.node.inputs[1].empty() || info.constant_input(1);
    if (t && training(*t) && ratio_known && ratio(info.constant_input(1)) != 0)
      fail(ErrorKind::kUnsupportedOp, info.node.label(), ": training_mode=true is not supported");
  }
  void run(KernelContext& ctx) const override {
    const Tensor& x = ctx.required_input(0);
    if (opset_ >= 12)
      if (const Tensor* t = ctx.input(2); t && training(*t) && ratio(ctx.input(1)) != 0)
        fail(ErrorKind::kUnsupportedOp, ctx.node().label(),
             ": training_mode=true is not supported");
    ctx.set_output_view(0, x, x.shape);
    if (!ctx.wants_output(1)) return;
    // The mask is bool from opset 10 on; before, it has the input's type.
    DType mt = opset_ >= 10 ? DType::kBool : x.dtype;
    Tensor& m = ctx.allocate_output(1, mt, x.shape);
    const int64_t n = m.numel();
    if (mt == DType::kF16 || mt == DType::kBF16) {
      const uint16_t one = mt == DType::kF16 ? 0x3C00 : 0x3F80;
      std::fill_n(m.ptr<uint16_t>(), n, one);
      return;
    }
    dispatch_all(mt, ctx.node(), [&](auto t) {
      using T = decltype(t);
      std::fill_n(m.ptr<T>(), n, static_cast<T>(1));
    });
  }

 private:
  static bool training(const Tensor& t) {
    RUNNX_CHECK(t.numel() == 1 && t.dtype == DType::kBool, kInvalidArgument,
                "Dropout: training_mode must be a bool scalar");
    return *t.ptr<uint8_t>() != 0;
  }
  static double ratio(const Tensor* r) {
    if (!r) return 0.5;
    RUNNX_CHECK(r->numel() == 1, kInvalidArgument, "Dropout: ratio must be a scalar");
    if (r->dtype == DType::kF16 || r->dtype == DType::kBF16)  // only "is it zero" matters here
      return (*r->ptr<uint16_t>() & 0x7fff) ? 0.5 : 0.0;
    return tensor_to_f64(*r)[0];
  }
  int64_t opset_;
};

}  // namespace

void register_shape_ops_ops(OpRegistry& r) {
  r.add("Reshape", "", 5, factory<ReshapeKernel>());
  r.add("Flatten", "", 1, factory<FlattenKernel>());
  r.add("Squeeze", "", 1, factory<SqueezeKernel>());
  r.add("Unsqueeze", "", 1, factory<UnsqueezeKernel>());
  r.add("Identity", "", 1, factory<IdentityKernel>());
  r.add("Dropout", "", 7, factory<DropoutKernel>());
}

}  // namespace runnx
