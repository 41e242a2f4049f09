// A tensor in device memory handed to Python (IOBinding outputs bound to "cuda"): runnx.OrtValue
// wraps it. Its owner keeps the device allocation alive.
#pragma once
#include "runtime/provider.h"

namespace runnx {

struct DeviceValue {
  PlacedTensor placed;
};

}  // namespace runnx
