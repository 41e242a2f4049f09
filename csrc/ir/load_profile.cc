#include "ir/load_profile.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

namespace runnx {

namespace {

thread_local std::vector<std::pair<std::string, int64_t>> phases;

}  // namespace

bool load_profile_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("RUNNX_LOAD_PROFILE");
    return v && v[0] == '1';
  }();
  return on;
}

void load_profile_add(const std::string& name, int64_t ns) {
  for (auto& [n, t] : phases)
    if (n == name) {
      t += ns;
      return;
    }
  phases.emplace_back(name, ns);
}

void load_profile_flush(const std::string& title) {
  if (!load_profile_enabled()) return;
  std::stable_sort(phases.begin(), phases.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  int64_t total = 0;
  for (const auto& p : phases) total += p.second;
  std::fprintf(stderr, "runnx load profile: %s (%.3f ms in phases)\n", title.c_str(), total / 1e6);
  for (const auto& [n, t] : phases) std::fprintf(stderr, "  %9.3f ms  %s\n", t / 1e6, n.c_str());
  phases.clear();
}

}  // namespace runnx
