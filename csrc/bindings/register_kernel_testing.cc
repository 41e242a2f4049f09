// Test hooks for runtime internals that are hard to reach through whole models.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <memory>

#include "common/thread_pool.h"
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
}

}  // namespace runnx
