// Test binding for the implicit-GEMM convolution launchers (conv.h).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "common/status.h"
#include "cuda/kernels/conv.h"
#include "cuda/testing/device_array.h"
#include "cuda/testing/gemm_testing.h"

namespace py = pybind11;

namespace runnx::cuda::testing {

namespace {

// x NHWC, w KRSC, y_init NHWC (its shape gives P, Q); spec: stride/pad/dil (h, w), epilogue keys.
// kind: "f32" or "f16". Returns y.
py::array conv(const std::string& kind, const py::array& x, const py::array& w, const py::array& y_init,
               const py::dict& spec) {
  if (x.ndim() != 4 || w.ndim() != 4 || y_init.ndim() != 4)
    throw Error(ErrorKind::kInvalidArgument, "conv: x, w and y must be 4-D (NHWC, KRSC, NHWC)");
  DeviceArray dx = to_device(x), dw = to_device(w), dy = to_device(y_init);
  DeviceArray bias = spec_array(spec, "bias"), residual = spec_array(spec, "residual");
  ConvArgs a;
  a.N = x.shape(0);
  a.H = x.shape(1);
  a.W = x.shape(2);
  a.C = x.shape(3);
  a.K = w.shape(0);
  a.R = w.shape(1);
  a.S = w.shape(2);
  a.P = y_init.shape(1);
  a.Q = y_init.shape(2);
  a.stride_h = spec_get<int64_t>(spec, "stride_h", 1);
  a.stride_w = spec_get<int64_t>(spec, "stride_w", 1);
  a.pad_h = spec_get<int64_t>(spec, "pad_h", 0);
  a.pad_w = spec_get<int64_t>(spec, "pad_w", 0);
  a.dil_h = spec_get<int64_t>(spec, "dil_h", 1);
  a.dil_w = spec_get<int64_t>(spec, "dil_w", 1);
  a.x = dx.as<void>();
  a.w = dw.as<void>();
  a.y = dy.as<void>();
  a.epi = spec_epilogue(spec, bias, residual);
  if (a.epi.residual && a.epi.ldr == 0) a.epi.ldr = a.K;
  a.force_k_splits = spec_get<int32_t>(spec, "split_k", 0);
  DeviceArray workspace;
  if (kind == "f32") {
    launch_conv_f32(a, nullptr);
  } else if (kind == "f16") {
    if (spec_get<bool>(spec, "expect_tensor_cores", false) != conv_f16_uses_tensor_cores(a))
      throw Error(ErrorKind::kInvalidArgument, "conv: the tensor-core choice differs from expect_tensor_cores");
    workspace = DeviceArray(conv_f16_workspace_bytes(a));
    launch_conv_f16(a, nullptr, workspace.as<void>(), workspace.bytes());
  } else {
    throw Error(ErrorKind::kInvalidArgument, "conv: unknown kind " + kind);
  }
  check_launch("conv");
  std::vector<py::ssize_t> shape(y_init.shape(), y_init.shape() + y_init.ndim());
  return to_host(dy, shape, y_init.dtype());
}

}  // namespace

void register_conv_testing(py::module_& m) {
  m.def("conv", &conv, py::arg("kind"), py::arg("x"), py::arg("w"), py::arg("y"), py::arg("spec"));
}

}  // namespace runnx::cuda::testing
