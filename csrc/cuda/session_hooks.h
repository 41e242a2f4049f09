// What the portable session (runtime/session.cc, built with RUNNX_WITH_CUDA) calls in the CUDA
// provider. Plain declarations: no CUDA header is needed to include this.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "infer/infer.h"
#include "ir/graph.h"
#include "runtime/provider.h"

namespace runnx {
class Session;
}

namespace runnx::cuda {

// Where `node` runs under the CUDA provider: on the device when a CUDA op wrapper takes its op,
// dtypes and attributes, else on the CPU with the reason. Needs no device. `is_constant(k)`: input
// k is an initializer no feed can replace.
NodePlacement place_node(const Node& node, int64_t opset, const std::vector<const InferredType*>& inputs,
                         const std::vector<const InferredType*>& outputs,
                         const std::function<bool(int)>& is_constant);

// The executor for a session with nodes placed on the device (creates their CUDA kernels and
// uploads their constants). Throws InvalidArgument for a bad provider option or device id.
std::unique_ptr<DeviceExecutor> make_executor(const Session& session, const ProviderRequest& request);

}  // namespace runnx::cuda
