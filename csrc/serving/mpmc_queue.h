// A bounded lock-free multi-producer multi-consumer ring (Vyukov's design): each cell carries a
// sequence number that says whether it is free for the producer of ticket t (seq == t) or holds
// the value for the consumer of ticket t (seq == t + 1). Producers and consumers claim tickets with
// one CAS each and never wait on one another's locks; a slow producer delays only the consumer of
// its own cell, which then sees the ring as empty and is woken when the value lands.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace runnx {

template <typename T>
class MpmcQueue {
 public:
  // The capacity is rounded up to a power of two (ticket -> cell is a mask).
  explicit MpmcQueue(size_t capacity) {
    size_t n = 2;
    while (n < capacity) n <<= 1;
    mask_ = n - 1;
    cells_.reset(new Cell[n]);
    for (size_t i = 0; i < n; ++i) cells_[i].seq.store(i, std::memory_order_relaxed);
  }
  MpmcQueue(const MpmcQueue&) = delete;
  MpmcQueue& operator=(const MpmcQueue&) = delete;

  size_t capacity() const { return mask_ + 1; }

  // False when the ring is full.
  bool try_push(T value) {
    size_t pos = tail_.load(std::memory_order_relaxed);
    for (;;) {
      Cell& c = cells_[pos & mask_];
      size_t seq = c.seq.load(std::memory_order_acquire);
      intptr_t diff = static_cast<intptr_t>(seq) - static_cast<intptr_t>(pos);
      if (diff == 0) {
        if (tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
          c.value = std::move(value);
          c.seq.store(pos + 1, std::memory_order_release);  // publish to the consumer of `pos`
          return true;
        }
      } else if (diff < 0) {
        return false;  // the cell still holds the value from one lap ago
      } else {
        pos = tail_.load(std::memory_order_relaxed);  // another producer took this ticket
      }
    }
  }

  // False when no published value is at the head.
  bool try_pop(T& out) {
    size_t pos = head_.load(std::memory_order_relaxed);
    for (;;) {
      Cell& c = cells_[pos & mask_];
      size_t seq = c.seq.load(std::memory_order_acquire);
      intptr_t diff = static_cast<intptr_t>(seq) - static_cast<intptr_t>(pos + 1);
      if (diff == 0) {
        if (head_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
          out = std::move(c.value);
          c.seq.store(pos + mask_ + 1, std::memory_order_release);  // free for the next lap
          return true;
        }
      } else if (diff < 0) {
        return false;
      } else {
        pos = head_.load(std::memory_order_relaxed);
      }
    }
  }

 private:
  struct Cell {
    std::atomic<size_t> seq;
    T value{};
  };
  // Head and tail on their own cache lines: producers and consumers do not share one.
  alignas(64) std::atomic<size_t> tail_{0};
  alignas(64) std::atomic<size_t> head_{0};
  alignas(64) size_t mask_ = 0;
  std::unique_ptr<Cell[]> cells_;
};

}  // namespace runnx
