// Execution providers. A session runs every node on the CPU unless the user asks for a device
// provider (CUDA): then each node is placed on the device when the device has a kernel for its op
// and dtypes, else on the CPU, and values cross between the two only at those boundaries.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace runnx {

enum class DeviceKind { kCPU, kCUDA };

inline const char* device_kind_name(DeviceKind d) { return d == DeviceKind::kCUDA ? "cuda" : "cpu"; }

inline constexpr const char* kCpuProviderName = "CPUExecutionProvider";
inline constexpr const char* kCudaProviderName = "CUDAExecutionProvider";

class ExecutionProvider {
 public:
  virtual ~ExecutionProvider() = default;
  virtual std::string name() const = 0;  // onnxruntime's names: "CPUExecutionProvider", ...
  virtual DeviceKind device() const = 0;
  virtual bool supports(const Node& node, int64_t opset) const = 0;
};

class CpuProvider : public ExecutionProvider {
 public:
  std::string name() const override { return kCpuProviderName; }
  DeviceKind device() const override { return DeviceKind::kCPU; }
  bool supports(const Node& node, int64_t opset) const override;
};

// A provider the user asked for, with onnxruntime-style options (all strings: "device_id": "0").
struct ProviderRequest {
  std::string name;
  std::map<std::string, std::string> options;
};

// A tensor and where its bytes live. For kCUDA, `tensor.data` is a device pointer on `device_id`.
struct PlacedTensor {
  Tensor tensor;
  DeviceKind device = DeviceKind::kCPU;
  int device_id = 0;
};

// Where one node runs, and why it is not on the preferred device when it is not.
struct NodePlacement {
  DeviceKind device = DeviceKind::kCPU;
  std::string reason;  // "" when on the preferred provider
  // Inputs this node reads on the host even when it runs on the device (shapes, axes), and
  // whether its outputs are written to the host (Shape, Size).
  std::vector<int> host_inputs;
  std::vector<int> shape_only_inputs;  // read for their shape only: never copied
  bool host_outputs = false;
};

// A copy across the provider boundary, as planned at load for host feeds.
struct ValueCopy {
  std::string value;
  DeviceKind to = DeviceKind::kCUDA;  // kCUDA: host -> device; kCPU: device -> host
  int before_step = -1;               // the first step that reads the copy; -1: a graph output, after the run
};

class Session;

// Runs a session whose nodes are split between the CPU and a device (csrc/cuda/executor.*).
// run() is safe to call from several threads at once.
class DeviceExecutor {
 public:
  virtual ~DeviceExecutor() = default;
  // `fed[v]`: the feed for value id v, or nullptr. Returns the `wanted` value ids in order, each
  // on the device asked by `want_on` (same length as `wanted`).
  virtual std::vector<PlacedTensor> run(const std::vector<const PlacedTensor*>& fed, const std::vector<int>& wanted,
                                        const std::vector<DeviceKind>& want_on) = 0;
  // describe() of the kernel at step s (device steps; CPU steps are described by the session).
  virtual std::string describe_step(int step) const = 0;
  // The provider options in effect (with defaults filled in), for get_provider_options().
  virtual std::map<std::string, std::string> options() const = 0;
  // Arena bytes of the latest device plan, device plans built, CUDA graphs captured.
  virtual std::map<std::string, int64_t> stats() const = 0;
};

}  // namespace runnx
