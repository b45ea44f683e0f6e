// The engine's event queue (cpp/src/event_queue.hpp): it pops events in exactly the order of a
// binary heap on the same total order (time, then order), which the engine used before, for
// noisy times, ties, pushes at the current time, pushes before it, and restarts.
#include <cstdint>
#include <functional>
#include <queue>
#include <random>
#include <vector>

#include "../src/event_queue.hpp"
#include "check.hpp"

using namespace podsim;
using namespace podsim::test;

namespace {

struct Event {
  double time;
  std::uint64_t order;
  bool operator>(const Event& o) const {
    return time > o.time || (time == o.time && order > o.order);
  }
};

using Reference = std::priority_queue<Event, std::vector<Event>, std::greater<>>;

// A simulation-like workload: pop the earliest, push 0..2 events at or after it (some at the
// same time, some with equal later times, some far later); now and then one before it. Both
// queues must agree at every pop.
bool same_pops(std::uint64_t seed, bool early, EventQueue<Event>& ours) {
  std::mt19937_64 draw(seed);
  std::uniform_real_distribution<double> jitter(0.9, 1.1);
  Reference reference;
  std::uint64_t order = 0;
  const auto push = [&](double t) {
    // The top two bits as the engine's priority: a later-pushed event may still come first.
    const std::uint64_t priority = draw() % 3;
    const Event e{t, (priority << 62) | order++};
    ours.push(e);
    reference.push(e);
  };
  for (int i = 0; i < 500; ++i) push(i % 7 == 0 ? 0.0 : jitter(draw));
  // 20,000 pops with pushes, then the rest drained.
  for (int step = 0;; ++step) {
    if (ours.empty() != reference.empty() || ours.size() != reference.size()) return false;
    if (reference.empty()) break;
    const Event a = ours.top(), b = reference.top();
    if (a.time != b.time || a.order != b.order) return false;
    ours.pop();
    reference.pop();
    if (step >= 20000) continue;
    const std::uint64_t what = draw() % 10;
    if (what < 3) push(a.time);                                // at the same time
    if (what < 7) push(a.time + jitter(draw));                 // noisy, later
    if (what == 7) push(a.time + 1.0), push(a.time + 1.0);     // equal later times
    if (what == 8) push(a.time * 1e6 + 1.0);                   // far later
    if (early && what == 9 && a.time > 0) push(a.time * 0.5);  // before the last popped time
  }
  return true;
}

void pops_like_a_binary_heap() {
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    EventQueue<Event> queue;
    expect(same_pops(seed, false, queue),
           "the order of a binary heap, seed " + std::to_string(seed));
    queue.clear();
    expect(queue.empty() && queue.size() == 0, "cleared");
    expect(same_pops(seed + 100, true, queue),
           "the same after a clear, with events pushed before the last time, seed " +
               std::to_string(seed));
  }
}

void negative_zero_is_zero() {
  // -0.0 == 0.0: the two tie and pop by order, as in a binary heap.
  EventQueue<Event> queue;
  queue.push({1.0, 0});
  queue.push({0.0, 5});
  queue.push({-0.0, 3});
  expect(queue.top().time == 0.0 && queue.top().order == 3, "-0 and +0 tie: order 3 first");
  queue.pop();
  expect(queue.top().order == 5, "then order 5");
  queue.pop();
  expect(queue.top().time == 1.0, "then the later time");
}

}  // namespace

int main() {
  pops_like_a_binary_heap();
  negative_zero_is_zero();
  return summary();
}
