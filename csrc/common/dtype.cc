#include "common/dtype.h"

namespace runnx {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::kF32: case DType::kI32: case DType::kU32: return 4;
    case DType::kU8: case DType::kI8: case DType::kBool: return 1;
    case DType::kU16: case DType::kI16: case DType::kF16: case DType::kBF16: return 2;
    case DType::kI64: case DType::kF64: case DType::kU64: return 8;
    default: return 0;
  }
}

std::string dtype_name(DType t) {
  switch (t) {
    case DType::kF32: return "float";
    case DType::kU8: return "uint8";
    case DType::kI8: return "int8";
    case DType::kU16: return "uint16";
    case DType::kI16: return "int16";
    case DType::kI32: return "int32";
    case DType::kI64: return "int64";
    case DType::kString: return "string";
    case DType::kBool: return "bool";
    case DType::kF16: return "float16";
    case DType::kF64: return "double";
    case DType::kU32: return "uint32";
    case DType::kU64: return "uint64";
    case DType::kBF16: return "bfloat16";
    default: return "undefined(" + std::to_string(static_cast<int>(t)) + ")";
  }
}

bool dtype_is_float(DType t) {
  return t == DType::kF32 || t == DType::kF64 || t == DType::kF16 || t == DType::kBF16;
}

}  // namespace runnx
