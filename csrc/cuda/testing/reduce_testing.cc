// runnx._C.cuda._testing: reductions (reduce.h) and pooling (pool.h) on numpy arrays.
#include <map>

#include "cuda/kernels/pool.h"
#include "cuda/kernels/reduce.h"
#include "cuda/testing/kernel_args.h"

namespace py = pybind11;

namespace runnx::cuda::testing {
namespace {

// Reduces x over `axes`; the result keeps the reduced dims as size 1 (keepdims=1).
py::array reduce(const std::string& name, const py::array& x, const std::vector<int64_t>& axes) {
  static const std::map<std::string, ReduceOp> ops = {
      {"sum", ReduceOp::kSum}, {"mean", ReduceOp::kMean}, {"max", ReduceOp::kMax}, {"min", ReduceOp::kMin},
      {"prod", ReduceOp::kProd}, {"sum_square", ReduceOp::kSumSquare}, {"l1", ReduceOp::kL1},
      {"l2", ReduceOp::kL2}, {"log_sum", ReduceOp::kLogSum}};
  auto it = ops.find(name);
  if (it == ops.end()) throw Error(ErrorKind::kInvalidArgument, "testing: unknown reduction " + name);
  const std::vector<int64_t> dims = dims_of(x);
  std::vector<int64_t> out_dims = dims;
  const int64_t rank = static_cast<int64_t>(dims.size());
  for (int64_t a : axes)
    if (a >= -rank && a < rank) out_dims[a < 0 ? a + rank : a] = 1;
  const DType t = dtype_of(x);
  OffsetArray dx = to_device_at(x, 0), dy = device_output(out_dims, t, 0);
  launch_reduce(it->second, t, dx.ptr(), dims, axes, dy.ptr(), nullptr);
  return to_host_at(dy, out_dims, t);
}

// x in `layout` ("nchw" or "nhwc"); kernel, strides, dilations (h, w); pads (top, left, bottom,
// right); the output size comes from ceil_mode as ONNX defines it.
py::array pool2d(const std::string& kind, const py::array& x, const std::string& layout,
                 const std::vector<int64_t>& kernel, const std::vector<int64_t>& strides,
                 const std::vector<int64_t>& dilations, const std::vector<int64_t>& pads, bool ceil_mode,
                 bool count_include_pad) {
  Pool2dParams p;
  p.layout = layout == "nhwc" ? Layout::kNHWC : Layout::kNCHW;
  const std::vector<int64_t> d = dims_of(x);
  p.n = d[0];
  p.c = p.layout == Layout::kNHWC ? d[3] : d[1];
  p.h = p.layout == Layout::kNHWC ? d[1] : d[2];
  p.w = p.layout == Layout::kNHWC ? d[2] : d[3];
  p.kernel_h = kernel[0], p.kernel_w = kernel[1];
  p.stride_h = strides[0], p.stride_w = strides[1];
  p.dilation_h = dilations[0], p.dilation_w = dilations[1];
  p.pad_top = pads[0], p.pad_left = pads[1], p.pad_bottom = pads[2], p.pad_right = pads[3];
  p.count_include_pad = count_include_pad;
  auto out_size = [&](int64_t in, int64_t k, int64_t s, int64_t dil, int64_t pb, int64_t pe) {
    const int64_t span = in + pb + pe - ((k - 1) * dil + 1);
    int64_t o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (o - 1) * s >= in + pb) --o;  // the last window must start inside the image or left pad
    return o;
  };
  p.out_h = out_size(p.h, p.kernel_h, p.stride_h, p.dilation_h, p.pad_top, p.pad_bottom);
  p.out_w = out_size(p.w, p.kernel_w, p.stride_w, p.dilation_w, p.pad_left, p.pad_right);
  const std::vector<int64_t> out_dims =
      p.layout == Layout::kNHWC ? std::vector<int64_t>{p.n, p.out_h, p.out_w, p.c}
                                : std::vector<int64_t>{p.n, p.c, p.out_h, p.out_w};
  const DType t = dtype_of(x);
  OffsetArray dx = to_device_at(x, 0), dy = device_output(out_dims, t, 0);
  launch_pool2d(kind == "max" ? PoolKind::kMax : PoolKind::kAverage, t, p, dx.ptr(), dy.ptr(), nullptr);
  return to_host_at(dy, out_dims, t);
}

}  // namespace

void register_reduce_testing(py::module_& m) {
  m.def("reduce", &reduce, py::arg("op"), py::arg("x"), py::arg("axes"));
  m.def("pool2d", &pool2d, py::arg("kind"), py::arg("x"), py::arg("layout"), py::arg("kernel"), py::arg("strides"),
        py::arg("dilations"), py::arg("pads"), py::arg("ceil_mode") = false, py::arg("count_include_pad") = false);
}

}  // namespace runnx::cuda::testing
