#include "ir/load_profile.h"

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

namespace runnx {

namespace {

struct Phase {
  std::string name;
  int64_t ns = 0, faults = 0;
};
thread_local std::vector<Phase> phases;

}  // namespace

bool load_profile_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("RUNNX_LOAD_PROFILE");
    return v && v[0] == '1';
  }();
  return on;
}

int64_t load_profile_faults() {
  struct rusage ru;
  return getrusage(RUSAGE_THREAD, &ru) == 0 ? ru.ru_minflt : 0;
}

void load_profile_add(const std::string& name, int64_t ns, int64_t faults) {
  for (Phase& p : phases)
    if (p.name == name) {
      p.ns += ns;
      p.faults += faults;
      return;
    }
  phases.push_back({name, ns, faults});
}

void load_profile_flush(const std::string& title) {
  if (!load_profile_enabled()) return;
  std::stable_sort(phases.begin(), phases.end(), [](const Phase& a, const Phase& b) { return a.ns > b.ns; });
  int64_t total = 0;
  for (const Phase& p : phases) total += p.ns;
  std::fprintf(stderr, "runnx load profile: %s (%.3f ms in phases)\n", title.c_str(), total / 1e6);
  for (const Phase& p : phases)
    std::fprintf(stderr, "  %9.3f ms %7lld faults  %s\n", p.ns / 1e6, static_cast<long long>(p.faults), p.name.c_str());
  phases.clear();
}

}  // namespace runnx
