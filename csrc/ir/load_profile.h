// Where session creation spends its time, per phase (file map, protobuf read, each graph pass,
// validation, inference, kernel construction per op type, weight release). Off unless
// RUNNX_LOAD_PROFILE=1: then each creation prints one line per phase to stderr (wall ms, thread
// CPU ms, minor page faults), a failed one too, marked so. The cost when off is one thread-local
// read per phase.
//
// A LoadProfile collects one creation. Phases count self time: a phase opened inside another
// (weight release inside a kernel's construction) is taken out of the enclosing one, so the
// phases add up to the time spent in them. Phases run on threads that joined the creation
// (LoadProfile::Join, for kernels built on a pool) land in the same report.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace runnx {

bool load_profile_enabled();

struct LoadPhaseTotal {
  std::string name;
  int64_t wall_ns = 0, cpu_ns = 0, faults = 0;
};

class LoadProfile {
 public:
  // Collects when RUNNX_LOAD_PROFILE=1 (or `force`); prints under `title` when it ends unless
  // `print` is false. A profile already collecting on this thread is left to its owner.
  explicit LoadProfile(std::string title, bool force = false, bool print = true);
  ~LoadProfile();
  LoadProfile(const LoadProfile&) = delete;
  LoadProfile& operator=(const LoadProfile&) = delete;

  // The creation finished; a profile that ends without this reports "(failed)".
  void succeeded() { succeeded_ = true; }
  bool active() const { return active_; }
  // Phases so far, in the order first seen, and the wall time since the profile began.
  std::vector<LoadPhaseTotal> phases() const;
  int64_t elapsed_ns() const;

  // The profile collecting on this thread, or nullptr.
  static LoadProfile* current();

  // Makes `profile` (may be null) current on this thread for the scope (a pool worker building
  // kernels for it).
  class Join {
   public:
    explicit Join(LoadProfile* profile);
    ~Join();
    Join(const Join&) = delete;

   private:
    LoadProfile* saved_;
  };

  void add(const std::string& name, int64_t wall_ns, int64_t cpu_ns, int64_t faults);

 private:
  std::string title_;
  bool active_ = false, print_ = true, succeeded_ = false;
  int64_t t0_ = 0;
  mutable std::mutex mu_;
  std::vector<LoadPhaseTotal> phases_;
};

// Times a scope into phase `name` of the current profile (nothing when none is collecting).
class LoadPhase {
 public:
  explicit LoadPhase(const char* name) : LoadPhase(name, nullptr) {}
  // Phase "<prefix><detail>" (the name is built only when profiling).
  LoadPhase(const char* prefix, const std::string* detail);
  ~LoadPhase();
  LoadPhase(const LoadPhase&) = delete;
  LoadPhase& operator=(const LoadPhase&) = delete;

 private:
  LoadProfile* profile_;
  LoadPhase* parent_ = nullptr;
  std::string name_;
  int64_t wall0_ = 0, cpu0_ = 0, faults0_ = 0;
  int64_t child_wall_ = 0, child_cpu_ = 0, child_faults_ = 0;  // nested phases, taken out
};

}  // namespace runnx
