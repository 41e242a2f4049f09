// Data movement on the device: Transpose, Concat, Slice, Gather, Expand over cudaops' launchers
// (transpose.h, copy.h). Shape-like inputs (Slice bounds, Expand's shape) are read on the host.
#include <algorithm>

#include "cuda/cuda_kernel.h"
#include "cuda/kernels/copy.h"
#include "cuda/kernels/transpose.h"
#include "ops/op_util.h"
#include "ops/slice_bounds.h"

namespace runnx::cuda {
namespace {

std::string any_fixed_size(const CudaNodeInfo& info) {
  for (int k = 0; k < info.num_inputs(); ++k) {
    if (!info.has_input(k)) continue;
    DType d = info.input_dtype(k);
    if (d == DType::kUndefined) return "input " + std::to_string(k) + " has a dtype unknown at load";
    if (d == DType::kString) return "strings have no CUDA kernel";
    if (k == 0 || info.node.op_type == "Concat") {
      size_t bytes = dtype_size(d);
      if (bytes != 1 && bytes != 2 && bytes != 4 && bytes != 8) return "an element size without a CUDA kernel";
    }
  }
  return "";
}

class TransposeKernel : public CudaKernel {
 public:
  explicit TransposeKernel(const CudaNodeInfo& info) : perm_(info.node.get_ints("perm")) {}
  void run(CudaContext& ctx) const override {
    const Tensor& x = ctx.required_input(0);
    std::vector<int64_t> perm = perm_;
    if (perm.empty())
      for (int64_t d = x.rank() - 1; d >= 0; --d) perm.push_back(d);
    RUNNX_CHECK(static_cast<int64_t>(perm.size()) == x.rank(), kInvalidArgument, ctx.node().label(), ": perm ",
                shape_str(perm), " does not match rank ", x.rank());
    std::vector<bool> seen(perm.size(), false);
    Shape out;
    for (int64_t p : perm) {
      RUNNX_CHECK(p >= 0 && p < x.rank() && !seen[p], kInvalidArgument, ctx.node().label(), ": perm ",
                  shape_str(perm), " is not a permutation");
      seen[p] = true;
      out.push_back(x.shape[p]);
    }
    Tensor& y = ctx.allocate_output(0, x.dtype, out);
    if (y.numel() == 0) return;
    launch_transpose(dtype_size(x.dtype), x.data, x.shape, perm, y.data, ctx.stream());
  }

 private:
  std::vector<int64_t> perm_;
};

class ConcatKernel : public CudaKernel {
 public:
  explicit ConcatKernel(const CudaNodeInfo& info) : axis_(info.node.get_int("axis", 0)) {}
  void run(CudaContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& first = ctx.required_input(0);
    const int64_t r = first.rank();
    const int64_t axis = normalize_axis(axis_, r, node);
    Shape out = first.shape;
    out[axis] = 0;
    std::vector<const void*> ptrs;
    std::vector<int64_t> sizes;
    for (int k = 0; k < ctx.num_inputs(); ++k) {
      const Tensor& t = ctx.required_input(k);
      RUNNX_CHECK(t.rank() == r && t.dtype == first.dtype, kInvalidArgument, node.label(), ": input ", k, " ",
                  shape_str(t.shape), " does not match input 0 ", shape_str(first.shape));
      for (int64_t d = 0; d < r; ++d)
        RUNNX_CHECK(d == axis || t.shape[d] == first.shape[d], kInvalidArgument, node.label(), ": input ", k, " ",
                    shape_str(t.shape), " differs from input 0 ", shape_str(first.shape), " off axis ", axis);
      out[axis] += t.shape[axis];
      ptrs.push_back(t.data);
      sizes.push_back(t.shape[axis]);
    }
    Tensor& y = ctx.allocate_output(0, first.dtype, out);
    if (y.numel() == 0) return;
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < r; ++d) (d < axis ? outer : inner) *= d == axis ? 1 : out[d];
    launch_concat(dtype_size(first.dtype), ptrs, sizes, outer, inner, y.data, ctx.stream());
  }

