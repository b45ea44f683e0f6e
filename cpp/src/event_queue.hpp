// The engine's event queue: a radix heap (Ahuja, Mehlhorn, Orlin & Tarjan 1990) on event times,
// for a clock that never goes back: every event is pushed at or after the time of the last one
// popped. Events later than the last time sit in 64 buckets by the highest bit in which their
// time's bits differ from it; when the events at the last time are all popped, the lowest
// non-empty bucket's earliest time becomes the last time, and its events move to lower buckets
// or, those at that time, to a sorted run that pops in order (events pushed at or before the last
// time meanwhile go to a small binary heap beside it). Each event moves a few times, along
// contiguous arrays: a binary heap of the 10^4..10^5 events of a 16,384-rank run takes a cache
// miss per level instead.
//
// The order key is a total order (earliest time, then `order`, unique per event), so events pop
// in exactly the order any correct priority queue gives. An event pushed before the last time
// (which the engine never does) still pops in that order: it goes to the heap.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <vector>

namespace podsim {

template <class Event>
class EventQueue {
 public:
  bool empty() const { return size_ == 0; }
  std::size_t size() const { return size_; }

  // Empties the queue, keeping the buckets' capacity: a restarted run allocates nothing.
  void clear() {
    run_.clear();
    next_ = 0;
    early_.clear();
    for (auto& bucket : buckets_) bucket.clear();
    occupied_ = 0;
    last_ = 0;
    size_ = 0;
  }

  void push(const Event& e) {
    ++size_;
    const std::uint64_t k = key(e.time);
    if (k <= last_) {
      early_.push_back(e);
      std::push_heap(early_.begin(), early_.end(), later);
      return;
    }
    const int b = bucket(k);
    buckets_[b].push_back(e);
    occupied_ |= std::uint64_t{1} << b;
  }

  // The earliest event (the queue must not be empty).
  const Event& top() {
    if (next_ == run_.size() && early_.empty()) refill();
    return from_run() ? run_[next_] : early_.front();
  }

  void pop() {
    if (next_ == run_.size() && early_.empty()) refill();
    if (from_run()) {
      ++next_;
    } else {
      std::pop_heap(early_.begin(), early_.end(), later);
      early_.pop_back();
    }
    --size_;
  }

 private:
  // Doubles mapped to integers in the same order (-0 taken as +0, as == does).
  static std::uint64_t key(double time) {
    const auto bits = std::bit_cast<std::uint64_t>(time + 0.0);
    return bits >> 63 ? ~bits : bits | (std::uint64_t{1} << 63);
  }
  // 0..63: the highest bit in which k (> last_) differs from last_.
  int bucket(std::uint64_t k) const { return 63 - std::countl_zero(k ^ last_); }

  static bool later(const Event& a, const Event& b) {
    return a.time > b.time || (a.time == b.time && a.order > b.order);
  }
  // Whether the earliest event is the run's next (not the heap's top).
  bool from_run() const {
    return next_ < run_.size() && (early_.empty() || later(early_.front(), run_[next_]));
  }

  // Nothing is left at or before the last time: the lowest occupied bucket's earliest time
  // becomes the last time, and its events move to the run (those at that time, in order) or to
  // lower buckets.
  void refill() {
    run_.clear();
    next_ = 0;
    const int lowest = std::countr_zero(occupied_);
    std::vector<Event>& from = buckets_[lowest];
    std::uint64_t least = key(from.front().time);
    for (const Event& e : from) least = std::min(least, key(e.time));
    last_ = least;
    occupied_ &= ~(std::uint64_t{1} << lowest);
    moving_.swap(from);
    for (const Event& e : moving_) {
      const std::uint64_t k = key(e.time);
      if (k == last_) {
        run_.push_back(e);
        continue;
      }
      const int to = bucket(k);
      buckets_[to].push_back(e);
      occupied_ |= std::uint64_t{1} << to;
    }
    moving_.clear();
    // Equal times: by `order`; events usually arrive in it (pushed in sequence).
    const auto before = [](const Event& a, const Event& b) { return a.order < b.order; };
    if (!std::is_sorted(run_.begin(), run_.end(), before))
      std::sort(run_.begin(), run_.end(), before);
  }

  std::vector<Event> run_;  // at the last time, earliest first; run_[next_] pops next
  std::size_t next_ = 0;
  std::vector<Event> early_;  // pushed at or before the last time: a binary heap, earliest on top
  std::array<std::vector<Event>, 64> buckets_;
  std::vector<Event> moving_;   // a bucket being moved down (kept to reuse its capacity)
  std::uint64_t occupied_ = 0;  // bit b: bucket b holds events
  std::uint64_t last_ = 0;      // key of the time last moved into bucket 0
  std::size_t size_ = 0;
};

}  // namespace podsim
