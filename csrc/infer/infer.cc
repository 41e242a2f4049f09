#include "infer/infer.h"

namespace runnx {

#define RUNNX_INFER_FAMILY(f) void register_##f##_infer(InferRegistry& r);
#include "infer/families.inc"
#undef RUNNX_INFER_FAMILY

SymDim InferredType::numel() const {
  if (!has_shape) return SymDim::unknown();
  SymDim n = 1;
  for (const SymDim& d : dims) n = n * d;
  return n;
}

std::string InferredType::str() const {
  std::string s = dtype == DType::kUndefined ? "?" : dtype_name(dtype);
  if (!has_shape) return s + "[...]";
  s += "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? "," : "") + dims[i].str();
  s += "]";
  if (has_values) {
    s += " = {";
    for (size_t i = 0; i < values.size(); ++i) s += (i ? "," : "") + values[i].str();
    s += "}";
  }
  return s;
}

const InferredType& InferContext::input(int i) const {
  if (!has_input(i)) fail("required input ", i, " is missing");
  return *inputs_[i];
}

const std::vector<SymDim>* InferContext::dims(int i) const {
  return has_input(i) && inputs_[i]->has_shape ? &inputs_[i]->dims : nullptr;
}

const std::vector<SymDim>* InferContext::values(int i) const {
  return has_input(i) && inputs_[i]->has_values ? &inputs_[i]->values : nullptr;
}

std::optional<std::vector<int64_t>> InferContext::ints(int i) const {
  const std::vector<SymDim>* v = values(i);
  if (!v) return std::nullopt;
  std::vector<int64_t> out;
  for (const SymDim& d : *v) {
    if (!d.is_const()) return std::nullopt;
    out.push_back(d.value());
  }
  return out;
}

InferredType& InferContext::output(int i) {
  if (i >= num_outputs()) fail("has no output ", i);
  return outputs_[i];
}

void InferContext::set_output(int i, DType dtype, std::vector<SymDim> dims) {
  if (!has_output(i)) return;
  InferredType& t = output(i);
  t.dtype = dtype;
  t.has_shape = true;
  t.dims = std::move(dims);
}

void InferContext::set_output_unknown_shape(int i, DType dtype) {
  if (!has_output(i)) return;
  InferredType& t = output(i);
  t.dtype = dtype;
  t.has_shape = false;
  t.dims.clear();
}

const InferRegistry& InferRegistry::global() {
  static const InferRegistry registry = [] {
    InferRegistry r;
#define RUNNX_INFER_FAMILY(f) register_##f##_infer(r);
#include "infer/families.inc"
#undef RUNNX_INFER_FAMILY
    return r;
  }();
  return registry;
}

void InferRegistry::add(const std::string& op_type, const std::string& domain, InferFn fn) {
  ops_.emplace_back(domain, op_type);
  fns_.push_back(fn);
}

InferFn InferRegistry::find(const std::string& domain, const std::string& op_type) const {
  const std::string& d = domain == "ai.onnx" ? std::string() : domain;
  for (size_t k = 0; k < ops_.size(); ++k)
    if (ops_[k].second == op_type && ops_[k].first == d) return fns_[k];
  return nullptr;
}

int64_t infer_axis(const InferContext& ctx, int64_t axis, int64_t rank) {
  ctx.check(axis >= -rank && axis < std::max<int64_t>(rank, 1), "axis ", axis,
            " is out of range for rank ", rank);
  return axis < 0 ? axis + rank : axis;
}

std::vector<SymDim> broadcast_inputs(const InferContext& ctx, const std::vector<int>& inputs) {
  size_t rank = 0;
  for (int i : inputs) rank = std::max(rank, ctx.input(i).dims.size());
  std::vector<SymDim> out(rank, SymDim(1));
  for (int i : inputs) {
    const std::vector<SymDim>& d = ctx.input(i).dims;
    size_t off = rank - d.size();
    for (size_t k = 0; k < d.size(); ++k) {
      SymDim& o = out[off + k];
      if (o.is_const() && d[k].is_const() && o.value() != d[k].value() && o.value() != 1 && d[k].value() != 1)
        ctx.fail("input shapes cannot broadcast: dimension ", off + k, " is ", o.value(), " in one input and ",
                 d[k].value(), " in input ", i);
      o = broadcast(o, d[k]);
    }
  }
  return out;
}

DType same_dtype(const InferContext& ctx, const std::vector<int>& inputs) {
  DType t = DType::kUndefined;
  int first = -1;
  for (int i : inputs) {
    if (!ctx.has_input(i)) continue;
    DType d = ctx.input(i).dtype;
    if (d == DType::kUndefined) continue;
    if (t == DType::kUndefined) {
      t = d;
      first = i;
    } else if (d != t) {
      ctx.fail("input types differ: input ", first, " is tensor(", dtype_name(t), ") but input ", i,
               " is tensor(", dtype_name(d), ")");
    }
  }
  return t;
}

void pass_through(InferContext& ctx, int in, int out) {
  if (ctx.has_output(out)) ctx.output(out) = ctx.input(in);
}

void like_input(InferContext& ctx, int in, int out, DType dtype) {
  const InferredType& t = ctx.input(in);
  if (t.has_shape)
    ctx.set_output(out, dtype, t.dims);
  else
    ctx.set_output_unknown_shape(out, dtype);
}

SymDim merge_dims(const InferContext& ctx, const SymDim& a, const SymDim& b, const char* what) {
  if (a.is_const() && b.is_const() && a.value() != b.value())
    ctx.fail(what, ": ", a.value(), " does not match ", b.value());
  if (a.is_const()) return a;
  if (b.is_const()) return b;
  return a.is_unknown() ? b : a;
}

DType infer_dtype_attr(const InferContext& ctx, int64_t v) {
  ctx.check(v >= 0 && v <= 0xffff && dtype_valid(static_cast<int32_t>(v)), "data type ", v,
            " is not supported");
  return static_cast<DType>(v);
}

}  // namespace runnx
