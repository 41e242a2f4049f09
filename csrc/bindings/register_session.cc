// The Session binding: numpy in, numpy out. Inputs are used in place (no copy); outputs hand their
// heap buffers to numpy through a capsule. The GIL is released while loading and running: from
// then on C++ touches only its own Tensors, and the numpy inputs stay alive in this frame.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings/device_value.h"
#include "bindings/numpy_tensor.h"
#include "ir/load_profile.h"
#include "onnx/model_reader.h"
#include "runtime/session.h"

namespace py = pybind11;

namespace runnx {

namespace {

py::tuple value_info_tuple(const ValueInfo& vi) {
  py::object dims = py::none();
  if (vi.has_shape) {
    py::list l;
    for (const Dim& d : vi.dims) {
      if (d.known()) l.append(d.value);
      else if (!d.param.empty()) l.append(d.param);
      else l.append(py::none());
    }
    dims = l;
  }
  return py::make_tuple(vi.name, static_cast<int>(vi.dtype), dims);
}

std::unique_ptr<Session> open_session(py::object model, const py::dict& opts) {
  SessionOptions so;
  if (opts.contains("intra_op_num_threads")) so.intra_op_num_threads = opts["intra_op_num_threads"].cast<int>();
  if (opts.contains("graph_optimization_level"))
    so.graph_optimization_level = opts["graph_optimization_level"].cast<int>();
  if (opts.contains("enable_mem_pattern")) so.enable_mem_pattern = opts["enable_mem_pattern"].cast<bool>();
  if (opts.contains("enable_profiling")) so.enable_profiling = opts["enable_profiling"].cast<bool>();
  if (opts.contains("allow_spinning")) so.allow_spinning = opts["allow_spinning"].cast<bool>();
  if (opts.contains("placement_only")) so.placement_only = opts["placement_only"].cast<bool>();
  if (opts.contains("providers"))  // [(name, {option: value})], values already strings
    for (auto p : opts["providers"].cast<py::list>()) {
      auto t = p.cast<py::tuple>();
      so.providers.push_back({t[0].cast<std::string>(), t[1].cast<std::map<std::string, std::string>>()});
    }
  if (py::isinstance<py::bytes>(model)) {  // the Python layer turns other buffers into bytes
    auto buf = std::make_shared<std::string>(model.cast<std::string>());
    py::gil_scoped_release nogil;
    LoadProfile profile("model from bytes");
    Model m = load_model_from_bytes(buf->data(), buf->size(), buf);
    auto s = std::make_unique<Session>(std::move(m), so);
    profile.succeeded();
    return s;
  }
  std::string path = py::str(model).cast<std::string>();
  py::gil_scoped_release nogil;
  LoadProfile profile(path);
  auto s = std::make_unique<Session>(load_model_from_file(path), so);
  profile.succeeded();
  return s;
}

// Per-thread scratch of run(): feed names and tensors keep their capacity between calls.
struct RunScratch {
  std::vector<std::string> names, outs;
  std::vector<Tensor> tensors;
  std::vector<py::object> keep;  // contiguous copies of non-contiguous feeds
};

// name -> numpy array feeds in, numpy arrays out. Returns None when a feed value is not a numpy
// array (or `feeds` not a dict): the Python layer converts those and calls again.
py::object run(Session& s, py::handle output_names, py::handle feeds) {
  if (!PyDict_Check(feeds.ptr())) return py::none();
  const auto& api = py::detail::npy_api::get();
  // Per-thread scratch; a call nested in this one (a feed key's __str__ running Python) gets its own.
  thread_local RunScratch scratch;
  thread_local bool busy = false;
  RunScratch nested;
  RunScratch& sc = busy ? nested : scratch;
  struct Release {  // drop the array references even when a check throws
    RunScratch& sc;
    bool& busy;
    bool was_busy;
    ~Release() {
      sc.keep.clear();
      busy = was_busy;
    }
  } release{sc, busy, busy};
  busy = true;
  const size_t n = static_cast<size_t>(PyDict_Size(feeds.ptr()));
  sc.names.resize(n);
  sc.tensors.resize(n);
  PyObject *key, *value;
  Py_ssize_t pos = 0;
  for (size_t k = 0; PyDict_Next(feeds.ptr(), &pos, &key, &value); ++k) {
    if (!api.PyArray_Check_(value)) return py::none();
    Py_ssize_t len = 0;
    const char* utf8 = PyUnicode_Check(key) ? PyUnicode_AsUTF8AndSize(key, &len) : nullptr;
    if (utf8)
      sc.names[k].assign(utf8, static_cast<size_t>(len));
    else
      sc.names[k] = py::str(key).cast<std::string>();
    auto a = py::reinterpret_borrow<py::array>(value);
    if (!(a.flags() & py::array::c_style)) {
      a = py::array::ensure(a, py::array::c_style);
      sc.keep.push_back(a);
    }
    Tensor& t = sc.tensors[k];
    t.dtype = dtype_from_numpy(a.dtype(), sc.names[k]);
    t.shape.assign(a.shape(), a.shape() + a.ndim());
    t.data = const_cast<void*>(a.data());
  }
  sc.outs.clear();
  if (!output_names.is_none())
    for (auto o : output_names) sc.outs.push_back(py::str(o).cast<std::string>());
  std::vector<Tensor> results;
  {
    py::gil_scoped_release nogil;
    results = s.run(sc.names, sc.tensors, sc.outs);
  }
  py::list l(results.size());
  for (size_t k = 0; k < results.size(); ++k) PyList_SET_ITEM(l.ptr(), k, to_numpy(std::move(results[k])).release().ptr());
  return std::move(l);
}

// Feeds: name -> numpy array (host) or ("cuda", pointer, shape, onnx element type, device id).
// Outputs: numpy arrays, or DeviceValue for outputs asked on the device ("cuda").
py::list run_placed(Session& s, py::object output_names, const py::dict& feeds, const py::list& output_devices) {
  std::vector<std::string> names, outs;
  std::vector<PlacedTensor> placed;
  std::vector<py::object> keep;
  for (auto item : feeds) {
    std::string name = py::str(item.first);
    PlacedTensor p;
    if (py::isinstance<py::tuple>(item.second)) {
      auto t = item.second.cast<py::tuple>();
      p.device = DeviceKind::kCUDA;
      p.tensor.data = reinterpret_cast<void*>(t[1].cast<uintptr_t>());
      p.tensor.shape = t[2].cast<std::vector<int64_t>>();
      p.tensor.dtype = static_cast<DType>(t[3].cast<int>());
      p.device_id = t[4].cast<int>();
    } else {
      py::array a = py::reinterpret_borrow<py::object>(item.second);
      if (!(a.flags() & py::array::c_style)) a = py::array::ensure(a, py::array::c_style);
      p.tensor.dtype = dtype_from_numpy(a.dtype(), name);
      p.tensor.shape.assign(a.shape(), a.shape() + a.ndim());
      p.tensor.data = const_cast<void*>(a.data());
      keep.push_back(a);
    }
    names.push_back(std::move(name));
    placed.push_back(std::move(p));
  }
  if (!output_names.is_none())
    for (auto o : output_names) outs.push_back(py::str(o));
  std::vector<DeviceKind> devices;
  for (auto d : output_devices) devices.push_back(py::str(d).cast<std::string>() == "cuda" ? DeviceKind::kCUDA : DeviceKind::kCPU);
  std::vector<PlacedTensor> results;
  {
    py::gil_scoped_release nogil;
    results = s.run_placed(names, placed, outs, devices);
  }
  py::list l;
  for (PlacedTensor& p : results) {
    if (p.device == DeviceKind::kCPU)
      l.append(to_numpy(std::move(p.tensor)));
    else
      l.append(py::cast(DeviceValue{std::move(p)}));
  }
  return l;
}

}  // namespace

void register_session(py::module_& m) {
  py::class_<Session>(m, "Session")
      .def(py::init(&open_session), py::arg("model"), py::arg("options") = py::dict())
      .def("run", &run, py::arg("output_names"), py::arg("feeds"))
      .def("run_placed", &run_placed, py::arg("output_names"), py::arg("feeds"), py::arg("output_devices"))
      .def("placement", [](const Session& s) {
        // (node name, op_type, device "cpu"/"cuda", reason) per step in execution order
        py::list l;
        const auto& steps = s.steps();
        for (size_t i = 0; i < steps.size(); ++i) {
          const NodePlacement& p = s.placement()[i];
          l.append(py::make_tuple(steps[i].node->name, steps[i].node->op_type, device_kind_name(p.device), p.reason));
        }
        return l;
      })
      .def("boundary_copies", [](const Session& s) {
        // (value, "to_device"/"to_host", index of the first reading step or -1 for a graph output)
        py::list l;
        for (const ValueCopy& c : s.boundary_copies())
          l.append(py::make_tuple(c.value, c.to == DeviceKind::kCPU ? "to_host" : "to_device", c.before_step));
        return l;
      })
      .def("provider_options", &Session::provider_options)
      .def("device_stats", &Session::device_stats)
      .def("inputs", [](const Session& s) {
        py::list l;
        for (const ValueInfo& vi : s.inputs()) l.append(value_info_tuple(vi));
        return l;
      })
      .def("outputs", [](const Session& s) {
        py::list l;
        for (const ValueInfo& vi : s.outputs()) l.append(value_info_tuple(vi));
        return l;
      })
      .def("overridable_initializers", [](const Session& s) {
        py::list l;
        for (const ValueInfo& vi : s.overridable_initializers()) l.append(value_info_tuple(vi));
        return l;
      })
      .def("metadata", [](const Session& s) {
        const Model& m = s.model();
        py::dict custom;
        for (auto& [k, v] : m.metadata) custom[py::str(k)] = v;
        py::dict d;
        d["producer_name"] = m.producer_name;
        d["producer_version"] = m.producer_version;
        d["graph_name"] = m.graph.name;
        d["domain"] = m.domain;
        d["description"] = m.doc;
        d["graph_description"] = m.graph.doc;
        d["version"] = m.model_version;
        d["custom_metadata_map"] = custom;
        py::list opsets;
        for (const OpsetImport& o : m.opsets) opsets.append(py::make_tuple(o.domain, o.version));
        d["opsets"] = opsets;
        return d;
      })
      .def("providers", &Session::providers)
      .def("num_threads", &Session::num_threads)
      .def("stats", [](const Session& s) {
        SessionStats st = s.stats();
        py::dict d;
        d["arena_bytes"] = st.arena_bytes;
        d["unplanned_bytes"] = st.unplanned_bytes;
        d["inplace_nodes"] = st.inplace_nodes;
        d["plans"] = st.plans;
        d["inference_mismatches"] = st.inference_mismatches;
        d["first_inference_mismatch"] = st.first_inference_mismatch;
        d["realigned_weight_bytes"] = st.realigned_weight_bytes;
        d["static_plans"] = st.static_plans;
        d["static_plans_kept"] = st.static_plans_kept;
        d["kernel_build_threads"] = st.kernel_build_threads;
        d["deferred_constants"] = st.deferred_constants;
        d["deferred_constants_freed"] = st.deferred_constants_freed;
        d["output_buffers_reused"] = st.output_buffers_reused;
        d["output_buffers_idle_bytes"] = s.output_buffers_idle_bytes();
        return d;
      })
      .def("inferred_types", [](const Session& s) {
        // name -> (dtype name or None, dims (int or str) or None when the rank is unknown,
        //          tracked contents or None)
        auto dim = [](const SymDim& d) -> py::object {
          if (d.is_const()) return py::int_(d.value());
          return py::str(d.str());
        };
        py::dict out;
        for (auto& [name, t] : s.inferred_types()) {
          py::object dtype = t.dtype == DType::kUndefined ? py::object(py::none()) : py::str(dtype_name(t.dtype));
          py::object dims = py::none(), values = py::none();
          if (t.has_shape) {
            py::list l;
            for (const SymDim& d : t.dims) l.append(dim(d));
            dims = l;
          }
          if (t.has_values) {
            py::list l;
            for (const SymDim& d : t.values) l.append(dim(d));
            values = l;
          }
          out[py::str(name)] = py::make_tuple(dtype, dims, values);
        }
        return out;
      })
      .def("kernel_choices", [](const Session& s) {
        // (name, op_type, domain, inputs, outputs, kernel description) per executed node, in order
        py::list l;
        for (auto& [n, what] : s.kernel_choices())
          l.append(py::make_tuple(n->name, n->op_type, n->domain, n->inputs, n->outputs, what));
        return l;
      })
      .def("passes_fired", [](const Session& s) {
        py::list l;
        for (const PassFired& p : s.passes_fired()) l.append(py::make_tuple(p.name, p.count));
        return l;
      })
      .def("passes_first_round", [](const Session& s) {
        py::dict d;  // pass -> the driver's round (from 0) in which it first fired
        for (const PassFired& p : s.passes_fired()) d[py::str(p.name)] = p.first_round;
        return d;
      })
      .def("take_profile", [](Session& s) {
        py::list l;
        for (const ProfileEvent& e : s.take_profile())
          l.append(py::make_tuple(e.name, e.op_type, e.start_us, e.dur_us, e.thread));
        return l;
      });
  py::class_<DeviceValue>(m, "DeviceValue")
      .def_property_readonly("data_ptr", [](const DeviceValue& d) { return reinterpret_cast<uintptr_t>(d.placed.tensor.data); })
      .def_property_readonly("shape", [](const DeviceValue& d) { return d.placed.tensor.shape; })
      .def_property_readonly("element_type", [](const DeviceValue& d) { return static_cast<int>(d.placed.tensor.dtype); })
      .def_property_readonly("numpy_dtype", [](const DeviceValue& d) { return std::string(numpy_dtype_name(d.placed.tensor.dtype)); })
      .def_property_readonly("device_id", [](const DeviceValue& d) { return d.placed.device_id; })
      .def_property_readonly("nbytes", [](const DeviceValue& d) { return d.placed.tensor.nbytes(); });
  m.def("supported_ops", [] {
    py::list l;
    for (const OpSchema& s : OpRegistry::global().all()) l.append(py::make_tuple(s.domain, s.op_type, s.since));
    return l;
  });
  m.def("default_num_threads", &ThreadPool::default_num_threads);
  m.def("inference_ops", [] {
    py::list l;
    for (auto& [domain, op] : InferRegistry::global().ops()) l.append(py::make_tuple(domain, op));
    return l;
  });
}

}  // namespace runnx
