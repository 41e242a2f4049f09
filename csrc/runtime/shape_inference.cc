#include "runtime/shape_inference.h"

#include <algorithm>

namespace runnx {

namespace {

bool is_tracked_int(DType t) { return t == DType::kI64 || t == DType::kI32; }

int64_t int_at(const Tensor& t, int64_t i) {
  return t.dtype == DType::kI64 ? t.ptr<int64_t>()[i] : t.ptr<int32_t>()[i];
}

}  // namespace

InferredType constant_type(const Tensor& t) {
  InferredType r;
  r.dtype = t.dtype;
  r.has_shape = true;
  for (int64_t d : t.shape) r.dims.push_back(d);
  if (is_tracked_int(t.dtype) && t.rank() <= 1 && static_cast<size_t>(t.numel()) <= kMaxTrackedValues && t.data) {
    r.has_values = true;
    for (int64_t i = 0; i < t.numel(); ++i) r.values.push_back(int_at(t, i));
  }
  return r;
}

InferredType declared_type(const ValueInfo& vi) {
  InferredType r;
  r.dtype = vi.dtype;
  r.has_shape = vi.has_shape;
  for (size_t k = 0; k < vi.dims.size(); ++k) {
    const Dim& d = vi.dims[k];
    if (d.known())
      r.dims.push_back(d.value);
    else
      r.dims.push_back(SymDim::symbol(d.param.empty() ? vi.name + ":" + std::to_string(k) : d.param));
  }
  return r;
}

std::vector<InferredType> infer_value_types(const InferenceInputs& in) {
  std::vector<InferredType> types(in.num_values);
  for (int v = 0; v < in.num_values; ++v) {
    if (const ValueInfo* vi = (*in.declared_inputs)[v]) {
      types[v] = declared_type(*vi);
      // An overridable initializer's feed must match its type; its contents may change.
    } else if (const Tensor* t = (*in.constants)[v]) {
      types[v] = constant_type(*t);
    }
  }
  const InferRegistry& registry = InferRegistry::global();
  for (const Node* n : *in.order) {
    std::vector<const InferredType*> ins;
    std::vector<const Tensor*> consts;
    for (const std::string& name : n->inputs) {
      int v = name.empty() ? -1 : in.id_of(name);
      ins.push_back(v >= 0 ? &types[v] : nullptr);
      consts.push_back(v >= 0 ? (*in.constants)[v] : nullptr);
    }
    std::vector<InferredType> outs(n->outputs.size());
    if (InferFn fn = registry.find(n->domain, n->op_type)) {
      InferContext ctx(*n, in.model->opset(n->domain), std::move(ins), std::move(consts), outs);
      fn(ctx);
    }
    for (size_t k = 0; k < n->outputs.size(); ++k)
      if (!n->outputs[k].empty()) types[in.id_of(n->outputs[k])] = std::move(outs[k]);
  }
  return types;
}

void bind_symbols(const InferredType& declared, const Tensor& fed, SymBindings& bindings,
                  std::vector<std::string>& conflicted) {
  if (!declared.has_shape || declared.dims.size() != fed.shape.size()) return;
  for (size_t k = 0; k < fed.shape.size(); ++k) {
    const std::string* name = declared.dims[k].symbol_name();
    if (!name || std::count(conflicted.begin(), conflicted.end(), *name)) continue;
    auto [it, added] = bindings.emplace(*name, fed.shape[k]);
    if (!added && it->second != fed.shape[k]) {
      conflicted.push_back(*name);
      bindings.erase(it);
    }
  }
}

std::string check_inferred(const InferredType& inferred, const Tensor& actual, const SymBindings& bindings) {
  auto describe = [&](const std::string& what) {
    return what + ": inferred " + inferred.str() + ", the kernel produced " + dtype_name(actual.dtype) +
           shape_str(actual.shape);
  };
  if (inferred.dtype != DType::kUndefined && inferred.dtype != actual.dtype) return describe("dtype differs");
  if (!inferred.has_shape) return "";
  if (inferred.dims.size() != actual.shape.size()) return describe("rank differs");
  for (size_t k = 0; k < actual.shape.size(); ++k) {
    std::optional<int64_t> d = inferred.dims[k].eval(bindings);
    if (d && *d != actual.shape[k]) return describe("dim " + std::to_string(k) + " differs");
  }
  if (inferred.has_values && is_tracked_int(actual.dtype) &&
      static_cast<size_t>(actual.numel()) == inferred.values.size() && actual.data) {
    for (int64_t i = 0; i < actual.numel(); ++i) {
      std::optional<int64_t> v = inferred.values[i].eval(bindings);
      if (v && *v != int_at(actual, i)) return describe("element " + std::to_string(i) + " differs");
    }
  } else if (inferred.has_values && static_cast<size_t>(actual.numel()) != inferred.values.size()) {
    return describe("element count differs from the tracked contents");
  }
  return "";
}

}  // namespace runnx
