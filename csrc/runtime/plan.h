// A memory plan for one input-shape signature: where each intermediate value lives in one arena.
// It is built by observing one run (shapes, sizes, which outputs alias which inputs) and reused by
// every later run with the same signature, so dynamic batch or sequence lengths plan once each.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "runtime/idle_list.h"

namespace runnx {

// What one run showed about a value.
struct ValueRecord {
  int64_t nbytes = -1;  // -1: not allocated by the executor (input, initializer, view, skipped)
  int alias_of = -1;    // value id whose buffer this value views, or -1
  bool operator==(const ValueRecord& o) const { return nbytes == o.nbytes && alias_of == o.alias_of; }
};

struct StepInfo {
  std::vector<int> inputs;   // value ids, -1 for omitted
  std::vector<int> outputs;  // value ids, -1 for omitted
  int inplace_input = -1;    // kernel's in-place candidate (an index into inputs)
};

struct MemoryPlan {
  std::vector<int64_t> offset;  // per value id: arena byte offset, or -1 (heap / not planned)
  std::vector<int64_t> nbytes;  // per value id: the size the offset was planned for
  std::vector<bool> was_view;   // per value id: a view of another value in the observed run
  int64_t arena_bytes = 0;
  int64_t heap_bytes_unplanned = 0;  // bytes that stayed outside the arena in the observed run
  int inplace_count = 0;
  // A plan made from static shapes keeps the records it was built from until the observing run
  // it served compares them with what that run saw.
  std::vector<ValueRecord> records;

  // Arenas returned by finished runs, reused by the next (one per concurrent run).
  std::unique_ptr<uint8_t, void (*)(void*)> take_arena();
  void give_back(std::unique_ptr<uint8_t, void (*)(void*)> arena);

  MemoryPlan() : idle_(std::free) {}

 private:
  IdleList<uint8_t, void (*)(void*)> idle_;
};

// Builds the plan. `pinned[v]` is true for values that must not be in the arena (graph outputs,
// graph inputs, initializers).
std::unique_ptr<MemoryPlan> build_memory_plan(const std::vector<StepInfo>& steps,
                                              const std::vector<ValueRecord>& records,
                                              const std::vector<bool>& pinned);

}  // namespace runnx
