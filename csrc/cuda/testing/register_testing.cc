// runnx._C.cuda._testing: each kernel family registers its launchers here for tests/cuda/.
#include <pybind11/pybind11.h>

namespace runnx::cuda::testing {

// One line per kernel family (each defined in csrc/cuda/testing/<family>_testing.cc).
void register_testing(pybind11::module_& m) {
  (void)m;
}

}  // namespace runnx::cuda::testing
