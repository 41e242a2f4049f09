// Element types. The enum values are ONNX's TensorProto.DataType numbers, so the reader and the
// Python layer need no mapping table.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace runnx {

enum class DType : int32_t {
  kUndefined = 0,
  kF32 = 1,
  kU8 = 2,
  kI8 = 3,
  kU16 = 4,
  kI16 = 5,
  kI32 = 6,
  kI64 = 7,
  kString = 8,
  kBool = 9,
  kF16 = 10,
  kF64 = 11,
  kU32 = 12,
  kU64 = 13,
  kBF16 = 16,
};

// Bytes per element; 0 for types we cannot hold (strings, complex, 4-bit, float8).
size_t dtype_size(DType t);
// "float", "int64", ...: the word inside onnxruntime's "tensor(...)" type strings.
std::string dtype_name(DType t);
bool dtype_is_float(DType t);
inline bool dtype_valid(int32_t v) {
  return dtype_size(static_cast<DType>(v)) != 0;
}

}  // namespace runnx
