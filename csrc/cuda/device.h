// What the CUDA runtime says about this machine, asked so that it never fails: a machine without a
// GPU or without a driver simply has no devices, and the reason is kept for messages.
#pragma once
#include <string>

namespace runnx::cuda {

// Devices that answer; 0 when there is no GPU, no driver, or a driver too old for this build.
int device_count();
// Why device_count() is 0 (the runtime's own words), "" when devices exist.
std::string unavailable_reason();
// "NVIDIA H200 (sm_90, 139 GiB)" for device `index`.
std::string describe_device(int index);
// Launches a tiny kernel on device `index` and checks its result: proves this build carries code
// the device can run (SASS for its architecture or PTX it can JIT). Throws RuntimeFailure if not.
void self_test(int index);

}  // namespace runnx::cuda
