// Maps runnx::Error kinds to Python exception classes. They derive from RunnxError (itself a
// RuntimeError, as onnxruntime's are); InvalidModel and InvalidArgument are also ValueErrors and
// ResourceExhausted a MemoryError, so generic handlers still catch them.
#include <pybind11/pybind11.h>

#include "bindings/error_classes.h"
#include "common/status.h"

namespace py = pybind11;

namespace runnx {

namespace {

PyObject* g_classes[5];
PyObject* g_queue_full = nullptr;
PyObject* g_deadline_exceeded = nullptr;
PyObject* g_batcher_closed = nullptr;

PyObject* make_class(py::module_& m, const char* name, PyObject* bases, const char* doc) {
  std::string full = std::string("runnx.") + name;
  PyObject* cls = PyErr_NewExceptionWithDoc(full.c_str(), doc, bases, nullptr);
  if (!cls) throw py::error_already_set();
  m.add_object(name, py::handle(cls));
  return cls;
}

}  // namespace

void register_errors(py::module_& m) {
  PyObject* base = make_class(m, "RunnxError", PyExc_RuntimeError, "Base class of every runnx error.");
  auto with = [&](PyObject* extra) { return PyTuple_Pack(2, base, extra); };
  g_classes[static_cast<int>(ErrorKind::kInvalidModel)] =
      make_class(m, "InvalidModel", with(PyExc_ValueError), "The model file is malformed or inconsistent.");
  g_classes[static_cast<int>(ErrorKind::kUnsupportedOp)] =
      make_class(m, "UnsupportedOp", with(PyExc_NotImplementedError),
                 "The model uses an operator, opset or attribute runnx does not implement.");
  g_classes[static_cast<int>(ErrorKind::kInvalidArgument)] =
      make_class(m, "InvalidArgument", with(PyExc_ValueError), "A run's inputs or options are wrong.");
  g_classes[static_cast<int>(ErrorKind::kResourceExhausted)] =
      make_class(m, "ResourceExhausted", with(PyExc_MemoryError), "A size limit or memory was exceeded.");
  g_classes[static_cast<int>(ErrorKind::kRuntime)] =
      make_class(m, "RuntimeFailure", base, "A kernel failed while running.");

  g_queue_full = make_class(m, "QueueFull", PyTuple_Pack(1, g_classes[static_cast<int>(ErrorKind::kResourceExhausted)]),
                            "A batcher's request queue is full; retry later.");
  g_deadline_exceeded = make_class(m, "DeadlineExceeded", base,
                                   "A request's timeout passed while it waited in the queue; it was not run.");
  g_batcher_closed = make_class(m, "BatcherClosed", base, "The batcher is closed and takes no more requests.");

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      PyErr_SetString(g_classes[static_cast<int>(e.kind())], e.what());
    }
  });
}

PyObject* error_class(ErrorKind kind) { return g_classes[static_cast<int>(kind)]; }
PyObject* queue_full_error_class() { return g_queue_full; }
PyObject* deadline_exceeded_error_class() { return g_deadline_exceeded; }
PyObject* batcher_closed_error_class() { return g_batcher_closed; }

}  // namespace runnx
