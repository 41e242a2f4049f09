// runnx._C.cuda._testing: the quantize launchers (quantize.h) on numpy arrays.
#include "cuda/kernels/quantize.h"
#include "cuda/testing/kernel_args.h"

namespace py = pybind11;

namespace runnx::cuda::testing {
namespace {

// x viewed as [outer, scale.size, inner] around `axis` (scale of one element: per tensor).
void layout(const std::vector<int64_t>& dims, int64_t scale_size, int64_t axis, int64_t& axis_len, int64_t& inner) {
  axis_len = scale_size;
  inner = 1;
  if (scale_size == 1) return;
  for (size_t d = static_cast<size_t>(axis) + 1; d < dims.size(); ++d) inner *= dims[d];
}

py::array quantize_linear(const py::array& x, const py::array& scale, const py::array& zero, int64_t axis) {
  const DType qt = dtype_of(zero);
  const std::vector<int64_t> dims = dims_of(x);
  int64_t axis_len, inner;
  layout(dims, scale.size(), axis, axis_len, inner);
  OffsetArray dx = to_device_at(x, 0), ds = to_device_at(scale, 0), dz = to_device_at(zero, 0);
  OffsetArray dy = device_output(dims, qt, 0);
  launch_quantize_linear(dx.ptr<float>(), ds.ptr<float>(), dz.ptr(), qt, dy.ptr(), numel(dims), axis_len, inner,
                         nullptr);
  return to_host_at(dy, dims, qt);
}

py::array dequantize_linear(const py::array& x, const py::array& scale, const py::array& zero, int64_t axis) {
  const std::vector<int64_t> dims = dims_of(x);
  int64_t axis_len, inner;
  layout(dims, scale.size(), axis, axis_len, inner);
  OffsetArray dx = to_device_at(x, 0), ds = to_device_at(scale, 0), dz = to_device_at(zero, 0);
  OffsetArray dy = device_output(dims, DType::kF32, 0);
  launch_dequantize_linear(dx.ptr(), dtype_of(x), ds.ptr<float>(), dz.ptr(), dy.ptr<float>(), numel(dims), axis_len,
                           inner, nullptr);
  return to_host_at(dy, dims, DType::kF32);
}

// acc int32 [rows, cols]; bias int32 [cols] or [1]; b_scale float32 [cols] or [1]; the rest scalars.
py::array requantize(const py::array& acc, const py::array& bias, const py::array& a_scale, const py::array& b_scale,
                     const py::array& y_scale, const py::array& y_zero) {
  const std::vector<int64_t> dims = dims_of(acc);
  const DType qt = dtype_of(y_zero);
  OffsetArray da = to_device_at(acc, 0), db = to_device_at(bias, 0), das = to_device_at(a_scale, 0);
  OffsetArray dbs = to_device_at(b_scale, 0), dys = to_device_at(y_scale, 0), dyz = to_device_at(y_zero, 0);
  OffsetArray dy = device_output(dims, qt, 0);
  RequantizeArgs r;
  r.acc = da.ptr<int32_t>();
  r.bias = bias.size() ? db.ptr<int32_t>() : nullptr;
  r.bias_stride = bias.size() > 1 ? 1 : 0;
  r.a_scale = das.ptr<float>();
  r.b_scale = dbs.ptr<float>();
  r.b_scale_stride = b_scale.size() > 1 ? 1 : 0;
  r.y_scale = dys.ptr<float>();
  r.y_zero = dyz.ptr();
  r.qtype = qt;
  r.y = dy.ptr();
  r.rows = dims.at(0);
  r.cols = dims.at(1);
  launch_requantize(r, nullptr);
  return to_host_at(dy, dims, qt);
}

}  // namespace

void register_quant_testing(py::module_& m) {
  m.def("quantize_linear", &quantize_linear, py::arg("x"), py::arg("scale"), py::arg("zero"), py::arg("axis") = 1);
  m.def("dequantize_linear", &dequantize_linear, py::arg("x"), py::arg("scale"), py::arg("zero"), py::arg("axis") = 1);
  m.def("requantize", &requantize, py::arg("acc"), py::arg("bias"), py::arg("a_scale"), py::arg("b_scale"),
        py::arg("y_scale"), py::arg("y_zero"));
}

}  // namespace runnx::cuda::testing
