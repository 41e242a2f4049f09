// runnx._C.cuda._testing: each kernel family registers its launchers here for tests/cuda/.
#include <pybind11/pybind11.h>

namespace runnx::cuda::testing {

void register_elementwise_testing(pybind11::module_& m);
void register_rownorm_testing(pybind11::module_& m);
void register_reduce_testing(pybind11::module_& m);
void register_copy_testing(pybind11::module_& m);
void register_image_testing(pybind11::module_& m);

void register_gemm_testing(pybind11::module_& m);
void register_conv_testing(pybind11::module_& m);
void register_attention_testing(pybind11::module_& m);
void register_quant_testing(pybind11::module_& m);

// One line per kernel family (each defined in csrc/cuda/testing/<family>_testing.cc).
void register_testing(pybind11::module_& m) {
  (void)m;
  register_gemm_testing(m);
  register_conv_testing(m);
  register_attention_testing(m);
  register_elementwise_testing(m);
  register_rownorm_testing(m);
  register_reduce_testing(m);
  register_copy_testing(m);
  register_image_testing(m);
  register_quant_testing(m);
}

}  // namespace runnx::cuda::testing
