// Flows sharing links max-min fairly (progressive filling), advanced in time.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "podsim/topology.hpp"

namespace podsim {

class FlowNetwork {
 public:
  // Keeps its own copy of the topology.
  explicit FlowNetwork(const Topology& topology);

  // Makes room for `more` flows; call before add().
  void reserve(std::size_t more);
  // Adds a flow of `bytes` from src to dst owned by `owner`; rates are stale until
  // recompute(). Call advance_to(now) first.
  void add(std::int32_t owner, std::int32_t src, std::int32_t dst, double bytes,
           std::int32_t count = 1);
  // Applies progress at the current rates up to `now`.
  void advance_to(double now);
  // Max-min fair rates for the active flows; returns the time the next flows finish
  // (infinity if none).
  double recompute();
  // At the time recompute() returned: removes the flows that finish then, appending
  // their owners (in flow order) to `owners`.
  void finish(double now, std::vector<std::int32_t>& owners);

  std::size_t active() const { return flows_.size(); }
  // Drops every flow and returns to time 0.
  void clear() {
    flows_.clear();
    now_ = 0.0;
  }

 private:
  struct ActiveFlow {
    std::int32_t owner;
    std::int32_t count;  // identical flows merged into this one
    // Its path's links, not the path's costs: a flow stays 72 bytes, as many flows are active.
    std::array<std::int32_t, kMaxPathLinks> links;
    std::int32_t size;  // links used
    double remaining;
    double rate;
    double finish_in;
  };
  Topology topology_;  // a copy: the network does not depend on the caller's lifetime
  std::vector<ActiveFlow> flows_;
  std::vector<double> capacity_left_;
  std::vector<std::int32_t> unfixed_count_;
  std::vector<char> touched_;
  std::vector<std::int32_t> touched_links_;
  double now_ = 0.0;
  double next_finish_in_ = 0.0;
};

}  // namespace podsim
