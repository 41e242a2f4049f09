// Pad: each output index maps to a source index per dim (or to the constant), and the copy is
// one copy_by_maps, whose inner runs become memcpy. Forms: opset < 11 attributes pads/value;
// 11+ inputs pads and constant_value; 18+ an axes input; wrap mode from 19. Negative pads crop.
#include <cstdlib>
#include <cstring>

#include "ops/copy_util.h"
#include "ops/kernel.h"
#include "ops/op_util.h"

namespace runnx {
namespace {

enum class PadMode { kConstant, kReflect, kEdge, kWrap };

class PadKernel : public Kernel {
 public:
  explicit PadKernel(const KernelInfo& info) : from_inputs_(info.opset >= 11), opset_(info.opset) {
    const Node& n = info.node;
    std::string mode = n.get_string("mode", "constant");
    if (mode == "constant")
      mode_ = PadMode::kConstant;
    else if (mode == "reflect")
      mode_ = PadMode::kReflect;
    else if (mode == "edge")
      mode_ = PadMode::kEdge;
    else if (mode == "wrap" && info.opset >= 19)
      mode_ = PadMode::kWrap;
    else
      fail(ErrorKind::kInvalidModel, n.label(), ": unknown mode '", mode, "'");
    if (!from_inputs_) {
      RUNNX_CHECK(n.has_attr("pads"), kInvalidModel, n.label(), ": attribute pads is required");
      pads_ = n.get_ints("pads");
      value_ = n.get_float("value", 0.0f);
    }
  }

  void run(KernelContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    const int64_t r = x.rank();
    std::vector<int64_t> pads = pads_;
    std::vector<int64_t> axes;
    if (from_inputs_) {
      const Tensor& p = ctx.required_input(1);
      RUNNX_CHECK(p.rank() == 1, kInvalidArgument, node.label(), ": pads must be 1-D, got ",
                  shape_str(p.shape));
      pads = read_ints(&p);
      if (opset_ >= 18) axes = read_ints(ctx.input(3));
    }
    if (axes.empty()) {
      axes.resize(r);
      for (int64_t k = 0; k < r; ++k) axes[k] = k;
    }
    const int64_t na = static_cast<int64_t>(axes.size());
    RUNNX_CHECK(static_cast<int64_t>(pads.size()) == 2 * na, kInvalidArgument, node.label(),
                ": pads ", shape_str(pads), " must have 2 entries per padded axis (", na,
                " axes, input shape ", shape_str(x.shape), ")");
    std::vector<int64_t> begin(r, 0), end(r, 0);
    std::vector<bool> seen(r, false);
    for (int64_t i = 0; i < na; ++i) {
      const int64_t a = normalize_axis(axes[i], r, node);
      RUNNX_CHECK(!seen[a], kInvalidArgument, node.label(), ": axis ", axes[i], " is repeated");
      seen[a] = true;
      begin[a] = pads[i];
      end[a] = pads[na + i];
    }
    Shape out(r);
    for (int64_t k = 0; k < r; ++k) {
      const int64_t dim = x.shape[k];
      // Bounded first so that the sum below cannot overflow.
      RUNNX_CHECK(std::abs(begin[k]) <= kMaxTensorBytes && std::abs(end[k]) <= kMaxTensorBytes,
                  kInvalidArgument, node.label(), ": pads ", shape_str(pads), " are too large");
      out[k] = dim + begin[k] + end[k];
      RUNNX_CHECK(out[k] >= 0, kInvalidArgument, node.label(), ": pads ", shape_str(pads),
                  " remove more than the ", dim, " elements of axis ", k);
      const bool padded = begin[k] > 0 || end[k] > 0;
      RUNNX_CHECK(dim > 0 || !padded || mode_ == PadMode::kConstant, kInvalidArgument, node.label(),
                  ": cannot pad the empty axis ", k, " in this mode");
    }
    const size_t es = element_size(x.dtype, node.label());
    const int64_t numel = shape_numel(out);
    RUNNX_CHECK(numel <= kMaxTensorBytes / static_cast<int64_t>(es), kResourceExhausted,
                node.label(), ": output shape ", shape_str(out), " is too large");
    if (numel == 0) {  // nothing to write (and the maps of the other axes may be huge)
      ctx.allocate_output(0, x.dtype, out);
      return;
    }
    std::vector<std::vector<int64_t>> maps(r);
    for (int64_t k = 0; k < r; ++k) {
      maps[k].resize(out[k]);
      for (int64_t i = 0; i < out[k]; ++i) maps[k][i] = source_index(i - begin[k], x.shape[k]);
    }
    alignas(8) uint8_t fill[8] = {};
    if (mode_ == PadMode::kConstant) {
      const Tensor* cv = from_inputs_ ? ctx.input(2) : nullptr;
      if (cv && cv->numel() > 0) {
        RUNNX_CHECK(cv->dtype == x.dtype && cv->numel() == 1, kInvalidArgument, node.label(),
                    ": constant_value must be one ", dtype_name(x.dtype), " value");
        std::memcpy(fill, cv->data, es);
      } else if (!from_inputs_) {
        cast_scalar(value_, x.dtype, fill, node.label());
      }
    }
    Tensor& y = ctx.allocate_output(0, x.dtype, out);
    copy_by_maps(y.data, x.data, es, out, maps, contiguous_strides(x.shape), fill, ctx.pool());
  }

 private:
  // Where output position j (relative to the input's first element) reads from; -1: the constant.
  int64_t source_index(int64_t j, int64_t dim) const {
    if (j >= 0 && j < dim) return j;
    switch (mode_) {
      case PadMode::kConstant:
        return -1;
      case PadMode::kEdge:
        return j < 0 ? 0 : dim - 1;
      case PadMode::kWrap:
        return ((j % dim) + dim) % dim;
      case PadMode::kReflect: {
        if (dim == 1) return 0;
        // Reflection without repeating the edge has period 2(dim-1), as numpy's reflect.
        const int64_t period = 2 * (dim - 1);
        int64_t m = ((j % period) + period) % period;
        return m < dim ? m : period - m;
      }
    }
    return -1;
  }

  bool from_inputs_;
  int64_t opset_;
  PadMode mode_ = PadMode::kConstant;
  std::vector<int64_t> pads_;
  float value_ = 0;
};

}  // namespace

void register_pad_ops(OpRegistry& r) { r.add("Pad", "", 2, factory<PadKernel>()); }

}  // namespace runnx
