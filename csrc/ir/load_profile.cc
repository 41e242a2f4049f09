#include "ir/load_profile.h"

#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace runnx {

namespace {

thread_local LoadProfile* current_profile = nullptr;
thread_local LoadPhase* open_phase = nullptr;  // innermost phase open on this thread

int64_t wall_now() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t thread_cpu_now() {
  timespec ts;
  return clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0 ? ts.tv_sec * int64_t{1000000000} + ts.tv_nsec : 0;
}

int64_t thread_faults() {
  struct rusage ru;
  return getrusage(RUSAGE_THREAD, &ru) == 0 ? ru.ru_minflt : 0;
}

}  // namespace

bool load_profile_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("RUNNX_LOAD_PROFILE");
    return v && v[0] == '1';
  }();
  return on;
}

LoadProfile::LoadProfile(std::string title, bool force, bool print)
    : title_(std::move(title)), print_(print) {
  if (current_profile || !(force || load_profile_enabled())) return;  // nested: the outer one reports
  active_ = true;
  current_profile = this;
  t0_ = wall_now();
}

LoadProfile::~LoadProfile() {
  if (!active_) return;
  current_profile = nullptr;
  if (!print_) return;
  std::vector<LoadPhaseTotal> ps = phases();
  std::stable_sort(ps.begin(), ps.end(), [](const LoadPhaseTotal& a, const LoadPhaseTotal& b) { return a.wall_ns > b.wall_ns; });
  int64_t wall = 0, cpu = 0;
  for (const LoadPhaseTotal& p : ps) {
    wall += p.wall_ns;
    cpu += p.cpu_ns;
  }
  std::fprintf(stderr, "runnx load profile: %s%s (%.3f ms wall, %.3f ms in phases, %.3f ms cpu in phases)\n",
               title_.c_str(), succeeded_ ? "" : " (failed)", elapsed_ns() / 1e6, wall / 1e6, cpu / 1e6);
  for (const LoadPhaseTotal& p : ps)
    std::fprintf(stderr, "  %9.3f ms %9.3f cpu %7lld faults  %s\n", p.wall_ns / 1e6, p.cpu_ns / 1e6,
                 static_cast<long long>(p.faults), p.name.c_str());
}

std::vector<LoadPhaseTotal> LoadProfile::phases() const {
  std::lock_guard<std::mutex> lk(mu_);
  return phases_;
}

int64_t LoadProfile::elapsed_ns() const { return wall_now() - t0_; }

LoadProfile* LoadProfile::current() { return current_profile; }

void LoadProfile::add(const std::string& name, int64_t wall_ns, int64_t cpu_ns, int64_t faults) {
  std::lock_guard<std::mutex> lk(mu_);
  for (LoadPhaseTotal& p : phases_)
    if (p.name == name) {
      p.wall_ns += wall_ns;
      p.cpu_ns += cpu_ns;
      p.faults += faults;
      return;
    }
  phases_.push_back({name, wall_ns, cpu_ns, faults});
}

LoadProfile::Join::Join(LoadProfile* profile) : saved_(current_profile) {
  current_profile = profile && profile->active() ? profile : nullptr;
}

LoadProfile::Join::~Join() { current_profile = saved_; }

LoadPhase::LoadPhase(const char* prefix, const std::string* detail) : profile_(current_profile) {
  if (!profile_) return;
  name_ = prefix;
  if (detail) name_ += *detail;
  parent_ = open_phase;
  open_phase = this;
  faults0_ = thread_faults();
  cpu0_ = thread_cpu_now();
  wall0_ = wall_now();
}

LoadPhase::~LoadPhase() {
  if (!profile_) return;
  const int64_t wall = wall_now() - wall0_, cpu = thread_cpu_now() - cpu0_, faults = thread_faults() - faults0_;
  open_phase = parent_;
  if (parent_) {
    parent_->child_wall_ += wall;
    parent_->child_cpu_ += cpu;
    parent_->child_faults_ += faults;
  }
  profile_->add(name_, wall - child_wall_, cpu - child_cpu_, faults - child_faults_);
}

}  // namespace runnx
