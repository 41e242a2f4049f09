// runnx._C.cuda._testing: Softmax (softmax.h) and LayerNorm (layernorm.h) on numpy arrays.
#include "cuda/kernels/layernorm.h"
#include "cuda/kernels/softmax.h"
#include "cuda/testing/kernel_args.h"

namespace py = pybind11;

namespace runnx::cuda::testing {
namespace {

// Softmax of x along `axis` (viewed as [outer, axis_len, inner]).
py::array softmax(const py::array& x, int64_t axis, bool log_softmax, bool in_place) {
  const std::vector<int64_t> dims = dims_of(x);
  const int64_t rank = static_cast<int64_t>(dims.size());
  if (axis < 0) axis += rank;
  if (axis < 0 || axis >= rank) throw Error(ErrorKind::kInvalidArgument, "testing: bad axis");
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= dims[d];
  for (int64_t d = axis + 1; d < rank; ++d) inner *= dims[d];
  const DType t = dtype_of(x);
  OffsetArray dx = to_device_at(x, 0);
  OffsetArray dy = in_place ? OffsetArray{} : device_output(dims, t, 0);
  launch_softmax(t, dx.ptr(), in_place ? dx.ptr() : dy.ptr(), outer, dims[axis], inner, log_softmax, nullptr);
  return to_host_at(in_place ? dx : dy, dims, t);
}

// Returns (y, sum_out or None, mean, inv_std) for x normalised over its last `norm_dims` dims.
py::tuple layernorm(const py::array& x, const py::object& residual, const py::array& scale, const py::object& bias,
                    int64_t norm_dims, float epsilon, bool want_sum, bool y_aliases_x) {
  const std::vector<int64_t> dims = dims_of(x);
  const DType t = dtype_of(x);
  LayerNormArgs a;
  a.cols = 1;
  for (size_t d = dims.size() - norm_dims; d < dims.size(); ++d) a.cols *= dims[d];
  a.rows = a.cols ? numel(dims) / a.cols : 0;
  a.epsilon = epsilon;
  OffsetArray dx = to_device_at(x, 0), dscale = to_device_at(scale, 0), dres, dbias;
  if (!residual.is_none()) dres = to_device_at(residual.cast<py::array>(), 0);
  if (!bias.is_none()) dbias = to_device_at(bias.cast<py::array>(), 0);
  OffsetArray dy = device_output(dims, t, 0), dsum = device_output(dims, t, 0);
  OffsetArray dmean = device_output({a.rows}, DType::kF32, 0), dinv = device_output({a.rows}, DType::kF32, 0);
  a.x = dx.ptr();
  a.residual = residual.is_none() ? nullptr : dres.ptr();
  a.scale = dscale.ptr();
  a.bias = bias.is_none() ? nullptr : dbias.ptr();
  a.y = y_aliases_x ? dx.ptr() : dy.ptr();
  a.sum_out = want_sum ? dsum.ptr() : nullptr;
  a.mean = dmean.ptr<float>();
  a.inv_std = dinv.ptr<float>();
  launch_layernorm(t, a, nullptr);
  py::object sum = want_sum ? py::object(to_host_at(dsum, dims, t)) : py::object(py::none());
  return py::make_tuple(to_host_at(y_aliases_x ? dx : dy, dims, t), sum, to_host_at(dmean, {a.rows}, DType::kF32),
                        to_host_at(dinv, {a.rows}, DType::kF32));
}

}  // namespace

void register_rownorm_testing(py::module_& m) {
  m.def("softmax", &softmax, py::arg("x"), py::arg("axis") = -1, py::arg("log") = false, py::arg("in_place") = false);
  m.def("layernorm", &layernorm, py::arg("x"), py::arg("residual"), py::arg("scale"), py::arg("bias"),
        py::arg("norm_dims") = 1, py::arg("epsilon") = 1e-5f, py::arg("want_sum") = false,
        py::arg("y_aliases_x") = false);
}

}  // namespace runnx::cuda::testing
