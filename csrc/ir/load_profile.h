// Where session creation spends its time, per phase (file map, protobuf read, each graph pass,
// validation, inference, kernel construction per op type). Off unless RUNNX_LOAD_PROFILE=1: then
// each creation prints one line per phase to stderr. Phases are kept per thread, so concurrent
// loads do not mix; the cost when off is one branch per phase.
#pragma once
#include <chrono>
#include <string>

namespace runnx {

bool load_profile_enabled();
// Adds `ns` (and `faults` minor page faults) to phase `name` of this thread's current load.
void load_profile_add(const std::string& name, int64_t ns, int64_t faults = 0);
// Minor page faults of this thread so far (what a phase costs in fresh pages).
int64_t load_profile_faults();
// Prints this thread's phases (largest first) under `title` and clears them.
void load_profile_flush(const std::string& title);

// Times a scope into phase `name` (nothing when profiling is off).
class LoadPhase {
 public:
  explicit LoadPhase(const char* name) : name_(load_profile_enabled() ? name : nullptr) {
    if (name_) {
      faults0_ = load_profile_faults();
      t0_ = std::chrono::steady_clock::now();
    }
  }
  ~LoadPhase() {
    if (name_)
      load_profile_add(name_,
                       std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0_).count(),
                       load_profile_faults() - faults0_);
  }
  LoadPhase(const LoadPhase&) = delete;

 private:
  const char* name_;
  std::chrono::steady_clock::time_point t0_;
  int64_t faults0_ = 0;
};

}  // namespace runnx