 private:
  int64_t axis_;
};

// Slice from opset 10 (bounds as inputs, read on the host).
class SliceKernel : public CudaKernel {
 public:
  void run(CudaContext& ctx) const override {
    const Node& node = ctx.node();
    const Tensor& x = ctx.required_input(0);
    std::vector<int64_t> starts = tensor_to_i64(ctx.required_input(1)), ends = tensor_to_i64(ctx.required_input(2));
    const size_t n = starts.size();
    std::vector<int64_t> axes, steps;
    if (ctx.input(3)) axes = tensor_to_i64(*ctx.input(3));
    if (ctx.input(4)) steps = tensor_to_i64(*ctx.input(4));
    if (!ctx.input(3))
      for (size_t i = 0; i < n; ++i) axes.push_back(static_cast<int64_t>(i));
    if (steps.empty()) steps.assign(n, 1);
    RUNNX_CHECK(ends.size() == n && axes.size() == n && steps.size() == n, kInvalidArgument, node.label(),
                ": starts, ends, axes and steps must have the same length");
    const SliceWindow w = slice_window(x.shape, starts, ends, axes, steps, node);
    const Shape& out = w.out;
    Tensor& y = ctx.allocate_output(0, x.dtype, out);
    if (y.numel() == 0) return;
    launch_slice(dtype_size(x.dtype), x.data, x.shape, w.first, w.step, y.data, out, ctx.stream());
  }
};

class GatherKernel : public CudaKernel {
 public:
  explicit GatherKernel(const CudaNodeInfo& info) : axis_(info.node.get_int("axis", 0)) {}
  void run(CudaContext& ctx) const override {
    const Tensor& data = ctx.required_input(0);
    const Tensor& idx = ctx.required_input(1);
    const int64_t axis = normalize_axis(axis_, data.rank(), ctx.node());
    Shape out(data.shape.begin(), data.shape.begin() + axis);
    out.insert(out.end(), idx.shape.begin(), idx.shape.end());
    out.insert(out.end(), data.shape.begin() + axis + 1, data.shape.end());
    Tensor& y = ctx.allocate_output(0, data.dtype, out);
    if (y.numel() == 0) return;
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= data.shape[d];
    for (int64_t d = axis + 1; d < data.rank(); ++d) inner *= data.shape[d];
    RUNNX_CHECK(data.shape[axis] > 0, kInvalidArgument, ctx.node().label(), ": gathering from an empty axis");
    launch_gather(dtype_size(data.dtype), data.data, outer, data.shape[axis], inner, idx.data, idx.dtype, idx.numel(),
                  y.data, ctx.error_flag(), ctx.stream());
  }

 private:
  int64_t axis_;
};

class ExpandKernel : public CudaKernel {
 public:
  void run(CudaContext& ctx) const override {
    const Tensor& x = ctx.required_input(0);
    Shape target = tensor_to_i64(ctx.required_input(1));
    Shape out = broadcast_shapes({&x.shape, &target}, ctx.node());
    Tensor& y = ctx.allocate_output(0, x.dtype, out);
    if (y.numel() == 0) return;
    launch_expand(dtype_size(x.dtype), x.data, x.shape, y.data, out, ctx.stream());
  }
};

}  // namespace

void register_cuda_data_ops(CudaOpRegistry& r) {
  r.add(make_schema("Transpose", 1, any_fixed_size, [](const CudaNodeInfo& i) { return std::make_unique<TransposeKernel>(i); }));
  r.add(make_schema("Concat", 4, any_fixed_size, [](const CudaNodeInfo& i) { return std::make_unique<ConcatKernel>(i); }));
  CudaOpSchema slice = make_schema("Slice", 10, any_fixed_size, [](const CudaNodeInfo&) { return std::make_unique<SliceKernel>(); });
  slice.host_inputs = {1, 2, 3, 4};
  r.add(std::move(slice));
  r.add(make_schema(
      "Gather", 1,
      [](const CudaNodeInfo& info) {
        DType i = info.input_dtype(1);
        if (i != DType::kI64 && i != DType::kI32) return std::string("indices of a dtype unknown at load");
        return any_fixed_size(info);
      },
      [](const CudaNodeInfo& i) { return std::make_unique<GatherKernel>(i); }));
  CudaOpSchema expand = make_schema("Expand", 8, any_fixed_size, [](const CudaNodeInfo&) { return std::make_unique<ExpandKernel>(); });
  expand.host_inputs = {1};
  r.add(std::move(expand));
}

}  // namespace runnx::cuda
