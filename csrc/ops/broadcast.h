// Iteration over up to three broadcast operands without materialising the broadcast. Dims are
// coalesced first, so the innermost run is as long as the layouts allow; each operand's inner
// stride is then 0 (broadcast) or 1 (contiguous), which lets the inner loops vectorise.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "common/thread_pool.h"
#include "ops/op_util.h"

namespace runnx {

template <int N>
class BroadcastLoop {
 public:
  BroadcastLoop(const std::array<const Shape*, N>& in, const Shape& out) {
    std::array<std::vector<int64_t>, N> st;
    for (int k = 0; k < N; ++k) st[k] = broadcast_strides(*in[k], out);
    // Coalesce: drop size-1 dims, merge dim i into i+1 when every operand stays linear across it.
    for (size_t i = 0; i < out.size(); ++i) {
      if (out[i] == 1) continue;
      bool merge = !dims_.empty();
      for (int k = 0; k < N && merge; ++k) merge = strides_[k].back() == st[k][i] * out[i];
      if (merge) {
        dims_.back() *= out[i];
        for (int k = 0; k < N; ++k) strides_[k].back() = st[k][i];
      } else {
        dims_.push_back(out[i]);
        for (int k = 0; k < N; ++k) strides_[k].push_back(st[k][i]);
      }
    }
    if (dims_.empty()) {
      dims_.push_back(1);
      for (int k = 0; k < N; ++k) strides_[k].push_back(0);
    }
    inner_ = dims_.back();
    rows_ = 1;
    for (size_t i = 0; i + 1 < dims_.size(); ++i) rows_ *= dims_[i];
    for (int k = 0; k < N; ++k) inner_stride_[k] = strides_[k].back();
  }

  int64_t rows() const { return rows_; }
  int64_t inner() const { return inner_; }
  // 0 or 1 for operand k in the inner run (1 may also be a larger stride only when inner == 1).
  int64_t inner_stride(int k) const { return inner_stride_[k]; }

  // Element offset of operand k at the start of output row r.
  void row_offsets(int64_t r, std::array<int64_t, N>& off) const {
    off.fill(0);
    for (int64_t i = static_cast<int64_t>(dims_.size()) - 2; i >= 0; --i) {
      int64_t idx = r % dims_[i];
      r /= dims_[i];
      for (int k = 0; k < N; ++k) off[k] += idx * strides_[k][i];
    }
  }

  // Calls fn(out_offset, offsets, n) for runs of the output, spread over the pool.
  template <typename F>
  void run(ThreadPool& pool, F&& fn) const {
    const int64_t grain_rows = std::max<int64_t>(1, 32768 / std::max<int64_t>(inner_, 1));
    if (rows_ == 1) {
      // One long run: split it into chunks.
      pool.parallel_for(inner_, 32768, [&](int64_t b, int64_t e) {
        std::array<int64_t, N> off;
        for (int k = 0; k < N; ++k) off[k] = b * inner_stride_[k];
        fn(b, off, e - b);
      });
      return;
    }
    pool.parallel_for(rows_, grain_rows, [&](int64_t b, int64_t e) {
      std::array<int64_t, N> off;
      for (int64_t r = b; r < e; ++r) {
        row_offsets(r, off);
        fn(r * inner_, off, inner_);
      }
    });
  }

 private:
  std::vector<int64_t> dims_;
  std::array<std::vector<int64_t>, N> strides_;
  std::array<int64_t, N> inner_stride_{};
  int64_t inner_ = 1, rows_ = 1;
};

}  // namespace runnx
