#include "passes/static_shapes.h"

namespace runnx {

StaticShapes::StaticShapes(const Model& model) {
  const Graph& g = model.graph;
  for (const auto& [name, t] : g.initializers) shapes_[name] = t.shape;
  for (const ValueInfo& vi : g.inputs) {
    shapes_.erase(vi.name);  // an overridable initializer's shape is the feed's
    if (!vi.has_shape) continue;
    Shape s;
    bool fixed = true;
    for (const Dim& d : vi.dims) {
      if (!d.known()) fixed = false;
      s.push_back(d.value);
    }
    if (fixed) shapes_[vi.name] = std::move(s);
  }
}

const Shape* StaticShapes::find(const std::string& value) const {
  auto it = shapes_.find(value);
  return it == shapes_.end() ? nullptr : &it->second;
}

}  // namespace runnx
