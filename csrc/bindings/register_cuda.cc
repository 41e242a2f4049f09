// runnx._C.cuda: what the CUDA provider can see. Present in every build; a CPU-only build
// (RUNNX_CUDA=OFF) reports built=False and no devices.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "bindings/device_value.h"
#include "bindings/numpy_tensor.h"
#include "common/status.h"

#ifdef RUNNX_WITH_CUDA
#include <cuda_runtime.h>

#include "cuda/device.h"
#include "cuda/device_memory.h"

namespace runnx::cuda::testing {
void register_testing(pybind11::module_& m);
}
#endif

namespace py = pybind11;

namespace runnx {

void register_cuda(py::module_& m) {
  py::module_ cuda = m.def_submodule("cuda", "the CUDA provider's view of this machine");
#ifdef RUNNX_WITH_CUDA
  cuda.attr("built") = true;
  cuda.def("device_count", &cuda::device_count, "devices that answer (0 without GPU or driver)");
  cuda.def("unavailable_reason", &cuda::unavailable_reason);
  cuda.def("describe_device", &cuda::describe_device, py::arg("index") = 0);
  cuda.def("self_test", &cuda::self_test, py::arg("index") = 0, py::call_guard<py::gil_scoped_release>());
  cuda.def("to_host", [](const DeviceValue& d) {
    // A host copy of a device output (IOBinding's copy_outputs_to_cpu, OrtValue.numpy()).
    Tensor h = Tensor::empty(d.placed.tensor.dtype, d.placed.tensor.shape);
    if (size_t n = h.nbytes()) {
      py::gil_scoped_release nogil;
      cuda::check_cuda(cudaSetDevice(d.placed.device_id), "cudaSetDevice");
      cuda::check_cuda(cudaMemcpy(h.data, d.placed.tensor.data, n, cudaMemcpyDeviceToHost), "copying an output to the host");
    }
    return to_numpy(std::move(h));
  });
  cuda.def("to_device", [](py::array a, int device_id) {
    // A device copy of a host array (OrtValue.ortvalue_from_numpy(x, "cuda", id)).
    a = py::array::ensure(a, py::array::c_style);
    PlacedTensor p;
    p.device = DeviceKind::kCUDA;
    p.device_id = device_id;
    Shape shape(a.shape(), a.shape() + a.ndim());
    DType dtype = dtype_from_numpy(a.dtype(), "array");
    RUNNX_CHECK(device_id >= 0 && device_id < cuda::device_count(), kInvalidArgument, "CUDA device ", device_id,
                " does not exist (", cuda::device_count(), " device(s) answer)");
    {
      py::gil_scoped_release nogil;
      cuda::check_cuda(cudaSetDevice(device_id), "cudaSetDevice");
      p.tensor = cuda::device_tensor(dtype, shape);
      if (size_t n = p.tensor.nbytes())
        cuda::check_cuda(cudaMemcpy(p.tensor.data, a.data(), n, cudaMemcpyHostToDevice), "copying an array to the device");
    }
    return DeviceValue{std::move(p)};
  }, py::arg("array"), py::arg("device_id") = 0);
  py::module_ testing = cuda.def_submodule("_testing", "kernel launchers for tests/cuda only");
  cuda::testing::register_testing(testing);
#else
  cuda.attr("built") = false;
  cuda.def("device_count", [] { return 0; });
  cuda.def("unavailable_reason", [] { return std::string("runnx was built without CUDA (RUNNX_CUDA=OFF or no nvcc)"); });
  cuda.def("describe_device", [](int) { return std::string(); }, py::arg("index") = 0);
  cuda.def("to_host", [](const DeviceValue&) -> py::object {
    throw Error(ErrorKind::kInvalidArgument, "runnx was built without CUDA: there is no device memory to read");
  });
  cuda.def("to_device", [](py::object, int) -> py::object {
    throw Error(ErrorKind::kInvalidArgument, "runnx was built without CUDA: there is no device to copy to");
  }, py::arg("array"), py::arg("device_id") = 0);
#endif
}

}  // namespace runnx
