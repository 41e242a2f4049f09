// Load-time normalisation every session needs, whatever the optimisation level: Constant nodes
// become initializers (so kernels see their values at creation). Then the optimising passes of
// csrc/passes/ that `optimization_level` switches on (CPU-only layouts left out when a device
// provider is asked for); returns which of them fired, how often.
#pragma once
#include <vector>

#include "ir/graph.h"
#include "passes/pass.h"

namespace runnx {

std::vector<PassFired> prepare_graph(Model& model, int optimization_level, bool device_asked);

}  // namespace runnx
