// Tensors stored outside the model file (TensorProto.data_location = EXTERNAL), read by
// mapping the data file and pointing into it. Internal to the ONNX reader.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ir/tensor.h"
#include "onnx/mapped_file.h"

namespace runnx {

class ExternalData {
 public:
  // Files are resolved inside `base_dir`, the model's folder; "" refuses all external data.
  explicit ExternalData(std::string base_dir) : base_dir_(std::move(base_dir)) {}

  // The tensor described by the TensorProto.external_data `entries` (location, offset, length):
  // `nbytes` bytes of the data file, in place when aligned for `dtype`. `where` names the tensor
  // and the field in errors ("field 'TensorProto.external_data' of tensor 'w' at byte 120").
  Tensor load(const std::string& where,
              const std::vector<std::pair<std::string, std::string>>& entries, DType dtype,
              Shape shape, size_t nbytes);

 private:
  std::shared_ptr<MappedFile> open(const std::string& where, const std::string& location);

  std::string base_dir_;
  std::string base_real_;  // realpath of base_dir_, resolved on first use
  std::map<std::string, std::shared_ptr<MappedFile>> files_;  // by resolved path: map once
};

}  // namespace runnx
