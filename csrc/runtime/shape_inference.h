// The session's static inference pass and its run-time counterpart.
//
// At load, every value gets an InferredType (infer/infer.h) in topological order. At run time
// the feeds bind the graph inputs' symbols, and the first run of each shape signature checks
// every value the kernels produced against its inferred type under those bindings: a mismatch
// is a bug in an inference function (counted in the session stats; RUNNX_CHECK_INFERENCE=1, as
// the test suite sets, turns it into a RuntimeFailure).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "infer/infer.h"
#include "ir/graph.h"

namespace runnx {

struct InferenceInputs {
  const Model* model;
  const std::vector<const Node*>* order;                 // topological
  std::function<int(const std::string&)> id_of;          // value name -> id
  int num_values;
  const std::vector<const Tensor*>* constants;           // per id: non-overridable constant or null
  const std::vector<const ValueInfo*>* declared_inputs;  // per id: graph input declaration or null
};

// Inferred types per value id. Raises InvalidModel naming the node on a contradiction.
std::vector<InferredType> infer_value_types(const InferenceInputs& in);

// The type a load-time constant has (contents tracked for small integer tensors).
InferredType constant_type(const Tensor& t);
// The type a graph input declares: dims named by dim_param become symbols; unnamed ones get the
// symbol "<input>:<axis>" so they too are bound at run time.
InferredType declared_type(const ValueInfo& vi);

// Binds the symbols in `declared` to the dims of the fed tensor. A symbol seen with two values
// is left unbound (checks then skip it).
void bind_symbols(const InferredType& declared, const Tensor& fed, SymBindings& bindings,
                  std::vector<std::string>& conflicted);

// "" when `actual` agrees with `inferred` under `bindings`, else what differs.
std::string check_inferred(const InferredType& inferred, const Tensor& actual, const SymBindings& bindings);

}  // namespace runnx
