// Test hooks for session creation: how load blocks are made (huge pages and their fallbacks), the
// load profile's phase accounting, and the graph passes alone (a graph whose kernels the CPU
// lacks, such as a float16 model converted for the GPU, can still be checked pass by pass).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cstring>
#include <string>

#include "common/load_memory.h"
#include "common/status.h"
#include "ir/load_profile.h"
#include "onnx/model_reader.h"
#include "passes/pass.h"

namespace py = pybind11;

namespace runnx {
namespace {

HugePageMode parse_mode(const std::string& mode) {
  if (mode == "auto") return HugePageMode::kAuto;
  if (mode == "on") return HugePageMode::kOn;
  if (mode == "off") return HugePageMode::kOff;
  if (mode == "advice_fails") return HugePageMode::kAdviceFails;
  if (mode == "map_fails") return HugePageMode::kMapFails;
  fail(ErrorKind::kInvalidArgument, "unknown huge page mode '", mode, "'");
}

// Makes a load block of `bytes`, fills it with a pattern and reads it back.
py::dict probe_load_block(size_t bytes) {
  std::shared_ptr<void> block = alloc_load_block(bytes);
  auto* p = static_cast<uint8_t*>(block.get());
  for (size_t i = 0; i < bytes; ++i) p[i] = static_cast<uint8_t>(i * 7 + 3);
  bool intact = true;
  for (size_t i = 0; i < bytes; ++i) intact &= p[i] == static_cast<uint8_t>(i * 7 + 3);
  py::dict d;
  d["intact"] = intact;
  d["aligned_64"] = reinterpret_cast<uintptr_t>(p) % 64 == 0;
  d["aligned_2m"] = reinterpret_cast<uintptr_t>(p) % kHugePageBytes == 0;
  return d;
}

void spin_for_us(int64_t us) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
  while (std::chrono::steady_clock::now() < end) {
  }
}

// Phase "outer" (spins, opens "inner" which spins, spins) inside a profile of its own; returns
// each phase's wall ns and the profile's whole wall time.
py::dict nested_load_phases(int64_t spin_us) {
  py::dict d;
  LoadProfile profile("nested phases test", /*force=*/true, /*print=*/false);
  {
    LoadPhase outer("outer");
    spin_for_us(spin_us);
    {
      LoadPhase inner("inner");
      spin_for_us(spin_us);
    }
    spin_for_us(spin_us);
  }
  d["elapsed_ns"] = profile.elapsed_ns();
  for (const LoadPhaseTotal& p : profile.phases()) d[py::str(p.name)] = p.wall_ns;
  return d;
}

// The graph passes at `level` on a model's bytes, without building kernels: {"passes": {name:
// count}, "nodes": [(op_type, domain, inputs, outputs)], "initializers": {name: array}} with the
// float32, float16 and int64 initializers (deferred ones computed) as numpy arrays.
py::dict optimized_graph(const py::bytes& model_bytes, int level, bool device_asked) {
  auto keep = std::make_shared<std::string>(model_bytes);  // the weights point into it
  Model model = load_model_from_bytes(keep->data(), keep->size(), keep);
  py::dict passes;
  for (const PassFired& p : run_graph_passes(model, level, device_asked)) passes[py::str(p.name)] = p.count;
  py::list nodes;
  for (const Node& n : model.graph.nodes) nodes.append(py::make_tuple(n.op_type, n.domain, n.inputs, n.outputs));
  py::dict inits;
  for (auto& [name, t] : model.graph.initializers) {
    materialize_constant(model, name, t);
    py::dtype dt;
    if (t.dtype == DType::kF32) dt = py::dtype::of<float>();
    else if (t.dtype == DType::kF16) dt = py::dtype("float16");
    else if (t.dtype == DType::kI64) dt = py::dtype::of<int64_t>();
    else continue;
    py::array a(dt, std::vector<py::ssize_t>(t.shape.begin(), t.shape.end()));
    if (t.nbytes()) std::memcpy(a.mutable_data(), t.data, t.nbytes());
    inits[py::str(name)] = a;
  }
  py::dict d;
  d["passes"] = passes;
  d["nodes"] = nodes;
  d["initializers"] = inits;
  return d;
}

}  // namespace

void register_load_testing(py::module_& m) {
  m.def("set_huge_page_mode", [](const std::string& mode) { set_huge_page_mode(parse_mode(mode)); },
        py::arg("mode"), "auto | on | off | advice_fails | map_fails: how load blocks are made from now on.");
  m.def("load_memory_stats", [] {
    LoadMemoryStats s = load_memory_stats();
    py::dict d;
    d["huge_blocks"] = s.huge_blocks;
    d["advice_refused"] = s.advice_refused;
    d["malloc_blocks"] = s.malloc_blocks;
    return d;
  });
  m.def("probe_load_block", &probe_load_block, py::arg("bytes"));
  m.def("nested_load_phases", &nested_load_phases, py::arg("spin_us"));
  m.def("optimized_graph", &optimized_graph, py::arg("model_bytes"), py::arg("level") = 99,
        py::arg("device_asked") = false);
}

}  // namespace runnx
