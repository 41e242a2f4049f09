// runnx._C: the extension module. One register_* function per area keeps this file a table of
// contents; runnx._C._testing holds hooks that only the test suite uses.
#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace runnx {
void register_errors(py::module_& m);
void register_session(py::module_& m);
void register_serving(py::module_& m);
void register_cuda(py::module_& m);
void register_reader_testing(py::module_& m);
void register_kernel_testing(py::module_& m);
void register_pool_testing(py::module_& m);
void register_load_testing(py::module_& m);
}  // namespace runnx

PYBIND11_MODULE(_C, m) {
  m.doc() = "runnx native core";
  runnx::register_errors(m);
  runnx::register_session(m);
  runnx::register_serving(m);
  runnx::register_cuda(m);
  py::module_ testing = m.def_submodule("_testing", "hooks for the test suite only");
  runnx::register_reader_testing(testing);
  runnx::register_kernel_testing(testing);
  runnx::register_pool_testing(testing);
  runnx::register_load_testing(testing);
}
