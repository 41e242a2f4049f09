// numpy <-> Tensor conversions shared by the bindings (sessions, batcher).
#pragma once
#include <pybind11/numpy.h>

#include <string>

#include "ir/tensor.h"

namespace runnx {

// The DType of a numpy dtype; InvalidArgument naming input `name` for dtypes we cannot take.
DType dtype_from_numpy(const pybind11::dtype& dt, const std::string& name);
// numpy's name for `t` ("float32"); UnsupportedOp for types numpy cannot hold.
const char* numpy_dtype_name(DType t);
// An array that borrows the tensor's bytes; a capsule keeps the tensor (and so its owner) alive.
pybind11::array to_numpy(Tensor t);

}  // namespace runnx
