// Load-time normalisation every session needs, whatever the optimisation level: Constant nodes
// become initializers (so kernels see their values at creation). Optimising passes live in
// csrc/passes/ and are switched by graph_optimization_level.
#pragma once
#include "ir/graph.h"

namespace runnx {

void prepare_graph(Model& model, int optimization_level);

}  // namespace runnx
