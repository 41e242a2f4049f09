// Test binding for the fused attention launchers (attention.h).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "common/status.h"
#include "cuda/kernels/attention.h"
#include "cuda/testing/device_array.h"
#include "cuda/testing/gemm_testing.h"

namespace py = pybind11;

namespace runnx::cuda::testing {

namespace {

Strides4 spec_strides(const py::dict& spec, const char* key) {
  Strides4 s;
  if (!spec.contains(key) || spec[key].is_none()) return s;
  const auto v = spec[key].cast<std::vector<int64_t>>();
  if (v.size() != 4) throw Error(ErrorKind::kInvalidArgument, std::string("attention: ") + key + " needs 4 strides");
  s.b = v[0];
  s.h = v[1];
  s.s = v[2];
  s.d = v[3];
  return s;
}

// q, k, v, mask: flat buffers read through the strides in spec (q_st, k_st, v_st, o_st, mask_st),
// sizes B, heads, S, Sk, D, Dv and scale; o_init is the output buffer. kind: "f32" or "f16".
py::array attention(const std::string& kind, const py::array& q, const py::array& k, const py::array& v,
                    const py::array& o_init, const py::dict& spec) {
  DeviceArray dq = to_device(q), dk = to_device(k), dv = to_device(v), dout = to_device(o_init);
  DeviceArray mask = spec_array(spec, "mask");
  AttentionArgs a;
  a.B = spec_get<int64_t>(spec, "B", 0);
  a.heads = spec_get<int64_t>(spec, "heads", 0);
  a.S = spec_get<int64_t>(spec, "S", 0);
  a.Sk = spec_get<int64_t>(spec, "Sk", 0);
  a.D = spec_get<int64_t>(spec, "D", 0);
  a.Dv = spec_get<int64_t>(spec, "Dv", 0);
  a.scale = spec_get<float>(spec, "scale", 1.f);
  a.q = dq.as<void>();
  a.k = dk.as<void>();
  a.v = dv.as<void>();
  a.o = dout.as<void>();
  a.mask = ptr_or_null(mask);
  a.q_st = spec_strides(spec, "q_st");
  a.k_st = spec_strides(spec, "k_st");
  a.v_st = spec_strides(spec, "v_st");
  a.o_st = spec_strides(spec, "o_st");
  a.mask_st = spec_strides(spec, "mask_st");
  if (kind == "f32")
    launch_attention_f32(a, nullptr);
  else if (kind == "f16")
    launch_attention_f16(a, nullptr);
  else
    throw Error(ErrorKind::kInvalidArgument, "attention: unknown kind " + kind);
  check_launch("attention");
  std::vector<py::ssize_t> shape(o_init.shape(), o_init.shape() + o_init.ndim());
  return to_host(dout, shape, o_init.dtype());
}

}  // namespace

void register_attention_testing(py::module_& m) {
  m.def("attention", &attention, py::arg("kind"), py::arg("q"), py::arg("k"), py::arg("v"), py::arg("o"),
        py::arg("spec"));
}

}  // namespace runnx::cuda::testing
