// Test bindings for the GEMM launchers (gemm.h, gemm_int8.h) plus the timing hooks and peak
// probes bench/gpu_check.sh uses. Each binding takes the operands as flat numpy buffers and a
// dict of sizes / leading dimensions / strides, so tests can exercise any layout.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstring>
#include <string>
#include <vector>

#include <cuda_fp16.h>

#include "common/status.h"
#include "cuda/kernels/gemm.h"
#include "cuda/kernels/gemm_int8.h"
#include "cuda/kernels/gemm_peak.h"
#include "cuda/testing/device_array.h"
#include "cuda/testing/gemm_testing.h"

namespace py = pybind11;

namespace runnx::cuda::testing {

namespace {

// Sizes, leading dimensions (default: packed) and batch strides from the spec; B is read as
// B^T [N][K] when `b_transposed`.
void fill_operands(const py::dict& s, bool b_transposed, GemmOperands& g) {
  g.M = spec_get<int64_t>(s, "M", 0);
  g.N = spec_get<int64_t>(s, "N", 0);
  g.K = spec_get<int64_t>(s, "K", 0);
  g.lda = spec_get<int64_t>(s, "lda", g.K);
  g.ldb = spec_get<int64_t>(s, "ldb", b_transposed ? g.K : g.N);
  g.ldc = spec_get<int64_t>(s, "ldc", g.N);
  g.batch_outer = spec_get<int64_t>(s, "batch_outer", 1);
  g.batch_inner = spec_get<int64_t>(s, "batch_inner", 1);
  g.a_outer = spec_get<int64_t>(s, "a_outer", 0);
  g.a_inner = spec_get<int64_t>(s, "a_inner", 0);
  g.b_outer = spec_get<int64_t>(s, "b_outer", 0);
  g.b_inner = spec_get<int64_t>(s, "b_inner", 0);
  g.c_outer = spec_get<int64_t>(s, "c_outer", 0);
  g.c_inner = spec_get<int64_t>(s, "c_inner", 0);
}

// kind: "f32", "f16" (fp16 out), "f16_f32out", "f16_simt", "f16_simt_f32out". `c` is the initial
// output buffer (elements the GEMM must not touch keep their values); returns the new buffer.
py::array gemm(const std::string& kind, const py::array& a, const py::array& b, const py::array& c,
               const py::dict& spec) {
  DeviceArray da = to_device(a), db = to_device(b), dc = to_device(c);
  DeviceArray bias = spec_array(spec, "bias"), residual = spec_array(spec, "residual");
  GemmArgs g;
  g.trans_b = spec_get<bool>(spec, "trans_b", false);
  fill_operands(spec, g.trans_b, g);
  g.A = da.as<void>();
  g.B = db.as<void>();
  g.C = dc.as<void>();
  g.epi = spec_epilogue(spec, bias, residual);
  // split_k > 1 forces split-K on the tensor-core path (the workspace must then be non-empty).
  g.force_k_splits = spec_get<int32_t>(spec, "split_k", 0);
  const bool f32_out = kind.find("f32out") != std::string::npos;
  if (kind == "f32") {
    launch_gemm_f32(g, nullptr);
  } else if (kind == "f16" || kind == "f16_f32out") {
    DeviceArray workspace(gemm_f16_workspace_bytes(g));
    if (g.force_k_splits > 1 && gemm_f16_uses_tensor_cores(g) && workspace.bytes() == 0)
      throw Error(ErrorKind::kInvalidArgument, "gemm: split_k was requested but needs no workspace");
    launch_gemm_f16(g, f32_out, nullptr, workspace.as<void>(), workspace.bytes());
    check_launch("gemm");
    std::vector<py::ssize_t> shape(c.shape(), c.shape() + c.ndim());
    return to_host(dc, shape, c.dtype());  // before the workspace is freed
  } else if (kind == "f16_simt" || kind == "f16_simt_f32out") {
    launch_gemm_f16_simt(g, f32_out, nullptr);
  } else {
    throw Error(ErrorKind::kInvalidArgument, "gemm: unknown kind " + kind);
  }
  check_launch("gemm");
  std::vector<py::ssize_t> shape(c.shape(), c.shape() + c.ndim());
  return to_host(dc, shape, c.dtype());
}

bool gemm_f16_tensor_cores(const py::dict& spec, size_t a_offset_bytes) {
  GemmArgs g;
  g.trans_b = spec_get<bool>(spec, "trans_b", false);
  fill_operands(spec, g.trans_b, g);
  g.A = reinterpret_cast<const void*>(256 + a_offset_bytes);  // alignment is all that is looked at
  g.B = reinterpret_cast<const void*>(256);
  return gemm_f16_uses_tensor_cores(g);
}

// out: "int32", "float", "int8", "uint8". Zero points / scales / bias come as arrays in `spec`.
py::array gemm_int8(const py::array& a, const py::array& b, const py::array& c, const py::dict& spec) {
  DeviceArray da = to_device(a), db = to_device(b), dc = to_device(c);
  DeviceArray a_zero = spec_array(spec, "a_zero"), b_zero = spec_array(spec, "b_zero");
  DeviceArray a_scale = spec_array(spec, "a_scale"), b_scale = spec_array(spec, "b_scale");
  DeviceArray y_scale = spec_array(spec, "y_scale"), y_zero = spec_array(spec, "y_zero");
  DeviceArray bias = spec_array(spec, "bias");
  GemmInt8Args q;
  fill_operands(spec, true, q);
  q.A = da.as<void>();
  q.B = db.as<void>();
  q.C = dc.as<void>();
  q.a_unsigned = spec_get<bool>(spec, "a_unsigned", false);
  q.b_unsigned = spec_get<bool>(spec, "b_unsigned", false);
  const std::string out = spec_get<std::string>(spec, "out", "int32");
  q.out = out == "float" ? Int8Output::kFloat
          : out == "int8" ? Int8Output::kInt8
          : out == "uint8" ? Int8Output::kUInt8
                           : Int8Output::kInt32;
  q.a_zero = ptr_or_null(a_zero);
  q.b_zero = ptr_or_null(b_zero);
  q.b_zero_stride = spec_get<int64_t>(spec, "b_zero_stride", 0);
  q.a_scale = static_cast<const float*>(ptr_or_null(a_scale));
  q.b_scale = static_cast<const float*>(ptr_or_null(b_scale));
  q.b_scale_stride = spec_get<int64_t>(spec, "b_scale_stride", 0);
  q.y_scale = static_cast<const float*>(ptr_or_null(y_scale));
  q.y_zero = ptr_or_null(y_zero);
  q.bias = static_cast<const float*>(ptr_or_null(bias));
  q.act = static_cast<Activation>(spec_get<int>(spec, "act", 0));
  q.p0 = spec_get<float>(spec, "p0", 0.f);
  q.p1 = spec_get<float>(spec, "p1", 0.f);
  if (spec_get<bool>(spec, "expect_tensor_cores", false) && !gemm_int8_uses_tensor_cores(q))
    throw Error(ErrorKind::kInvalidArgument, "gemm_int8: these arguments do not take the tensor-core path");
  DeviceArray workspace(gemm_int8_workspace_bytes(q));
  launch_gemm_int8(q, workspace.as<void>(), nullptr);
  check_launch("gemm_int8");
  std::vector<py::ssize_t> shape_c(c.shape(), c.shape() + c.ndim());
  return to_host(dc, shape_c, c.dtype());
}

// Uniform values in [-1, 1) (fp32 / fp16 by element size) or random bytes (int8): timing on zeros
// would flatter the tensor cores (less switching power, higher clocks).
void fill_random(DeviceArray& d, size_t elem) {
  const size_t n = d.bytes() / elem;
  std::vector<unsigned char> host(d.bytes());
  uint32_t state = 12345;
  auto next = [&state] { return state = state * 1664525u + 1013904223u; };
  for (size_t i = 0; i < n; ++i) {
    const float u = static_cast<float>(next() >> 8) / 16777216.f * 2.f - 1.f;
    if (elem == 4) {
      std::memcpy(&host[i * 4], &u, 4);
    } else if (elem == 2) {
      const __half h = __float2half(u);
      std::memcpy(&host[i * 2], &h, 2);
    } else {
      host[i] = static_cast<unsigned char>(next() >> 24);
    }
  }
  if (!host.empty()) check_cuda(cudaMemcpy(d.as<void>(), host.data(), host.size(), cudaMemcpyHostToDevice), "cudaMemcpy");
}

// Milliseconds per C = A*B of M x N x K (A row-major, B^T for int8, B [K][N] otherwise) on
// device-resident operands; kind "f16" (fp16 out, tensor cores), "f32", "int8" (int32 out).
double time_gemm(const std::string& kind, int64_t M, int64_t N, int64_t K, int iters) {
  const size_t elem = kind == "f32" ? 4 : kind == "int8" ? 1 : 2;
  const size_t out_elem = kind == "f16" ? 2 : 4;
  DeviceArray a(static_cast<size_t>(M * K) * elem), b(static_cast<size_t>(K * N) * elem),
      c(static_cast<size_t>(M * N) * out_elem);
  fill_random(a, elem);
  fill_random(b, elem);
  GemmOperands ops;  // packed row-major; B as B^T [N][K] for int8, [K][N] otherwise
  ops.M = M;
  ops.N = N;
  ops.K = K;
  ops.A = a.as<void>();
  ops.lda = K;
  ops.B = b.as<void>();
  ops.ldb = kind == "int8" ? K : N;
  ops.C = c.as<void>();
  ops.ldc = N;
  if (kind == "int8") {
    GemmInt8Args q;
    static_cast<GemmOperands&>(q) = ops;
    return time_launches(iters, [&] { launch_gemm_int8(q, nullptr, nullptr); });
  }
  GemmArgs g;
  static_cast<GemmOperands&>(g) = ops;
  if (kind == "f32") return time_launches(iters, [&] { launch_gemm_f32(g, nullptr); });
  if (kind == "f16") {
    DeviceArray workspace(gemm_f16_workspace_bytes(g));  // split-K where the launcher wants it
    return time_launches(iters, [&] { launch_gemm_f16(g, false, nullptr, workspace.as<void>(), workspace.bytes()); });
  }
  throw Error(ErrorKind::kInvalidArgument, "time_gemm: unknown kind " + kind);
}

// Tensor-core peak in TFLOP/s (2 flops per multiply-add) measured by the mma.sync probe.
double peak_mma(const std::string& kind, int iters) {
  int device = 0, sms = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute");
  const int blocks = sms * 8;
  DeviceArray sink(static_cast<size_t>(blocks) * 4);
  const bool int8 = kind == "int8";
  if (!int8 && kind != "f16") throw Error(ErrorKind::kInvalidArgument, "peak_mma: kind is f16 or int8");
  const double ms = time_launches(1, [&] {
    if (int8)
      launch_mma_peak_s8(blocks, iters, sink.as<int32_t>(), nullptr);
    else
      launch_mma_peak_f16(blocks, iters, sink.as<float>(), nullptr);
  });
  const double macs_per_mma = int8 ? 16.0 * 8 * 32 : 16.0 * 8 * 16;
  const double mmas = static_cast<double>(blocks) * (kPeakThreads / 32) * iters * kPeakChains;
  return 2.0 * mmas * macs_per_mma / (ms * 1e-3) / 1e12;
}

}  // namespace

void register_gemm_testing(py::module_& m) {
  m.def("gemm", &gemm, py::arg("kind"), py::arg("a"), py::arg("b"), py::arg("c"), py::arg("spec"));
  m.def("gemm_f16_uses_tensor_cores", &gemm_f16_tensor_cores, py::arg("spec"), py::arg("a_offset_bytes") = 0);
  m.def("gemm_int8", &gemm_int8, py::arg("a"), py::arg("b"), py::arg("c"), py::arg("spec"));
  m.def("time_gemm", &time_gemm, py::arg("kind"), py::arg("M"), py::arg("N"), py::arg("K"), py::arg("iters") = 20);
  // The names bench/gpu_bench.py looks for.
  for (const char* kind : {"f16", "f32", "i8"}) {
    const std::string k = std::string(kind) == "i8" ? "int8" : kind;
    m.def(("time_gemm_" + std::string(kind)).c_str(),
          [k](int64_t M, int64_t N, int64_t K, int iters) { return time_gemm(k, M, N, K, iters); }, py::arg("M"),
          py::arg("N"), py::arg("K"), py::arg("iters") = 20);
  }
  m.def("peak_mma", &peak_mma, py::arg("kind") = "f16", py::arg("iters") = 1024);
  m.def("tensor_core_peak_tflops", [] { return peak_mma("f16", 1024); });
}

}  // namespace runnx::cuda::testing
