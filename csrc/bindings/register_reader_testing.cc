// runnx._C._testing.parse_model: the ONNX reader's output as plain Python, so tests can compare
// it with the `onnx` package field by field. Only for tests.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "onnx/model_reader.h"

namespace py = pybind11;

namespace runnx {

namespace {

// Names in a hostile file need not be UTF-8; tests still get a str.
py::str ustr(const std::string& s) {
  PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace");
  if (!o) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(o);
}

const char* numpy_name(DType t) {
  switch (t) {
    case DType::kF32: return "float32";
    case DType::kU8: return "uint8";
    case DType::kI8: return "int8";
    case DType::kU16: return "uint16";
    case DType::kI16: return "int16";
    case DType::kI32: return "int32";
    case DType::kI64: return "int64";
    case DType::kBool: return "bool";
    case DType::kF16: return "float16";
    case DType::kF64: return "float64";
    case DType::kU32: return "uint32";
    case DType::kU64: return "uint64";
    case DType::kBF16: return "uint16";  // numpy has no bfloat16: the bit patterns
    default: return "object";            // strings: shape only, elements None
  }
}

// A numpy copy of `t` (the reader's tensor may point into a buffer that is about to go away).
py::object tensor_to_py(const Tensor& t) {
  std::vector<py::ssize_t> shape(t.shape.begin(), t.shape.end());
  py::dtype dt(numpy_name(t.dtype));
  if (t.dtype == DType::kString || !t.data) return py::array(dt, shape);
  return py::array(dt, shape, t.data);
}

py::object dims_to_py(const ValueInfo& vi) {
  if (!vi.has_shape) return py::none();
  py::list dims;
  for (const Dim& d : vi.dims) {
    if (d.known()) dims.append(py::int_(d.value));
    else if (!d.param.empty()) dims.append(ustr(d.param));
    else dims.append(py::none());
  }
  return dims;
}

py::tuple value_info_to_py(const ValueInfo& vi) {
  return py::make_tuple(ustr(vi.name), static_cast<int>(vi.dtype), dims_to_py(vi));
}

py::list value_infos_to_py(const std::vector<ValueInfo>& v) {
  py::list out;
  for (const ValueInfo& vi : v) out.append(value_info_to_py(vi));
  return out;
}

py::list strings_to_py(const std::vector<std::string>& v) {
  py::list out;
  for (const std::string& s : v) out.append(ustr(s));
  return out;
}

py::dict graph_to_py(const Graph& g);

py::object attribute_to_py(const Attribute& a) {
  using T = Attribute::Type;
  switch (a.type) {
    case T::kFloat: return py::float_(a.f);
    case T::kInt: return py::int_(a.i);
    case T::kString: return py::bytes(a.s);
    case T::kTensor: return tensor_to_py(a.t);
    case T::kGraph: return a.g ? py::object(graph_to_py(*a.g)) : py::object(py::none());
    case T::kFloats: {
      py::list l;
      for (float f : a.floats) l.append(py::float_(f));
      return l;
    }
    case T::kInts: {
      py::list l;
      for (int64_t i : a.ints) l.append(py::int_(i));
      return l;
    }
    case T::kStrings: {
      py::list l;
      for (const std::string& s : a.strings) l.append(py::bytes(s));
      return l;
    }
    case T::kTensors: {
      py::list l;
      for (const Tensor& t : a.tensors) l.append(tensor_to_py(t));
      return l;
    }
    case T::kGraphs: {
      py::list l;
      for (const auto& g : a.graphs) l.append(g ? py::object(graph_to_py(*g)) : py::none());
      return l;
    }
    default: return py::none();  // sparse tensors and type protos are skipped by the reader
  }
}

py::dict node_to_py(const Node& n) {
  py::dict d;
  d["name"] = ustr(n.name);
  d["op_type"] = ustr(n.op_type);
  d["domain"] = ustr(n.domain);
  d["inputs"] = strings_to_py(n.inputs);
  d["outputs"] = strings_to_py(n.outputs);
  py::dict attrs;
  for (const Attribute& a : n.attrs) attrs[ustr(a.name)] = attribute_to_py(a);
  d["attrs"] = attrs;
  return d;
}

py::dict graph_to_py(const Graph& g) {
  py::dict d;
  d["name"] = ustr(g.name);
  d["doc"] = ustr(g.doc);
  d["inputs"] = value_infos_to_py(g.inputs);
  d["outputs"] = value_infos_to_py(g.outputs);
  d["value_info"] = value_infos_to_py(g.value_info);
  py::list nodes;
  for (const Node& n : g.nodes) nodes.append(node_to_py(n));
  d["nodes"] = nodes;
  py::list inits, in_place;
  for (const auto& [name, t] : g.initializers) {
    inits.append(py::make_tuple(ustr(name), tensor_to_py(t)));
    // Tensor::empty owns exactly its data block; an in-place tensor's owner is the whole buffer.
    in_place.append(py::bool_(t.data != nullptr && t.owner.get() != t.data));
  }
  d["initializers"] = inits;
  d["initializer_in_place"] = in_place;
  d["sparse_initializers"] = strings_to_py(g.sparse_initializer_names);
  return d;
}

py::dict model_to_py(const Model& m) {
  py::dict d;
  d["ir_version"] = py::int_(m.ir_version);
  py::list opsets;
  for (const OpsetImport& o : m.opsets) opsets.append(py::make_tuple(ustr(o.domain), o.version));
  d["opsets"] = opsets;
  d["producer_name"] = ustr(m.producer_name);
  d["producer_version"] = ustr(m.producer_version);
  d["domain"] = ustr(m.domain);
  d["model_version"] = py::int_(m.model_version);
  d["doc"] = ustr(m.doc);
  py::list meta;
  for (const auto& [k, v] : m.metadata) meta.append(py::make_tuple(ustr(k), ustr(v)));
  d["metadata"] = meta;
  d["graph"] = graph_to_py(m.graph);
  return d;
}

py::dict parse_model(py::object data, bool is_path, bool copy, const std::string& base_dir) {
  if (is_path) return model_to_py(load_model_from_file(py::cast<std::string>(data)));
  std::string_view bytes = py::cast<std::string_view>(data);
  if (copy)  // no keepalive: the reader must copy every tensor it keeps
    return model_to_py(load_model_from_bytes(bytes.data(), bytes.size(), nullptr, base_dir));
  // A buffer the model may point into, as a memory-mapped file would be.
  void* p = std::malloc(bytes.size() ? bytes.size() : 1);
  if (!p) throw std::bad_alloc();
  std::shared_ptr<void> keep(p, std::free);
  if (!bytes.empty()) std::memcpy(p, bytes.data(), bytes.size());
  return model_to_py(load_model_from_bytes(p, bytes.size(), keep, base_dir));
}

}  // namespace

void register_reader_testing(py::module_& m) {
  m.def("parse_model", &parse_model, py::arg("data"), py::arg("is_path") = false,
        py::arg("copy") = false, py::arg("base_dir") = "",
        R"doc(Parses an ONNX model with runnx's own reader and describes it as plain Python.

`data` is the serialized model (bytes) or, with is_path=True, a file path. With copy=True the
reader gets no keepalive and must copy every tensor; `base_dir` resolves external data for bytes.
Returns {"ir_version", "opsets", "producer_name", "producer_version", "domain", "model_version",
"doc", "metadata", "graph"}; graph = {"name", "doc", "inputs", "outputs", "value_info", "nodes",
"initializers", "initializer_in_place", "sparse_initializers"}. Tensors are numpy copies
(bfloat16 as uint16 bit patterns, strings as object arrays of None).

Example:
    >>> d = parse_model(onnx_model.SerializeToString())
    >>> d["graph"]["nodes"][0]["op_type"]
    'Relu'
)doc");
}

}  // namespace runnx
