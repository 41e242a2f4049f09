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

// True when input `slot` of `n` may read a float32 matrix left misaligned in the file: a GEMM's B
// (packed at creation with unaligned loads) and Gather's data (rows copied with memcpy, so an
// embedding table's untouched rows are never even paged in). Anything else reads aligned copies.
bool reads_misaligned_in_place(const Node& n, size_t slot);

}  // namespace runnx
