// Test hooks for runtime internals that are hard to reach through whole models.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <memory>

#include "common/cpu_features.h"
#include "common/status.h"
#include "common/thread_pool.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/sgemm_avx2.h"
#include "runtime/plan.h"

namespace py = pybind11;

namespace runnx {

void register_kernel_testing(py::module_& m) {
  // How many times parallel_for visited each index (every entry must be 1).
  m.def("thread_pool_coverage", [](int64_t n, int64_t grain, int threads) {
    ThreadPool pool(threads);
    std::unique_ptr<std::atomic<int>[]> hits(new std::atomic<int>[n > 0 ? n : 1]);
    for (int64_t i = 0; i < n; ++i) hits[i] = 0;
    {
      py::gil_scoped_release nogil;
      pool.parallel_for(n, grain, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) hits[i]++;
      });
    }
    std::vector<int> out(n);
    for (int64_t i = 0; i < n; ++i) out[i] = hits[i];
    return out;
  });
  m.def("default_num_threads", &ThreadPool::default_num_threads);

  // C = A @ B + beta * C through one GEMM implementation ("dispatch": what the ops use,
  // "avx2": the AVX2 microkernel directly). A and B may be strided row-major views.
  using F32 = py::array_t<float, py::array::forcecast>;
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
}

}  // namespace runnx
