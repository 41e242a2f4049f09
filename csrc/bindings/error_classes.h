// The Python exception classes that register_errors creates, for bindings that build exception
// objects themselves (the batcher hands errors to futures instead of raising them).
#pragma once
#include <Python.h>

#include "common/status.h"

namespace runnx {

PyObject* error_class(ErrorKind kind);
PyObject* queue_full_error_class();         // runnx.QueueFull (a ResourceExhausted)
PyObject* deadline_exceeded_error_class();  // runnx.DeadlineExceeded
PyObject* batcher_closed_error_class();     // runnx.BatcherClosed

}  // namespace runnx
