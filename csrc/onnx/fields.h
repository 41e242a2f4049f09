// Field numbers of the ONNX messages runnx reads (onnx/onnx.proto, IR version 10).
// Fields not listed here are skipped by wire type.
#pragma once
#include <cstdint>

namespace runnx::onnx_fields {

namespace model {  // ModelProto
constexpr uint32_t kIrVersion = 1;
constexpr uint32_t kProducerName = 2;
constexpr uint32_t kProducerVersion = 3;
constexpr uint32_t kDomain = 4;
constexpr uint32_t kModelVersion = 5;
constexpr uint32_t kDocString = 6;
constexpr uint32_t kGraph = 7;
constexpr uint32_t kOpsetImport = 8;
constexpr uint32_t kMetadataProps = 14;
}  // namespace model

namespace opset {  // OperatorSetIdProto
constexpr uint32_t kDomain = 1;
constexpr uint32_t kVersion = 2;
}  // namespace opset

namespace entry {  // StringStringEntryProto
constexpr uint32_t kKey = 1;
constexpr uint32_t kValue = 2;
}  // namespace entry

namespace graph {  // GraphProto
constexpr uint32_t kNode = 1;
constexpr uint32_t kName = 2;
constexpr uint32_t kInitializer = 5;
constexpr uint32_t kDocString = 10;
constexpr uint32_t kInput = 11;
constexpr uint32_t kOutput = 12;
constexpr uint32_t kValueInfo = 13;
constexpr uint32_t kSparseInitializer = 15;
}  // namespace graph

namespace node {  // NodeProto
constexpr uint32_t kInput = 1;
constexpr uint32_t kOutput = 2;
constexpr uint32_t kName = 3;
constexpr uint32_t kOpType = 4;
constexpr uint32_t kAttribute = 5;
constexpr uint32_t kDocString = 6;
constexpr uint32_t kDomain = 7;
}  // namespace node

namespace attr {  // AttributeProto
constexpr uint32_t kName = 1;
constexpr uint32_t kF = 2;
constexpr uint32_t kI = 3;
constexpr uint32_t kS = 4;
constexpr uint32_t kT = 5;
constexpr uint32_t kG = 6;
constexpr uint32_t kFloats = 7;
constexpr uint32_t kInts = 8;
constexpr uint32_t kStrings = 9;
constexpr uint32_t kTensors = 10;
constexpr uint32_t kGraphs = 11;
constexpr uint32_t kDocString = 13;
constexpr uint32_t kTp = 14;
constexpr uint32_t kTypeProtos = 15;
constexpr uint32_t kType = 20;
constexpr uint32_t kRefAttrName = 21;
constexpr uint32_t kSparseTensor = 22;
constexpr uint32_t kSparseTensors = 23;
}  // namespace attr

namespace tensor {  // TensorProto
constexpr uint32_t kDims = 1;
constexpr uint32_t kDataType = 2;
constexpr uint32_t kSegment = 3;
constexpr uint32_t kFloatData = 4;
constexpr uint32_t kInt32Data = 5;
constexpr uint32_t kStringData = 6;
constexpr uint32_t kInt64Data = 7;
constexpr uint32_t kName = 8;
constexpr uint32_t kRawData = 9;
constexpr uint32_t kDoubleData = 10;
constexpr uint32_t kUint64Data = 11;
constexpr uint32_t kDocString = 12;
constexpr uint32_t kExternalData = 13;
constexpr uint32_t kDataLocation = 14;
constexpr int64_t kLocationDefault = 0;
constexpr int64_t kLocationExternal = 1;
}  // namespace tensor

namespace sparse {  // SparseTensorProto
constexpr uint32_t kValues = 1;
}  // namespace sparse

namespace value_info {  // ValueInfoProto
constexpr uint32_t kName = 1;
constexpr uint32_t kType = 2;
constexpr uint32_t kDocString = 3;
}  // namespace value_info

namespace type {  // TypeProto; only tensor_type is read, other kinds leave the type unknown
constexpr uint32_t kTensorType = 1;
}  // namespace type

namespace tensor_type {  // TypeProto.Tensor
constexpr uint32_t kElemType = 1;
constexpr uint32_t kShape = 2;
}  // namespace tensor_type

namespace shape {  // TensorShapeProto
constexpr uint32_t kDim = 1;
}  // namespace shape

namespace dim {  // TensorShapeProto.Dimension
constexpr uint32_t kDimValue = 1;
constexpr uint32_t kDimParam = 2;
}  // namespace dim

}  // namespace runnx::onnx_fields
