// Test hooks for runtime internals that are hard to reach through whole models.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <optional>
#include <memory>

#include "common/cpu_features.h"
#include "common/status.h"
#include "common/thread_pool.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/sgemm_avx2.h"
#include "runtime/plan.h"

namespace py = pybind11;

namespace runnx {
namespace {

GemmEpilogue::Act gemm_act(const std::string& act) {
  static const std::map<std::string, GemmEpilogue::Act> acts = {
      {"", GemmEpilogue::Act::kNone}, {"relu", GemmEpilogue::Act::kRelu}, {"clip", GemmEpilogue::Act::kClip},
      {"sigmoid", GemmEpilogue::Act::kSigmoid}, {"tanh", GemmEpilogue::Act::kTanh},
      {"gelu", GemmEpilogue::Act::kGeluErf}, {"gelu_tanh", GemmEpilogue::Act::kGeluTanh},
      {"leaky_relu", GemmEpilogue::Act::kLeakyRelu}, {"hard_swish", GemmEpilogue::Act::kHardSwish}};
  auto it = acts.find(act);
  RUNNX_CHECK(it != acts.end(), kInvalidArgument, "unknown activation '", act, "'");
  return it->second;
}

using F32 = py::array_t<float, py::array::forcecast>;

// The epilogue's bias (length M when per row, else N) and activation, checked.
GemmEpilogue epilogue_of(int64_t M, int64_t N, const std::optional<F32>& bias, bool bias_per_row,
                         const std::string& act, float clip_lo, float clip_hi) {
  GemmEpilogue epi;
  if (bias) {
    RUNNX_CHECK(bias->size() == (bias_per_row ? M : N), kInvalidArgument, "bias length");
    epi.bias = bias->data();
    epi.bias_per_row = bias_per_row;
  }
  epi.act = gemm_act(act);
  epi.clip_lo = clip_lo;
  epi.clip_hi = clip_hi;
  return epi;
}

// Row stride in elements of a 2-D view whose rows are contiguous (at least the row length).
int64_t leading_dim(const py::array& x) {
  RUNNX_CHECK(x.ndim() == 2, kInvalidArgument, "2-D arrays expected");
  RUNNX_CHECK(x.size() == 0 || x.shape(1) <= 1 || x.strides(1) == 4, kInvalidArgument, "rows must be contiguous");
  return std::max<int64_t>(x.shape(0) > 1 ? x.strides(0) / 4 : x.shape(1), x.shape(1));
}

}  // namespace

void register_kernel_testing(py::module_& m) {
  m.def("default_num_threads", &ThreadPool::default_num_threads);

  // C = A @ B + beta * C through one GEMM implementation ("dispatch": what the ops use,
  // "avx2": the AVX2 microkernel directly). A and B may be strided row-major views.
  m.def("gemm_f32", [](F32 a, F32 b, py::array_t<float> c, float beta, int threads, const std::string& impl) {
    RUNNX_CHECK(a.ndim() == 2 && b.ndim() == 2 && c.ndim() == 2, kInvalidArgument, "2-D arrays expected");
    int64_t M = a.shape(0), K = a.shape(1), N = b.shape(1);
    RUNNX_CHECK(b.shape(0) == K && c.shape(0) == M && c.shape(1) == N, kInvalidArgument, "shape mismatch");
    auto contiguous_rows = [](const py::array& x) { return x.size() == 0 || x.shape(1) <= 1 || x.strides(1) == 4; };
    RUNNX_CHECK(contiguous_rows(a) && contiguous_rows(b) && contiguous_rows(c), kInvalidArgument,
                "rows must be contiguous");
    const float* pa = a.data();
    const float* pb = b.data();
    float* pc = c.mutable_data();
    // Empty arrays may report any stride; a leading dimension is at least the row length.
    int64_t lda = std::max<int64_t>(a.strides(0) / 4, K), ldb = std::max<int64_t>(b.strides(0) / 4, N),
            ldc = std::max<int64_t>(c.strides(0) / 4, N);
    ThreadPool pool(threads);
    py::gil_scoped_release nogil;
    if (impl == "avx2") {
      RUNNX_CHECK(cpu_features().has_avx2_fma(), kUnsupportedOp, "this CPU has no AVX2/FMA");
      sgemm_avx2(M, N, K, pa, lda, pb, ldb, pc, ldc, beta, &pool);
    } else {
      gemm_f32(M, N, K, pa, lda, pb, ldb, pc, ldc, beta, &pool);
    }
  });
  m.def("has_avx2", [] { return cpu_features().has_avx2_fma(); });
  // The AVX2 sgemm is in use and runs its 12x16 AVX-512F kernel.
  m.def("uses_avx512", [] { return cpu_features().has_avx2_fma() && sgemm_avx2_uses_avx512(); });
  // Floats this thread keeps for packing an unpacked B (the GEMM packs at most 4 MB at a time).
  m.def("gemm_pack_scratch_floats", &sgemm_avx2_pack_scratch_floats);

  // The GEMM entry points with an epilogue: C = act(A @ B + beta*C + bias + residual).
  // packed: B goes through pack_b_f32 first (given as [N, K] when transposed_b).
  m.def("gemm_f32_ex", [](F32 a, F32 b, py::array_t<float> c, float beta, int threads, bool packed,
                          bool transposed_b, std::optional<F32> bias, bool bias_per_row,
                          std::optional<F32> residual, const std::string& act, float clip_lo, float clip_hi) {
    RUNNX_CHECK(a.ndim() == 2 && b.ndim() == 2 && c.ndim() == 2, kInvalidArgument, "2-D arrays expected");
    const int64_t M = a.shape(0), K = a.shape(1), N = transposed_b ? b.shape(0) : b.shape(1);
    RUNNX_CHECK((transposed_b ? b.shape(1) : b.shape(0)) == K && c.shape(0) == M && c.shape(1) == N,
                kInvalidArgument, "shape mismatch");
    RUNNX_CHECK(!transposed_b || packed, kInvalidArgument, "transposed_b needs packed");
    RUNNX_CHECK(c.flags() & py::array::c_style, kInvalidArgument, "C must be C-contiguous");
    GemmEpilogue epi = epilogue_of(M, N, bias, bias_per_row, act, clip_lo, clip_hi);
    if (residual) {
      RUNNX_CHECK(residual->ndim() == 2 && residual->shape(0) == M && residual->shape(1) == N, kInvalidArgument,
                  "residual shape");
      epi.residual = residual->data();
      epi.ldr = N;
    }
    const float* pa = a.data();
    const float* pb = b.data();
    float* pc = c.mutable_data();
    const int64_t lda = std::max<int64_t>(a.strides(0) / 4, K);
    const int64_t ldb = std::max<int64_t>(b.strides(0) / 4, transposed_b ? K : N);
    ThreadPool pool(threads);
    py::gil_scoped_release nogil;
    if (packed) {
      PackedB pb_packed = pack_b_f32(K, N, pb, ldb, transposed_b);
      gemm_f32_packed(M, pa, lda, pb_packed, pc, N, beta, epi, &pool);
    } else {
      gemm_f32_epilogue(M, N, K, pa, lda, pb, ldb, pc, N, beta, epi, &pool);
    }
  }, py::arg("a"), py::arg("b"), py::arg("c"), py::arg("beta") = 0.f, py::arg("threads") = 1,
     py::arg("packed") = false, py::arg("transposed_b") = false, py::arg("bias") = py::none(),
     py::arg("bias_per_row") = false, py::arg("residual") = py::none(), py::arg("act") = "",
     py::arg("clip_lo") = 0.f, py::arg("clip_hi") = 0.f);

  // Every float32 GEMM entry point with an epilogue on strided views (A, B, C and the residual
  // may all be column slices of larger arrays): mode "epilogue" (B packed on the fly), "packed_b"
  // (pack_b_f32 then gemm_f32_packed) or "packed_a" (pack_a_f32 then gemm_f32_packed_a).
  m.def("gemm_f32_fused", [](F32 a, F32 b, py::array_t<float> c, float beta, int threads, const std::string& mode,
                             std::optional<F32> bias, bool bias_per_row, std::optional<py::array_t<float>> residual,
                             const std::string& act, float clip_lo, float clip_hi, float alpha, float shift) {
    const int64_t M = a.shape(0), K = a.shape(1), N = b.shape(1);
    const int64_t lda = leading_dim(a), ldb = leading_dim(b), ldc = leading_dim(c);
    RUNNX_CHECK(b.shape(0) == K && c.shape(0) == M && c.shape(1) == N, kInvalidArgument, "shape mismatch");
    GemmEpilogue epi = epilogue_of(M, N, bias, bias_per_row, act, clip_lo, clip_hi);
    if (residual) {
      RUNNX_CHECK(residual->shape(0) == M && residual->shape(1) == N, kInvalidArgument, "residual shape");
      epi.ldr = leading_dim(*residual);
      epi.residual = residual->data();
    }
    epi.alpha = alpha;
    epi.shift = shift;
    const float* pa = a.data();
    const float* pb = b.data();
    float* pc = c.mutable_data();
    ThreadPool pool(threads);
    py::gil_scoped_release nogil;
    if (mode == "packed_a") {
      gemm_f32_packed_a(pack_a_f32(M, K, pa, lda), N, pb, ldb, pc, ldc, beta, epi, &pool);
    } else if (mode == "packed_b") {
      gemm_f32_packed(M, pa, lda, pack_b_f32(K, N, pb, ldb, false), pc, ldc, beta, epi, &pool);
    } else {
      RUNNX_CHECK(mode == "epilogue", kInvalidArgument, "unknown mode '", mode, "'");
      gemm_f32_epilogue(M, N, K, pa, lda, pb, ldb, pc, ldc, beta, epi, &pool);
    }
  }, py::arg("a"), py::arg("b"), py::arg("c"), py::arg("beta") = 0.f, py::arg("threads") = 1,
     py::arg("mode") = "epilogue", py::arg("bias") = py::none(), py::arg("bias_per_row") = false,
     py::arg("residual") = py::none(), py::arg("act") = "", py::arg("clip_lo") = 0.f, py::arg("clip_hi") = 0.f,
     py::arg("alpha") = 0.1f, py::arg("shift") = 0.5f);

  // Seconds per C = A @ B of M x N x K timed in C++ on one pool (no Python or pool start-up in
  // the loop): (best, median) over about `seconds`. mode: "plain" (gemm_f32), "packed_b" (B
  // prepacked once, outside the timing) or "packed_a" (A prepacked once, B packed per call).
  m.def("gemm_bench", [](int64_t M, int64_t N, int64_t K, int threads, const std::string& mode, double seconds) {
    RUNNX_CHECK(M > 0 && N > 0 && K > 0, kInvalidArgument, "sizes must be positive");
    RUNNX_CHECK(mode == "plain" || mode == "packed_b" || mode == "packed_a", kInvalidArgument, "unknown mode '",
                mode, "'");
    std::vector<float> a(M * K), b(K * N), c(M * N);
    for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>((i * 7919) % 1000) * 1e-3f - 0.5f;
    for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>((i * 104729) % 1000) * 1e-3f - 0.5f;
    std::vector<double> times;
    {  // the pool and the GIL release end before the tuple is built
      ThreadPool pool(threads);
      py::gil_scoped_release nogil;
      PackedB pb = mode == "packed_b" ? pack_b_f32(K, N, b.data(), N, false) : PackedB{};
      PackedA pa = mode == "packed_a" ? pack_a_f32(M, K, a.data(), K) : PackedA{};
      auto once = [&] {
        if (!pb.empty()) gemm_f32_packed(M, a.data(), K, pb, c.data(), N, 0.f, GemmEpilogue{}, &pool);
        else if (!pa.empty()) gemm_f32_packed_a(pa, N, b.data(), N, c.data(), N, 0.f, GemmEpilogue{}, &pool);
        else gemm_f32(M, N, K, a.data(), K, b.data(), N, c.data(), N, 0.f, &pool);
      };
      once();
      const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
      while (times.size() < 3 || std::chrono::steady_clock::now() < end) {
        auto t0 = std::chrono::steady_clock::now();
        once();
        times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
    }
    std::sort(times.begin(), times.end());
    return py::make_tuple(times.front(), times[times.size() / 2]);
  });

  // Measured fp32 FMA peak (GFLOP/s) with `threads` threads of register-only FMA chains.
  m.def("fma_peak_gflops", [](int threads, double seconds) {
    RUNNX_CHECK(cpu_features().has_avx2_fma(), kUnsupportedOp, "this CPU has no AVX2/FMA");
    ThreadPool pool(threads);
    py::gil_scoped_release nogil;
    return sgemm_avx2_fma_peak_gflops(pool, seconds);
  });
}

}  // namespace runnx
