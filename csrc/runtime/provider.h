// Execution providers. Today only the CPU provider exists; the interface leaves room for CUDA:
// each provider says which nodes it takes (supports), and the session records a placement per
// node so copies can be inserted at provider boundaries.
#pragma once
#include <string>

#include "ir/graph.h"

namespace runnx {

enum class DeviceKind { kCPU, kCUDA };

class ExecutionProvider {
 public:
  virtual ~ExecutionProvider() = default;
  virtual std::string name() const = 0;  // onnxruntime's names: "CPUExecutionProvider", ...
  virtual DeviceKind device() const = 0;
  virtual bool supports(const Node& node, int64_t opset) const = 0;
};

class CpuProvider : public ExecutionProvider {
 public:
  std::string name() const override { return "CPUExecutionProvider"; }
  DeviceKind device() const override { return DeviceKind::kCPU; }
  bool supports(const Node& node, int64_t opset) const override;
};

}  // namespace runnx
