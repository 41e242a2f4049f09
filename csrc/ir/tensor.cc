#include "ir/tensor.h"

#include <cstdlib>
#include <cstring>

#include "common/half.h"
#include "common/status.h"

namespace runnx {

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    RUNNX_CHECK(d >= 0, kInvalidArgument, "negative dimension in shape ", shape_str(s));
    if (d != 0 && n > (int64_t{1} << 62) / d) fail(ErrorKind::kInvalidArgument, "shape ", shape_str(s), " is too large");
    n *= d;
  }
  return n;
}

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

Tensor Tensor::empty(DType dtype, Shape shape) {
  Tensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  int64_t bytes = t.numel() * static_cast<int64_t>(dtype_size(dtype));
  RUNNX_CHECK(bytes <= kMaxTensorBytes, kResourceExhausted, "tensor of shape ", shape_str(t.shape),
              " needs ", bytes, " bytes, over the limit of ", kMaxTensorBytes);
  size_t alloc = (static_cast<size_t>(bytes) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, alloc ? alloc : 64);
  RUNNX_CHECK(p, kResourceExhausted, "out of memory allocating ", bytes, " bytes");
  t.owner = std::shared_ptr<void>(p, std::free);
  t.data = p;
  return t;
}

Tensor Tensor::clone(const Tensor& src) {
  Tensor t = empty(src.dtype, src.shape);
  if (src.nbytes()) std::memcpy(t.data, src.data, src.nbytes());
  return t;
}

Tensor Tensor::view(Shape new_shape) const {
  Tensor t = *this;
  t.shape = std::move(new_shape);
  RUNNX_CHECK(t.numel() == numel(), kInvalidArgument, "cannot view ", shape_str(shape), " as ",
              shape_str(t.shape));
  return t;
}

std::vector<int64_t> tensor_to_i64(const Tensor& t) {
  int64_t n = t.numel();
  std::vector<int64_t> v(n);
  switch (t.dtype) {
    case DType::kI64: std::memcpy(v.data(), t.data, n * 8); break;
    case DType::kI32: for (int64_t i = 0; i < n; ++i) v[i] = t.ptr<int32_t>()[i]; break;
    default: fail(ErrorKind::kInvalidArgument, "expected an int32/int64 tensor, got ", dtype_name(t.dtype));
  }
  return v;
}

std::vector<double> tensor_to_f64(const Tensor& t) {
  int64_t n = t.numel();
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) {
    switch (t.dtype) {
      case DType::kF32: v[i] = t.ptr<float>()[i]; break;
      case DType::kF64: v[i] = t.ptr<double>()[i]; break;
      case DType::kI64: v[i] = static_cast<double>(t.ptr<int64_t>()[i]); break;
      case DType::kI32: v[i] = t.ptr<int32_t>()[i]; break;
      case DType::kI8: v[i] = t.ptr<int8_t>()[i]; break;
      case DType::kU8: v[i] = t.ptr<uint8_t>()[i]; break;
      case DType::kI16: v[i] = t.ptr<int16_t>()[i]; break;
      case DType::kU16: v[i] = t.ptr<uint16_t>()[i]; break;
      case DType::kU32: v[i] = t.ptr<uint32_t>()[i]; break;
      case DType::kU64: v[i] = static_cast<double>(t.ptr<uint64_t>()[i]); break;
      case DType::kF16: v[i] = half_to_float(t.ptr<uint16_t>()[i]); break;
      case DType::kBF16: v[i] = bf16_to_float(t.ptr<uint16_t>()[i]); break;
      default: fail(ErrorKind::kInvalidArgument, "expected a numeric tensor, got ", dtype_name(t.dtype));
    }
  }
  return v;
}

}  // namespace runnx
