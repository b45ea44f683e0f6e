#include "podsim/network.hpp"

#include <algorithm>
#include <limits>
#include <string>

#include "podsim/errors.hpp"

namespace podsim {
namespace {

// Links whose fair share is within this relative distance of the smallest are filled together,
// so that symmetric flows get bit-identical rates whatever their order.
constexpr double kShareTolerance = 1e-12;

}  // namespace

FlowNetwork::FlowNetwork(const Topology& topology) : topology_(topology) {}

void FlowNetwork::reserve(std::size_t more) {
  if (touched_.empty()) {  // per-link state, allocated only once the network is used
    const auto links = static_cast<std::size_t>(topology_.num_links());
    capacity_left_.assign(links, 0.0);
    unfixed_count_.assign(links, 0);
    touched_.assign(links, 0);
  }
  flows_.reserve(flows_.size() + more);
}

void FlowNetwork::add(std::int32_t owner, std::int32_t src, std::int32_t dst, double bytes,
                      std::int32_t count) {
  const Path path = route(topology_, src, dst);
  if (path.hops > path.size) {
    throw ProgramError("a torus route of " + std::to_string(path.hops) + " hops (" +
                       std::to_string(src) + " -> " + std::to_string(dst) +
                       ") is longer than the contention network follows (" +
                       std::to_string(kMaxPathLinks) +
                       "): use the analytical network, or algorithms between neighbours");
  }
  flows_.push_back({owner, count, path.links, path.size, bytes, 0.0, 0.0});
}

void FlowNetwork::advance_to(double now) {
  const double dt = now - now_;
  if (dt > 0) {
    for (ActiveFlow& flow : flows_) flow.remaining -= flow.rate * dt;
  }
  now_ = now;
}

double FlowNetwork::recompute() {
  // Progressive filling: the link with the smallest fair share fixes the rate of its flows.
  touched_links_.clear();
  for (const ActiveFlow& flow : flows_) {
    for (int i = 0; i < flow.size; ++i) {
      const std::int32_t link = flow.links[static_cast<std::size_t>(i)];
      if (!touched_[link]) {
        touched_[link] = 1;
        touched_links_.push_back(link);
        capacity_left_[link] = topology_.link_capacity(link);
        unfixed_count_[link] = 0;
      }
      unfixed_count_[link] += flow.count;
    }
  }
  std::vector<std::size_t> unfixed(flows_.size());
  for (std::size_t i = 0; i < unfixed.size(); ++i) unfixed[i] = i;
  std::vector<char> bottleneck(touched_links_.size());
  while (!unfixed.empty()) {
    double share = std::numeric_limits<double>::infinity();
    for (std::int32_t link : touched_links_) {
      if (unfixed_count_[link] > 0)
        share = std::min(share, capacity_left_[link] / unfixed_count_[link]);
    }
    const double threshold = share * (1.0 + kShareTolerance);
    for (std::int32_t link : touched_links_) {
      touched_[link] =
          unfixed_count_[link] > 0 && capacity_left_[link] / unfixed_count_[link] <= threshold ? 2
                                                                                               : 1;
    }
    std::size_t kept = 0;
    for (std::size_t index : unfixed) {
      ActiveFlow& flow = flows_[index];
      bool fixed = false;
      for (int i = 0; i < flow.size && !fixed; ++i)
        fixed = touched_[flow.links[static_cast<std::size_t>(i)]] == 2;
      if (!fixed) {
        unfixed[kept++] = index;
        continue;
      }
      flow.rate = share;
      for (int i = 0; i < flow.size; ++i) {
        const std::int32_t link = flow.links[static_cast<std::size_t>(i)];
        capacity_left_[link] = std::max(0.0, capacity_left_[link] - share * flow.count);
        unfixed_count_[link] -= flow.count;
      }
    }
    unfixed.resize(kept);
  }
  for (std::int32_t link : touched_links_) touched_[link] = 0;

  double next = std::numeric_limits<double>::infinity();
  for (ActiveFlow& flow : flows_) {
    flow.finish_in = std::max(0.0, flow.remaining) / flow.rate;
    next = std::min(next, flow.finish_in);
  }
  next_finish_in_ = next;
  return now_ + next;
}

void FlowNetwork::finish(double now, std::vector<std::int32_t>& owners) {
  advance_to(now);
  const double threshold = next_finish_in_ * (1.0 + kShareTolerance);
  std::size_t kept = 0;
  for (ActiveFlow& flow : flows_) {
    if (flow.finish_in <= threshold) {
      owners.push_back(flow.owner);
    } else {
      flows_[kept++] = flow;
    }
  }
  flows_.resize(kept);
}

}  // namespace podsim
