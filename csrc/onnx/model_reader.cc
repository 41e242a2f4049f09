// ModelProto -> ir::Model. One function per message, each a loop over fields with a switch on the
// field number (numbers in fields.h); fields runnx does not use are skipped by wire type. All
// reads of lengths and scalars go through wire::Reader, which checks them against the buffer.
#include "onnx/model_reader.h"

#include <cstring>
#include <utility>
#include <vector>

#include "common/spread.h"
#include "common/status.h"
#include "onnx/external_data.h"
#include "onnx/fields.h"
#include "onnx/file_page_drops.h"
#include "onnx/mapped_file.h"
#include "onnx/wire.h"
#include "ir/load_profile.h"

namespace runnx {

namespace {

namespace F = onnx_fields;
using wire::Bytes;
using wire::Reader;
using wire::Run;
using wire::WireType;

// Subgraphs (If/Loop/Scan bodies) nested deeper than this are refused: each level costs stack.
constexpr int kMaxGraphDepth = 64;

struct Context {
  std::shared_ptr<void> keepalive;  // owns the buffer; nullptr: copy whatever we keep
  ExternalData external;
  bool file_mapping = false;        // the buffer is a read-only file mapping
  int64_t realigned_bytes = 0;      // weights copied to the heap because misaligned
};

void release_mapped_pages(const Context& ctx, const uint8_t* p, size_t n) {
  if (ctx.file_mapping) drop_file_pages(p, n);
}

std::pair<std::string, std::string> read_entry(Reader r) {
  std::pair<std::string, std::string> kv;
  while (r.next()) {
    switch (r.field()) {
      case F::entry::kKey: kv.first = r.str("StringStringEntryProto.key"); break;
      case F::entry::kValue: kv.second = r.str("StringStringEntryProto.value"); break;
    }
  }
  return kv;
}

OpsetImport read_opset(Reader r) {
  OpsetImport o;
  while (r.next()) {
    switch (r.field()) {
      case F::opset::kDomain: o.domain = r.str("OperatorSetIdProto.domain"); break;
      case F::opset::kVersion: o.version = r.i64("OperatorSetIdProto.version"); break;
    }
  }
  return o;
}

// ---- TensorProto --------------------------------------------------------------------------------

// What a TensorProto declares, gathered before anything is allocated: its fields may come in any
// order, and the data must be checked against dims and type first.
struct TensorFields {
  size_t offset = 0;  // the TensorProto's first byte
  std::string name;
  bool has_type = false;
  int32_t data_type = 0;
  std::vector<int64_t> dims;
  size_t dims_offset = 0;
  bool has_raw = false;
  Bytes raw;
  size_t raw_offset = 0;
  uint32_t typed_field = 0;  // which typed repeated field holds the data, 0 if none
  std::vector<Run> runs;
  size_t strings = 0;
  size_t strings_offset = 0;
  int64_t location = F::tensor::kLocationDefault;
  size_t location_offset = 0;
  std::vector<std::pair<std::string, std::string>> external;
};

[[noreturn]] void tensor_fail(const TensorFields& tf, const char* field, size_t offset,
                              const std::string& what) {
  fail(ErrorKind::kInvalidModel, "field '", field, "' of tensor '", wire::printable(tf.name),
       "' at byte ", offset, ": ", what);
}

void add_run(Reader& r, TensorFields& tf, const char* name, WireType elem) {
  if (tf.typed_field && tf.typed_field != r.field())
    r.fail(name, str_cat("tensor '", wire::printable(tf.name),
                         "' already holds data in another typed field (", tf.runs.front().name,
                         ")"));
  tf.typed_field = r.field();
  tf.runs.push_back(r.run(name, elem));
}

// The typed field that carries values of `t`, and how it encodes each value.
const char* typed_field_for(DType t, uint32_t* field) {
  switch (t) {
    case DType::kF32: *field = F::tensor::kFloatData; return "TensorProto.float_data";
    case DType::kF64: *field = F::tensor::kDoubleData; return "TensorProto.double_data";
    case DType::kI64: *field = F::tensor::kInt64Data; return "TensorProto.int64_data";
    case DType::kU32:
    case DType::kU64: *field = F::tensor::kUint64Data; return "TensorProto.uint64_data";
    default: *field = F::tensor::kInt32Data; return "TensorProto.int32_data";
  }
}

template <typename T>
void decode_varints(const std::vector<Run>& runs, void* dst) {
  T* out = static_cast<T*>(dst);
  for (const Run& run : runs) {
    wire::Cursor c = run.cursor();
    while (!c.done()) *out++ = static_cast<T>(c.varint());
  }
}

void decode_bools(const std::vector<Run>& runs, void* dst) {
  uint8_t* out = static_cast<uint8_t*>(dst);
  for (const Run& run : runs) {
    wire::Cursor c = run.cursor();
    while (!c.done()) *out++ = c.varint() != 0;
  }
}

void copy_fixed(const std::vector<Run>& runs, void* dst) {
  uint8_t* out = static_cast<uint8_t*>(dst);
  for (const Run& run : runs) {
    if (run.bytes.size) std::memcpy(out, run.bytes.data, run.bytes.size);
    out += run.bytes.size;
  }
}

Tensor decode_typed(const TensorFields& tf, DType dt, const Shape& shape, int64_t numel) {
  uint32_t want = 0;
  const char* want_name = typed_field_for(dt, &want);
  if (tf.typed_field != want)
    tensor_fail(tf, tf.runs.front().name, tf.runs.front().field_offset,
                str_cat("a tensor of type ", dtype_name(dt), " keeps its values in '", want_name,
                        "'"));
  size_t count = 0;
  for (const Run& run : tf.runs) count += run.count();
  if (count != static_cast<uint64_t>(numel))
    tensor_fail(tf, want_name, tf.runs.front().field_offset,
                str_cat("holds ", count, " values but dims ", shape_str(shape), " need ", numel));
  // Only now, with the values known to be present, is the tensor allocated.
  Tensor t = Tensor::empty(dt, shape);
  switch (dt) {
    case DType::kF32:
    case DType::kF64: copy_fixed(tf.runs, t.data); break;
    case DType::kI64: decode_varints<int64_t>(tf.runs, t.data); break;
    case DType::kU64: decode_varints<uint64_t>(tf.runs, t.data); break;
    case DType::kU32: decode_varints<uint32_t>(tf.runs, t.data); break;
    case DType::kI32: decode_varints<int32_t>(tf.runs, t.data); break;
    case DType::kI16: decode_varints<int16_t>(tf.runs, t.data); break;
    case DType::kI8: decode_varints<int8_t>(tf.runs, t.data); break;
    // float16 and bfloat16 travel as their bit patterns in int32_data.
    case DType::kU16:
    case DType::kF16:
    case DType::kBF16: decode_varints<uint16_t>(tf.runs, t.data); break;
    case DType::kU8: decode_varints<uint8_t>(tf.runs, t.data); break;
    case DType::kBool: decode_bools(tf.runs, t.data); break;
    default: tensor_fail(tf, want_name, tf.offset, "unexpected type");
  }
  return t;
}

// Reads a TensorProto: dims and type are checked (no negative dim, no overflow, at most
// kMaxTensorBytes) before the data, and the data before any allocation.
// `may_stay_misaligned`: a main-graph initializer whose float32 matrix (or conv weight, rank >= 2)
// may be left misaligned in place (prepare_graph decides from its readers whether it must be
// copied after all).
Tensor read_tensor(Context& ctx, Reader r, std::string* name_out = nullptr, bool may_stay_misaligned = false) {
  TensorFields tf;
  tf.offset = r.begin();
  while (r.next()) {
    switch (r.field()) {
      case F::tensor::kDims: {
        if (tf.dims.empty()) tf.dims_offset = r.field_offset();
        const Run run = r.run("TensorProto.dims", WireType::kVarint);
        wire::Cursor c = run.cursor();
        while (!c.done()) tf.dims.push_back(static_cast<int64_t>(c.varint()));
        break;
      }
      case F::tensor::kDataType:
        tf.data_type = r.i32("TensorProto.data_type");
        tf.has_type = true;
        break;
      case F::tensor::kName: tf.name = r.str("TensorProto.name"); break;
      case F::tensor::kRawData:
        tf.raw_offset = r.field_offset();
        tf.raw = r.bytes("TensorProto.raw_data");
        tf.has_raw = true;
        break;
      case F::tensor::kFloatData:
        add_run(r, tf, "TensorProto.float_data", WireType::kFixed32);
        break;
      case F::tensor::kInt32Data:
        add_run(r, tf, "TensorProto.int32_data", WireType::kVarint);
        break;
      case F::tensor::kInt64Data:
        add_run(r, tf, "TensorProto.int64_data", WireType::kVarint);
        break;
      case F::tensor::kDoubleData:
        add_run(r, tf, "TensorProto.double_data", WireType::kFixed64);
        break;
      case F::tensor::kUint64Data:
        add_run(r, tf, "TensorProto.uint64_data", WireType::kVarint);
        break;
      case F::tensor::kStringData:
        if (!tf.strings) tf.strings_offset = r.field_offset();
        r.bytes("TensorProto.string_data");  // string tensors are typed, not stored
        ++tf.strings;
        break;
      case F::tensor::kExternalData:
        tf.external.push_back(read_entry(r.message("TensorProto.external_data",
                                                   "StringStringEntryProto")));
        break;
      case F::tensor::kDataLocation:
        tf.location_offset = r.field_offset();
        tf.location = r.i32("TensorProto.data_location");
        break;
    }
  }
  if (name_out) *name_out = tf.name;

  if (!tf.has_type || tf.data_type == 0)
    tensor_fail(tf, "TensorProto.data_type", tf.offset, "missing or UNDEFINED element type");
  const DType dt = static_cast<DType>(tf.data_type);
  if (dt != DType::kString && !dtype_valid(tf.data_type))
    tensor_fail(tf, "TensorProto.data_type", tf.offset,
                str_cat("element type ", tf.data_type, " is not supported by runnx"));
  if (tf.location != F::tensor::kLocationDefault && tf.location != F::tensor::kLocationExternal)
    tensor_fail(tf, "TensorProto.data_location", tf.location_offset,
                str_cat("unknown data_location ", tf.location));

  // Element count and size, each step checked; nothing is allocated from these numbers.
  const int64_t esize = dt == DType::kString ? 1 : static_cast<int64_t>(dtype_size(dt));
  int64_t numel = 1;
  for (int64_t d : tf.dims) {
    if (d < 0)
      tensor_fail(tf, "TensorProto.dims", tf.dims_offset,
                  str_cat("negative dimension in dims ", shape_str(tf.dims)));
    if (__builtin_mul_overflow(numel, d, &numel) || numel > kMaxTensorBytes / esize)
      tensor_fail(tf, "TensorProto.dims", tf.dims_offset,
                  str_cat("dims ", shape_str(tf.dims), " of type ", dtype_name(dt),
                          " exceed the limit of ", kMaxTensorBytes, " bytes per tensor"));
  }
  const size_t nbytes = static_cast<size_t>(numel * esize);
  const Shape& shape = tf.dims;
  const bool external = tf.location == F::tensor::kLocationExternal;
  const int sources = int{tf.has_raw} + int{tf.typed_field != 0} + int{tf.strings != 0} +
                      int{external};
  if (sources > 1)
    tensor_fail(tf, "TensorProto", tf.offset,
                "data is given in more than one of raw_data, a typed field, string_data and "
                "external data");

  if (dt == DType::kString) {
    if (tf.has_raw || tf.typed_field || external)
      tensor_fail(tf, "TensorProto.string_data", tf.offset,
                  "a string tensor keeps its values in string_data only");
    if (tf.strings != static_cast<uint64_t>(numel))
      tensor_fail(tf, "TensorProto.string_data", tf.strings ? tf.strings_offset : tf.offset,
                  str_cat("holds ", tf.strings, " strings but dims ", shape_str(shape), " need ",
                          numel));
    Tensor t;  // recorded, not stored: runnx computes on no string tensors
    t.dtype = DType::kString;
    t.shape = shape;
    return t;
  }
  if (tf.strings)
    tensor_fail(tf, "TensorProto.string_data", tf.strings_offset,
                str_cat("a tensor of type ", dtype_name(dt), " cannot hold string_data"));

  if (external) {
    if (tf.name.empty())
      tensor_fail(tf, "TensorProto.name", tf.offset, "a tensor with external data needs a name");
    return ctx.external.load(str_cat("field 'TensorProto.external_data' of tensor '",
                                     wire::printable(tf.name), "' at byte ", tf.offset),
                             tf.external, dt, shape, nbytes);
  }
  if (tf.has_raw) {
    if (tf.raw.size != nbytes)
      tensor_fail(tf, "TensorProto.raw_data", tf.raw_offset,
                  str_cat("holds ", tf.raw.size, " bytes but dims ", shape_str(shape), " of type ",
                          dtype_name(dt), " need ", nbytes));
    const bool aligned = reinterpret_cast<uintptr_t>(tf.raw.data) % dtype_size(dt) == 0;
    const bool matrix = dt == DType::kF32 && shape.size() >= 2;
    if (ctx.keepalive && nbytes && (aligned || (may_stay_misaligned && matrix))) {  // in place: weights stay in the mapped file
      Tensor t;
      t.dtype = dt;
      t.shape = shape;
      t.data = const_cast<uint8_t*>(tf.raw.data);
      t.owner = ctx.keepalive;
      return t;
    }
    Tensor t = Tensor::empty(dt, shape);
    if (nbytes) std::memcpy(t.data, tf.raw.data, nbytes);
    if (!aligned) ctx.realigned_bytes += static_cast<int64_t>(nbytes);
    release_mapped_pages(ctx, tf.raw.data, nbytes);
    return t;
  }
  if (tf.typed_field) return decode_typed(tf, dt, shape, numel);
  if (numel != 0)
    tensor_fail(tf, "TensorProto", tf.offset,
                str_cat("no data for dims ", shape_str(shape), " (", numel, " values)"));
  return Tensor::empty(dt, shape);
}

// SparseTensorProto: only the name (that of its `values` tensor) is kept.
std::string read_sparse_name(Reader r) {
  std::string name;
  while (r.next()) {
    if (r.field() != F::sparse::kValues) continue;
    Reader values = r.message("SparseTensorProto.values", "TensorProto");
    while (values.next())
      if (values.field() == F::tensor::kName) name = values.str("TensorProto.name");
  }
  return name;
}

// ---- ValueInfoProto -----------------------------------------------------------------------------

Dim read_dim(Reader r) {
  Dim d;
  while (r.next()) {
    switch (r.field()) {
      case F::dim::kDimValue: {
        // Some exporters write -1 for "unknown"; any negative value is taken as unknown.
        const int64_t v = r.i64("TensorShapeProto.Dimension.dim_value");
        d.value = v < 0 ? -1 : v;
        d.param.clear();
        break;
      }
      case F::dim::kDimParam:
        d.param = r.str("TensorShapeProto.Dimension.dim_param");
        d.value = -1;
        break;
    }
  }
  return d;
}

void read_tensor_type(Reader r, ValueInfo& vi) {
  while (r.next()) {
    switch (r.field()) {
      case F::tensor_type::kElemType:
        vi.dtype = static_cast<DType>(r.i32("TypeProto.Tensor.elem_type"));
        break;
      case F::tensor_type::kShape: {
        vi.has_shape = true;
        vi.dims.clear();
        Reader s = r.message("TypeProto.Tensor.shape", "TensorShapeProto");
        while (s.next())
          if (s.field() == F::shape::kDim)
            vi.dims.push_back(read_dim(s.message("TensorShapeProto.dim", "Dimension")));
        break;
      }
    }
  }
}

ValueInfo read_value_info(Reader r) {
  ValueInfo vi;
  while (r.next()) {
    switch (r.field()) {
      case F::value_info::kName: vi.name = r.str("ValueInfoProto.name"); break;
      case F::value_info::kDocString: vi.doc = r.str("ValueInfoProto.doc_string"); break;
      case F::value_info::kType: {
        // Sequence, map, optional and sparse types are skipped: dtype stays undefined.
        Reader t = r.message("ValueInfoProto.type", "TypeProto");
        while (t.next())
          if (t.field() == F::type::kTensorType)
            read_tensor_type(t.message("TypeProto.tensor_type", "TypeProto.Tensor"), vi);
        break;
      }
    }
  }
  return vi;
}

// ---- NodeProto, AttributeProto, GraphProto ------------------------------------------------------

void read_graph(Context& ctx, Reader r, int depth, Graph& g);

std::shared_ptr<Graph> read_subgraph(Context& ctx, Reader& r, const char* field, int depth) {
  if (depth + 1 > kMaxGraphDepth)
    r.fail(field, str_cat("subgraphs are nested deeper than ", kMaxGraphDepth, " levels"));
  auto g = std::make_shared<Graph>();
  read_graph(ctx, r.message(field, "GraphProto"), depth + 1, *g);
  return g;
}

Attribute read_attribute(Context& ctx, Reader r, int depth) {
  using T = Attribute::Type;
  Attribute a;
  bool has_type = false, has_t = false;
  T inferred = T::kUndefined;  // from the value fields, for files that omit `type`
  size_t type_offset = 0;
  while (r.next()) {
    switch (r.field()) {
      case F::attr::kName: a.name = r.str("AttributeProto.name"); break;
      case F::attr::kRefAttrName: a.ref_attr_name = r.str("AttributeProto.ref_attr_name"); break;
      case F::attr::kDocString: a.doc = r.str("AttributeProto.doc_string"); break;
      case F::attr::kType:
        type_offset = r.field_offset();
        a.type = static_cast<T>(r.i32("AttributeProto.type"));
        has_type = true;
        break;
      case F::attr::kF:
        a.f = r.f32("AttributeProto.f");
        inferred = T::kFloat;
        break;
      case F::attr::kI:
        a.i = r.i64("AttributeProto.i");
        inferred = T::kInt;
        break;
      case F::attr::kS:
        a.s = r.str("AttributeProto.s");
        inferred = T::kString;
        break;
      case F::attr::kT:
        a.t = read_tensor(ctx, r.message("AttributeProto.t", "TensorProto"));
        has_t = true;
        inferred = T::kTensor;
        break;
      case F::attr::kG:
        a.g = read_subgraph(ctx, r, "AttributeProto.g", depth);
        inferred = T::kGraph;
        break;
      case F::attr::kFloats: {
        const Run run = r.run("AttributeProto.floats", WireType::kFixed32);
        const size_t n = run.count(), old = a.floats.size();
        a.floats.resize(old + n);
        if (n) std::memcpy(a.floats.data() + old, run.bytes.data, n * 4);
        inferred = T::kFloats;
        break;
      }
      case F::attr::kInts: {
        const Run run = r.run("AttributeProto.ints", WireType::kVarint);
        wire::Cursor c = run.cursor();
        while (!c.done()) a.ints.push_back(static_cast<int64_t>(c.varint()));
        inferred = T::kInts;
        break;
      }
      case F::attr::kStrings:
        a.strings.push_back(r.str("AttributeProto.strings"));
        inferred = T::kStrings;
        break;
      case F::attr::kTensors:
        a.tensors.push_back(read_tensor(ctx, r.message("AttributeProto.tensors", "TensorProto")));
        inferred = T::kTensors;
        break;
      case F::attr::kGraphs:
        a.graphs.push_back(read_subgraph(ctx, r, "AttributeProto.graphs", depth));
        inferred = T::kGraphs;
        break;
      // Sparse tensors are not supported: skipped, and counted in `i` so a consumer can refuse.
      case F::attr::kSparseTensor:
        r.bytes("AttributeProto.sparse_tensor");
        a.i = 1;
        inferred = T::kSparseTensor;
        break;
      case F::attr::kSparseTensors:
        r.bytes("AttributeProto.sparse_tensors");
        ++a.i;
        inferred = T::kSparseTensors;
        break;
      case F::attr::kTp:
        r.bytes("AttributeProto.tp");
        inferred = T::kTypeProto;
        break;
      case F::attr::kTypeProtos:
        r.bytes("AttributeProto.type_protos");
        inferred = T::kTypeProtos;
        break;
    }
  }
  if (!has_type || a.type == T::kUndefined) a.type = inferred;
  const int32_t tv = static_cast<int32_t>(a.type);
  if (tv < 0 || tv > static_cast<int32_t>(T::kTypeProtos))
    fail(ErrorKind::kInvalidModel, "field 'AttributeProto.type' at byte ", type_offset,
         ": attribute '", wire::printable(a.name), "' has unknown type ", tv);
  // Consumers dereference t and g on the strength of `type`: a type without its value is refused.
  if (a.type == T::kTensor && !has_t)
    fail(ErrorKind::kInvalidModel, "field 'AttributeProto.t' of attribute '",
         wire::printable(a.name), "' at byte ", r.begin(),
         ": missing, yet the attribute's type is TENSOR");
  if (a.type == T::kGraph && !a.g)
    fail(ErrorKind::kInvalidModel, "field 'AttributeProto.g' of attribute '",
         wire::printable(a.name), "' at byte ", r.begin(),
         ": missing, yet the attribute's type is GRAPH");
  return a;
}

Node read_node(Context& ctx, Reader r, int depth) {
  Node n;
  while (r.next()) {
    switch (r.field()) {
      case F::node::kInput: n.inputs.push_back(r.str("NodeProto.input")); break;
      case F::node::kOutput: n.outputs.push_back(r.str("NodeProto.output")); break;
      case F::node::kName: n.name = r.str("NodeProto.name"); break;
      case F::node::kOpType: n.op_type = r.str("NodeProto.op_type"); break;
      case F::node::kDomain: n.domain = r.str("NodeProto.domain"); break;
      case F::node::kDocString: n.doc = r.str("NodeProto.doc_string"); break;
      case F::node::kAttribute:
        n.attrs.push_back(
            read_attribute(ctx, r.message("NodeProto.attribute", "AttributeProto"), depth));
        break;
    }
  }
  return n;
}

// `depth`: 0 for the main graph, +1 per level of subgraph.
void read_graph(Context& ctx, Reader r, int depth, Graph& g) {
  while (r.next()) {
    switch (r.field()) {
      case F::graph::kNode:
        g.nodes.push_back(read_node(ctx, r.message("GraphProto.node", "NodeProto"), depth));
        break;
      case F::graph::kName: g.name = r.str("GraphProto.name"); break;
      case F::graph::kDocString: g.doc = r.str("GraphProto.doc_string"); break;
      case F::graph::kInitializer: {
        std::string name;
        Tensor t = read_tensor(ctx, r.message("GraphProto.initializer", "TensorProto"), &name, depth == 0);
        g.initializers.emplace_back(std::move(name), std::move(t));
        break;
      }
      case F::graph::kSparseInitializer:
        g.sparse_initializer_names.push_back(
            read_sparse_name(r.message("GraphProto.sparse_initializer", "SparseTensorProto")));
        break;
      case F::graph::kInput:
        g.inputs.push_back(read_value_info(r.message("GraphProto.input", "ValueInfoProto")));
        break;
      case F::graph::kOutput:
        g.outputs.push_back(read_value_info(r.message("GraphProto.output", "ValueInfoProto")));
        break;
      case F::graph::kValueInfo:
        g.value_info.push_back(
            read_value_info(r.message("GraphProto.value_info", "ValueInfoProto")));
        break;
    }
  }
}

// ---- ModelProto ---------------------------------------------------------------------------------

Model read_model(Context& ctx, Reader r) {
  Model m;
  bool has_graph = false;
  while (r.next()) {
    switch (r.field()) {
      case F::model::kIrVersion: m.ir_version = r.i64("ModelProto.ir_version"); break;
      case F::model::kProducerName: m.producer_name = r.str("ModelProto.producer_name"); break;
      case F::model::kProducerVersion:
        m.producer_version = r.str("ModelProto.producer_version");
        break;
      case F::model::kDomain: m.domain = r.str("ModelProto.domain"); break;
      case F::model::kModelVersion: m.model_version = r.i64("ModelProto.model_version"); break;
      case F::model::kDocString: m.doc = r.str("ModelProto.doc_string"); break;
      case F::model::kGraph:
        m.graph = Graph();  // a repeated singular field: the last one wins
        read_graph(ctx, r.message("ModelProto.graph", "GraphProto"), 0, m.graph);
        has_graph = true;
        break;
      case F::model::kOpsetImport:
        m.opsets.push_back(
            read_opset(r.message("ModelProto.opset_import", "OperatorSetIdProto")));
        break;
      case F::model::kMetadataProps:
        m.metadata.push_back(
            read_entry(r.message("ModelProto.metadata_props", "StringStringEntryProto")));
        break;
    }
  }
  // Both are required by the ONNX spec; their absence is also how bytes that are not a model at
  // all, yet happen to parse as protobuf, are told apart.
  if (!has_graph)
    fail(ErrorKind::kInvalidModel, "field 'ModelProto.graph' is missing: not found between byte ",
         r.begin(), " and byte ", r.end());
  m.realigned_bytes = ctx.realigned_bytes;
  if (m.opsets.empty())
    fail(ErrorKind::kInvalidModel,
         "field 'ModelProto.opset_import' is missing: not found between byte ", r.begin(),
         " and byte ", r.end());
  return m;
}

std::string dir_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

Model load_model_from_bytes(const void* data, size_t size, std::shared_ptr<void> keepalive,
                            const std::string& base_dir) {
  Context ctx{std::move(keepalive), ExternalData(base_dir)};
  LoadPhase phase("protobuf read");
  return read_model(ctx, Reader(static_cast<const uint8_t*>(data), 0, size, "ModelProto"));
}

Model load_model_from_file(const std::string& path) {
  std::shared_ptr<MappedFile> file;
  {
    LoadPhase phase("file map");
    // Up to kSpreadFromBytes mapped in now; a larger file the session maps in whole, on a thread
    // of its own while the passes run (Model::map_whole), or as its pages are read.
    file = MappedFile::open_or_throw(path, /*populate_upto=*/kSpreadFromBytes);
  }
  const uint8_t* data = file->data();
  const size_t size = file->size();
  Context ctx{file, ExternalData(dir_of(path)), true};
  // A file of at most kMapWholeBelow: the pages of weights copied out here are dropped with the
  // session's own drops, not now; large ones too when the session is still to map the file in.
  const bool map_whole = size > kSpreadFromBytes && size <= kMapWholeBelow;
  std::shared_ptr<FilePageDrops> drops;
  if (size <= kMapWholeBelow) drops = std::make_shared<FilePageDrops>(data, size);
  if (map_whole) drops->hold_large(true);
  FilePageDrops::Join join(drops.get());
  LoadPhase phase("protobuf read");
  Model m = read_model(ctx, Reader(data, 0, size, "ModelProto"));
  m.mapping = std::move(file);
  m.mapped_data = data;
  m.mapped_size = size;
  m.map_whole = map_whole;
  m.page_drops = std::move(drops);
  return m;
}

void release_mapped_weight(const uint8_t* mapped_data, size_t mapped_size, const Tensor& t) {
  const auto* p = static_cast<const uint8_t*>(t.data);
  if (!mapped_data || !p || p < mapped_data || p + t.nbytes() > mapped_data + mapped_size) return;
  drop_file_pages(p, t.nbytes());
}

void release_mapped_weight(const Model& m, const Tensor& t) { release_mapped_weight(m.mapped_data, m.mapped_size, t); }

bool realign_weight(Model& m, Tensor& t) {
  if (!is_misaligned(t)) return false;
  Tensor copy = Tensor::clone(t);
  release_mapped_weight(m, t);
  m.realigned_bytes += static_cast<int64_t>(t.nbytes());
  t = std::move(copy);
  return true;
}

void release_unread_weight(const Tensor& t) { drop_file_pages(static_cast<const uint8_t*>(t.data), t.nbytes()); }

}  // namespace runnx
