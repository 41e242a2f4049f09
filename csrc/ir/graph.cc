#include "ir/graph.h"

#include "common/status.h"

namespace runnx {

const Attribute* Node::attr(const std::string& n) const {
  for (const Attribute& a : attrs)
    if (a.name == n) return &a;
  return nullptr;
}

std::string Node::label() const { return op_type + " node '" + name + "'"; }

static const Attribute* typed(const Node& node, const std::string& n, Attribute::Type t) {
  const Attribute* a = node.attr(n);
  if (a && a->type != t)
    fail(ErrorKind::kInvalidModel, node.label(), ": attribute '", n, "' has type ",
         static_cast<int>(a->type), ", expected ", static_cast<int>(t));
  return a;
}

int64_t Node::get_int(const std::string& n, int64_t dflt) const {
  const Attribute* a = typed(*this, n, Attribute::Type::kInt);
  return a ? a->i : dflt;
}
float Node::get_float(const std::string& n, float dflt) const {
  const Attribute* a = typed(*this, n, Attribute::Type::kFloat);
  return a ? a->f : dflt;
}
std::string Node::get_string(const std::string& n, const std::string& dflt) const {
  const Attribute* a = typed(*this, n, Attribute::Type::kString);
  return a ? a->s : dflt;
}
std::vector<int64_t> Node::get_ints(const std::string& n, std::vector<int64_t> dflt) const {
  const Attribute* a = typed(*this, n, Attribute::Type::kInts);
  return a ? a->ints : dflt;
}
std::vector<float> Node::get_floats(const std::string& n, std::vector<float> dflt) const {
  const Attribute* a = typed(*this, n, Attribute::Type::kFloats);
  return a ? a->floats : dflt;
}

int64_t Model::opset(const std::string& d) const {
  std::string want = d == "ai.onnx" ? "" : d;
  for (const OpsetImport& o : opsets)
    if ((o.domain == "ai.onnx" ? "" : o.domain) == want) return o.version;
  return 0;
}

bool materialize_constant(Model& m, const std::string& name, Tensor& t, std::mutex* assign_mu) {
  auto it = m.deferred.find(name);
  if (it == m.deferred.end()) return false;
  DeferredConstant& d = *it->second;
  std::call_once(d.once, [&] {
    std::shared_ptr<void> block = d.compute();
    d.compute = nullptr;  // lets go of the sources it captured
    std::unique_lock<std::mutex> lk;
    if (assign_mu) lk = std::unique_lock<std::mutex>(*assign_mu);
    t.data = block.get();
    t.owner = std::move(block);
    d.done = true;
  });
  return true;
}

}  // namespace runnx
