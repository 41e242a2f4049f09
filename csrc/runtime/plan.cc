#include "runtime/plan.h"

#include <algorithm>
#include <cstdlib>
#include <numeric>

namespace runnx {

namespace {

constexpr int64_t kAlign = 64;

int64_t round_up(int64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// A buffer: the storage one or more values share (a value and its views, or an in-place chain).
struct Buffer {
  int64_t bytes = 0;
  int first = 0, last = 0;  // steps during which it must stay intact
  bool pinned = false;
  int64_t offset = -1;
};

}  // namespace

std::unique_ptr<uint8_t, void (*)(void*)> MemoryPlan::take_arena() {
  if (auto a = idle_.take()) return a;
  void* p = std::aligned_alloc(kAlign, std::max<int64_t>(kAlign, round_up(arena_bytes)));
  return {static_cast<uint8_t*>(p), std::free};
}

void MemoryPlan::give_back(std::unique_ptr<uint8_t, void (*)(void*)> arena) { idle_.give_back(std::move(arena)); }

std::unique_ptr<MemoryPlan> build_memory_plan(const std::vector<StepInfo>& steps,
                                              const std::vector<ValueRecord>& records,
                                              const std::vector<bool>& pinned) {
  const int nv = static_cast<int>(records.size());
  const int ns = static_cast<int>(steps.size());
  auto plan = std::make_unique<MemoryPlan>();
  plan->offset.assign(nv, -1);
  plan->nbytes.assign(nv, -1);
  plan->was_view.assign(nv, false);
  for (int v = 0; v < nv; ++v) plan->was_view[v] = records[v].alias_of >= 0;

  // Pass 1: each allocated value gets a buffer; a view shares the buffer of the value it views.
  std::vector<int> buf_of(nv, -1);
  std::vector<Buffer> bufs;
  for (int s = 0; s < ns; ++s) {
    for (int v : steps[s].outputs) {
      if (v < 0) continue;
      if (records[v].nbytes >= 0) {
        buf_of[v] = static_cast<int>(bufs.size());
        bufs.push_back({records[v].nbytes, s, s, false});
      } else if (records[v].alias_of >= 0) {
        buf_of[v] = buf_of[records[v].alias_of];
      }
    }
  }
  for (int s = 0; s < ns; ++s)
    for (int v : steps[s].inputs)
      if (v >= 0 && buf_of[v] >= 0) bufs[buf_of[v]].last = std::max(bufs[buf_of[v]].last, s);
  // A buffer a graph output lives in (directly or as a view) goes to the heap: it is returned.
  for (int v = 0; v < nv; ++v)
    if (buf_of[v] >= 0 && pinned[v]) bufs[buf_of[v]].pinned = true;

  // Pass 2, in place: output 0 takes over its input's buffer when nothing reads that buffer later,
  // the node itself included: a kernel's in-place contract covers the one input it names, so
  // another input on the same buffer (Add(Conv(d), d) fused to a conv with Z = X, or a view of
  // it) keeps the output apart.
  for (int s = 0; s < ns; ++s) {
    const StepInfo& st = steps[s];
    if (st.inplace_input < 0 || st.inplace_input >= (int)st.inputs.size() || st.outputs.empty()) continue;
    int in = st.inputs[st.inplace_input], out = st.outputs[0];
    if (in < 0 || out < 0 || buf_of[in] < 0 || buf_of[out] < 0 || buf_of[in] == buf_of[out]) continue;
    bool read_twice = false;
    for (int i = 0; i < (int)st.inputs.size(); ++i)
      read_twice |= i != st.inplace_input && st.inputs[i] >= 0 && buf_of[st.inputs[i]] == buf_of[in];
    if (read_twice) continue;
    Buffer& b = bufs[buf_of[in]];
    Buffer& c = bufs[buf_of[out]];
    if (b.pinned || c.pinned || b.last != s || b.bytes != c.bytes || c.first != s) continue;
    int merged = buf_of[out];
    b.last = c.last;
    c.bytes = 0;
    c.pinned = true;  // emptied: never placed
    for (int v = 0; v < nv; ++v)
      if (buf_of[v] == merged) buf_of[v] = buf_of[in];
    plan->inplace_count++;
  }

  // Greedy by size: place the largest buffers first at the lowest offset free for their lifetime.
  std::vector<int> order(bufs.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return bufs[a].bytes > bufs[b].bytes; });
  std::vector<int> placed;
  for (int i : order) {
    Buffer& b = bufs[i];
    if (b.pinned) {
      plan->heap_bytes_unplanned += b.bytes;  // emptied in-place buffers add 0
      continue;
    }
    std::vector<std::pair<int64_t, int64_t>> busy;
    for (int j : placed) {
      const Buffer& o = bufs[j];
      if (o.first <= b.last && b.first <= o.last) busy.push_back({o.offset, o.offset + round_up(o.bytes)});
    }
    std::sort(busy.begin(), busy.end());
    int64_t off = 0;
    for (auto [lo, hi] : busy) {
      if (off + round_up(b.bytes) <= lo) break;
      off = std::max(off, hi);
    }
    b.offset = off;
    plan->arena_bytes = std::max(plan->arena_bytes, off + round_up(b.bytes));
    placed.push_back(i);
  }
  for (int v = 0; v < nv; ++v) {
    if (records[v].nbytes < 0 || buf_of[v] < 0) continue;
    const Buffer& b = bufs[buf_of[v]];
    if (b.offset >= 0) {
      plan->offset[v] = b.offset;
      plan->nbytes[v] = records[v].nbytes;
    }
  }
  return plan;
}

}  // namespace runnx
