#include "bindings/numpy_tensor.h"

#include <unordered_map>

#include "common/status.h"

namespace py = pybind11;

namespace runnx {

DType dtype_from_numpy(const py::dtype& dt, const std::string& name) {
  const char kind = dt.kind();
  const ssize_t size = dt.itemsize();
  if (kind == 'f') {
    if (size == 4) return DType::kF32;
    if (size == 8) return DType::kF64;
    if (size == 2) return DType::kF16;
  } else if (kind == 'i') {
    if (size == 8) return DType::kI64;
    if (size == 4) return DType::kI32;
    if (size == 2) return DType::kI16;
    if (size == 1) return DType::kI8;
  } else if (kind == 'u') {
    if (size == 1) return DType::kU8;
    if (size == 2) return DType::kU16;
    if (size == 4) return DType::kU32;
    if (size == 8) return DType::kU64;
  } else if (kind == 'b') {
    return DType::kBool;
  }
  fail(ErrorKind::kInvalidArgument, "input '", name, "': numpy dtype ", std::string(py::str(dt)),
       " is not supported");
}

const char* numpy_dtype_name(DType t) {
  switch (t) {
    case DType::kF32: return "float32";
    case DType::kF64: return "float64";
    case DType::kF16: return "float16";
    case DType::kI64: return "int64";
    case DType::kI32: return "int32";
    case DType::kI16: return "int16";
    case DType::kI8: return "int8";
    case DType::kU8: return "uint8";
    case DType::kU16: return "uint16";
    case DType::kU32: return "uint32";
    case DType::kU64: return "uint64";
    case DType::kBool: return "bool";
    default: fail(ErrorKind::kUnsupportedOp, "cannot return a tensor of type ", dtype_name(t), " to numpy");
  }
}

namespace {

// numpy dtype objects by DType, made once (parsing a dtype name per output cost ~0.3 us a call).
// Deliberately leaked: they must outlive every module-level object at interpreter exit.
const py::dtype& numpy_dtype(DType t) {
  static std::unordered_map<int, py::dtype*>* cache = new std::unordered_map<int, py::dtype*>();
  auto it = cache->find(static_cast<int>(t));  // callers hold the GIL, which guards the cache
  if (it == cache->end()) it = cache->emplace(static_cast<int>(t), new py::dtype(numpy_dtype_name(t))).first;
  return *it->second;
}

}  // namespace

py::array to_numpy(Tensor t) {
  const py::dtype& dt = numpy_dtype(t.dtype);
  auto* holder = new Tensor(std::move(t));
  py::capsule owner(holder, [](void* p) { delete static_cast<Tensor*>(p); });
  constexpr size_t kMaxRank = 32;  // numpy 1.x's NPY_MAXDIMS
  if (holder->shape.size() > kMaxRank) {
    std::vector<ssize_t> shape(holder->shape.begin(), holder->shape.end());
    return py::array(dt, shape, {}, holder->data, owner);
  }
  // numpy's constructor directly (pybind11's array() builds shape and stride vectors per call).
  Py_intptr_t dims[kMaxRank];
  for (size_t d = 0; d < holder->shape.size(); ++d) dims[d] = static_cast<Py_intptr_t>(holder->shape[d]);
  const auto& api = py::detail::npy_api::get();
  PyObject* arr = api.PyArray_NewFromDescr_(api.PyArray_Type_, dt.inc_ref().ptr(), static_cast<int>(holder->shape.size()),
                                            dims, nullptr, holder->data, py::detail::npy_api::NPY_ARRAY_WRITEABLE_,
                                            nullptr);
  if (!arr) throw py::error_already_set();
  auto result = py::reinterpret_steal<py::array>(arr);
  if (api.PyArray_SetBaseObject_(arr, owner.release().ptr()) != 0) throw py::error_already_set();  // steals
  return result;
}

}  // namespace runnx
