#include "podsim/collectives.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <string>
#include <unordered_map>

#include "podsim/errors.hpp"

namespace podsim {
namespace {

using Members = std::span<const std::int32_t>;

// Contention mode builds every flow of a direct all-to-all; beyond this it would not fit.
constexpr std::size_t kMaxFlowsPerPhase = std::size_t{1} << 22;

struct StepCost {
  double a = 0.0;  // largest path latency, seconds
  double b = 0.0;  // seconds per byte of the slowest path
};

enum class Paths { All, IntraDomain, InterDomain };

StepCost cost_of(const Topology& topology, const std::vector<Phase>& phases,
                 Paths which = Paths::All) {
  StepCost cost;
  for (const Phase& phase : phases) {
    for (const Flow& flow : phase.flows) {
      const bool intra = topology.domain(flow.src) == topology.domain(flow.dst);
      if ((which == Paths::IntraDomain && !intra) || (which == Paths::InterDomain && intra)) {
        continue;
      }
      const Path path = route(topology, flow.src, flow.dst);
      cost.a = std::max(cost.a, path.latency);
      cost.b = std::max(cost.b, 1.0 / path.bandwidth);
    }
  }
  return cost;
}

double n_of(Members members) { return static_cast<double>(members.size()); }

bool power_of_two(std::size_t n) { return n >= 1 && std::has_single_bit(n); }

int floor_log2(std::size_t n) { return static_cast<int>(std::bit_width(n)) - 1; }

int ceil_log2(std::size_t n) { return n <= 1 ? 0 : static_cast<int>(std::bit_width(n - 1)); }

// Ring over `ranks`: each sends `bytes` to the next (wrapping round).
Phase ring(Members ranks, double bytes, double latency) {
  Phase phase{latency, {}};
  const std::size_t n = ranks.size();
  if (n < 2 || bytes <= 0) return phase;
  phase.flows.reserve(n);
  for (std::size_t i = 0; i < n; ++i) phase.flows.push_back({ranks[i], ranks[(i + 1) % n], bytes});
  return phase;
}

// Members grouped by domain, domains in order of first appearance, members in group order.
std::vector<std::vector<std::int32_t>> by_domain(const Topology& topology, Members members) {
  std::vector<std::vector<std::int32_t>> domains;
  // domain -> its position in `domains`; a map over the group's domains only (memory in
  // proportion to the group, not to the cluster).
  std::unordered_map<std::int64_t, std::size_t> index;
  index.reserve(members.size());
  for (std::int32_t rank : members) {
    const auto [slot, added] = index.try_emplace(topology.domain(rank), domains.size());
    if (added) domains.emplace_back();
    domains[slot->second].push_back(rank);
  }
  return domains;
}

bool balanced(const std::vector<std::vector<std::int32_t>>& domains) {
  return std::all_of(domains.begin(), domains.end(),
                     [&](const auto& d) { return d.size() == domains.front().size(); });
}

// The same-local-index rings across domains (the "rails"), one per local index.
std::vector<std::vector<std::int32_t>> rails(
    const std::vector<std::vector<std::int32_t>>& domains) {
  std::vector<std::vector<std::int32_t>> out(domains.front().size());
  for (const auto& domain : domains) {
    for (std::size_t j = 0; j < domain.size(); ++j) out[j].push_back(domain[j]);
  }
  return out;
}

// One phase holding a ring per list of ranks, all in parallel.
Phase rings(const std::vector<std::vector<std::int32_t>>& lists, double bytes, double latency) {
  Phase phase{latency, {}};
  for (const auto& list : lists) {
    Phase one = ring(list, bytes, latency);
    phase.flows.insert(phase.flows.end(), one.flows.begin(), one.flows.end());
  }
  return phase;
}

// Multi-domain ring as NCCL builds it: g channels (g members per domain), each carrying 1/g
// of the data round the domains in order; channel c enters every domain at its c-th member,
// so each member leaves its domain (over its own NIC) in exactly one channel.
Phase channel_rings(const std::vector<std::vector<std::int32_t>>& domains, double bytes) {
  Phase phase;
  const std::size_t m = domains.size(), g = domains.front().size();
  const double share = bytes / static_cast<double>(g);
  // Inside a domain, hop k -> k+1 (cyclic) is in every channel but the one entering at k+1.
  for (const auto& domain : domains) {
    for (std::size_t k = 0; g > 1 && k < g; ++k) {
      phase.flows.push_back(
          {domain[k], domain[(k + 1) % g], share, static_cast<std::int32_t>(g - 1)});
    }
  }
  // Channel c leaves domain i at its (c-1)-th member and enters the next at its c-th.
  for (std::size_t i = 0; i < m; ++i) {
    for (std::size_t c = 0; c < g; ++c) {
      phase.flows.push_back({domains[i][(c + g - 1) % g], domains[(i + 1) % m][c], share, 1});
    }
  }
  return phase;
}

// Whether a ring runs as channels: the group spans balanced domains.
bool channelled(const Topology& topology, Members members) {
  const auto domains = by_domain(topology, members);
  return domains.size() > 1 && balanced(domains);
}

// Phases with unit latency per step; latencies are scaled once the step cost is known.
struct Plan {
  std::vector<Phase> phases;
  std::vector<double> steps;  // latency steps of each phase
};

void push(Plan& plan, Phase phase, double steps) {
  if (phase.flows.empty()) return;
  plan.phases.push_back(std::move(phase));
  plan.steps.push_back(steps);
}

// Double binary tree: tree 1 is heap-ordered over positions, tree 2 over mirrored positions.
Phase tree_phase(Members m, double bytes, bool up) {
  Phase phase;
  const std::size_t n = m.size();
  for (std::size_t p = 1; p < n; ++p) {
    const std::int32_t child = m[p], parent = m[(p - 1) / 2];
    phase.flows.push_back(up ? Flow{child, parent, bytes} : Flow{parent, child, bytes});
  }
  for (std::size_t q = 1; q < n; ++q) {
    const std::int32_t child = m[n - 1 - q], parent = m[n - 1 - (q - 1) / 2];
    phase.flows.push_back(up ? Flow{child, parent, bytes} : Flow{parent, child, bytes});
  }
  return phase;
}

Phase exchange(Members m, std::size_t distance, double bytes) {
  Phase phase;
  for (std::size_t p = 0; p < m.size(); ++p) phase.flows.push_back({m[p], m[p ^ distance], bytes});
  return phase;
}

void halving_doubling(Plan& plan, Members m, double bytes, bool scatter, bool gather) {
  const int steps = floor_log2(m.size());
  if (scatter) {
    for (int k = 0; k < steps; ++k)
      push(plan, exchange(m, std::size_t{1} << k, bytes / (2 << k)), 1);
  }
  if (gather) {
    for (int k = steps - 1; k >= 0; --k) {
      push(plan, exchange(m, std::size_t{1} << k, bytes / (2 << k)), 1);
    }
  }
}

Phase chain(Members m, double bytes, bool toward_root) {
  Phase phase;
  for (std::size_t i = 0; i + 1 < m.size(); ++i) {
    phase.flows.push_back(toward_root ? Flow{m[i + 1], m[i], bytes} : Flow{m[i], m[i + 1], bytes});
  }
  return phase;
}

void binomial(Plan& plan, Members m, double bytes, bool toward_root) {
  const int steps = ceil_log2(m.size());
  for (int s = 0; s < steps; ++s) {
    const int k = toward_root ? steps - 1 - s : s;
    const std::size_t d = std::size_t{1} << k;
    Phase phase;
    for (std::size_t p = 0; p < d && p + d < m.size(); ++p) {
      phase.flows.push_back(toward_root ? Flow{m[p + d], m[p], bytes}
                                        : Flow{m[p], m[p + d], bytes});
    }
    push(plan, std::move(phase), 1);
  }
}

Phase all_pairs(Members m, double bytes) {
  const std::size_t n = m.size();
  if (n * (n - 1) > kMaxFlowsPerPhase) {
    throw ProgramError("all-to-all on " + std::to_string(n) + " ranks in contention mode needs " +
                       std::to_string(n * (n - 1)) + " flows; the limit is " +
                       std::to_string(kMaxFlowsPerPhase) +
                       ": use the analytical network or smaller groups");
  }
  Phase phase;
  phase.flows.reserve(n * (n - 1));
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < n; ++j) {
      if (i != j) phase.flows.push_back({m[i], m[j], bytes / n_of(m)});
    }
  }
  return phase;
}

// Hierarchical phases with their step counts; intra and inter phases are costed separately.
struct Hierarchy {
  Plan intra_before, inter, intra_after;
  double g = 1.0, m = 1.0;
};

Hierarchy hierarchical(const Topology& topology, CollectiveOp op, Members members, double S) {
  const auto domains = by_domain(topology, members);
  Hierarchy h;
  h.g = static_cast<double>(domains.front().size());
  h.m = static_cast<double>(domains.size());
  const double g = h.g, m = h.m;
  const auto across = rails(domains);
  if (op == CollectiveOp::AllReduce) {
    push(h.intra_before, rings(domains, (g - 1) / g * S, 0), g - 1);
    push(h.inter, rings(across, 2 * (m - 1) / m * S / g, 0), 2 * (m - 1));
    push(h.intra_after, rings(domains, (g - 1) / g * S, 0), g - 1);
  } else if (op == CollectiveOp::AllGather) {
    push(h.inter, rings(across, (m - 1) / m * S / g, 0), m - 1);
    push(h.intra_after, rings(domains, (g - 1) / g * S, 0), g - 1);
  } else {  // reduce-scatter
    push(h.intra_before, rings(domains, (g - 1) / g * S, 0), g - 1);
    push(h.inter, rings(across, (m - 1) / m * S / g, 0), m - 1);
  }
  return h;
}

void scale_latencies(Plan& plan, double a) {
  for (std::size_t i = 0; i < plan.phases.size(); ++i) plan.phases[i].latency = plan.steps[i] * a;
}

// Flat (non-hierarchical, non-direct) algorithms as a plan.
Plan flat_plan(CollectiveOp op, Algorithm algorithm, Members m, double S) {
  Plan plan;
  const double n = n_of(m);
  const bool to_root = op == CollectiveOp::Reduce;
  switch (algorithm) {
    case Algorithm::Ring:
      if (op == CollectiveOp::AllReduce) push(plan, ring(m, 2 * (n - 1) / n * S, 0), 2 * (n - 1));
      if (op == CollectiveOp::AllGather || op == CollectiveOp::ReduceScatter) {
        push(plan, ring(m, (n - 1) / n * S, 0), n - 1);
      }
      if (op == CollectiveOp::Broadcast || op == CollectiveOp::Reduce) {
        push(plan, chain(m, S, to_root), n - 1);
      }
      break;
    case Algorithm::Tree:
      if (op == CollectiveOp::AllReduce) {
        const double h = floor_log2(m.size());
        push(plan, tree_phase(m, S / 2, true), h);
        push(plan, tree_phase(m, S / 2, false), h);
      } else {
        binomial(plan, m, S, to_root);
      }
      break;
    case Algorithm::HalvingDoubling:
      halving_doubling(plan, m, S, op != CollectiveOp::AllGather,
                       op != CollectiveOp::ReduceScatter);
      break;
    default:
      break;
  }
  return plan;
}

double flat_time(CollectiveOp op, Algorithm algorithm, std::size_t size, double S, StepCost c) {
  const double n = static_cast<double>(size);
  if (size < 2) return 0.0;
  switch (algorithm) {
    case Algorithm::Ring:
      if (op == CollectiveOp::AllReduce) return 2 * (n - 1) * c.a + 2 * (n - 1) / n * S * c.b;
      if (op == CollectiveOp::Broadcast || op == CollectiveOp::Reduce) {
        return (n - 1) * c.a + S * c.b;
      }
      return (n - 1) * c.a + (n - 1) / n * S * c.b;
    case Algorithm::Tree:
      if (op == CollectiveOp::AllReduce) {
        const double half = size == 2 ? 0.5 : 1.0;
        return 2 * floor_log2(size) * c.a + 2 * half * S * c.b;
      }
      return ceil_log2(size) * (c.a + S * c.b);
    case Algorithm::HalvingDoubling: {
      const double steps = floor_log2(size);
      const double rounds = op == CollectiveOp::AllReduce ? 2.0 : 1.0;
      return rounds * (steps * c.a + (n - 1) / n * S * c.b);
    }
    default:
      return 0.0;
  }
}

double hierarchical_time(const Topology& topology, CollectiveOp op, Members members, double S) {
  const Hierarchy h = hierarchical(topology, op, members, S);
  const StepCost up = cost_of(
      topology, h.intra_before.phases.empty() ? h.intra_after.phases : h.intra_before.phases);
  const StepCost out = cost_of(topology, h.inter.phases);
  const double g = h.g, m = h.m;
  const double rounds = op == CollectiveOp::AllReduce ? 2.0 : 1.0;
  return rounds * ((g - 1) * up.a + (g - 1) / g * S * up.b) +
         rounds * ((m - 1) * out.a + (m - 1) / m * (S / g) * out.b);
}

double direct_time(const Topology& topology, Members members, double S) {
  const auto domains = by_domain(topology, members);
  const double n = n_of(members);
  std::size_t largest = 0, smallest = members.size();
  bool many_pods = false;
  for (std::int32_t r : members)
    many_pods = many_pods || topology.pod(r) != topology.pod(members[0]);
  for (const auto& d : domains) {
    largest = std::max(largest, d.size());
    smallest = std::min(smallest, d.size());
  }
  double a = 0.0, time = 0.0;
  if (largest > 1) {  // some pairs share a domain
    a = topology.scale_up_latency;
    time = static_cast<double>(largest - 1) * S / n / topology.scale_up_bandwidth;
  }
  if (domains.size() > 1) {  // some pairs cross domains
    double bw = topology.scale_out_bandwidth;
    if (many_pods)
      bw = std::min(bw, topology.link_capacity(static_cast<std::int32_t>(4 * topology.devices)));
    a = std::max(a, topology.scale_out_latency);
    time = std::max(time, (n - static_cast<double>(smallest)) * S / n / bw);
  }
  return (n - 1) * a + time;
}

// What a group's all-to-all traffic crosses: the busiest rank's peers per path class.
struct AllToAllPeers {
  double n = 1.0;
  double up = 0.0;   // peers inside the largest domain (largest - 1)
  double out = 0.0;  // peers outside the smallest domain (n - smallest)
  double up_latency = 0.0, out_latency = 0.0;
  double out_bandwidth = 1.0;  // the NIC, or the pod link's capacity if smaller and crossed
};

AllToAllPeers peers_of(const Topology& topology, Members members) {
  const auto domains = by_domain(topology, members);
  AllToAllPeers peers;
  peers.n = n_of(members);
  std::size_t largest = 0, smallest = members.size();
  bool many_pods = false;
  for (std::int32_t r : members)
    many_pods = many_pods || topology.pod(r) != topology.pod(members[0]);
  for (const auto& d : domains) {
    largest = std::max(largest, d.size());
    smallest = std::min(smallest, d.size());
  }
  if (largest > 1) {
    peers.up = static_cast<double>(largest - 1);
    peers.up_latency = topology.scale_up_latency;
  }
  if (domains.size() > 1) {
    peers.out = peers.n - static_cast<double>(smallest);
    peers.out_latency = topology.scale_out_latency;
    peers.out_bandwidth = topology.scale_out_bandwidth;
    if (many_pods) {
      peers.out_bandwidth =
          std::min(peers.out_bandwidth,
                   topology.link_capacity(static_cast<std::int32_t>(4 * topology.devices)));
    }
  }
  return peers;
}

// Low-latency all-to-all: the bytes charged per peer on each path class. A message of s bytes
// costs s plus the per-message overhead (as bytes at link speed) on the scale-up load/store
// path, and at least a NIC message slot (bandwidth / message rate) on the NIC.
struct PerPeer {
  double up = 0.0, out = 0.0;
};

PerPeer low_latency_bytes(const Topology& topology, double per_peer, Shape shape) {
  const double messages = shape.message_bytes > 0 ? per_peer / shape.message_bytes : 1.0;
  PerPeer bytes;
  bytes.up = per_peer + messages * topology.message_overhead * topology.scale_up_bandwidth;
  bytes.out = per_peer;
  if (topology.nic_message_rate > 0) {
    bytes.out =
        std::max(per_peer, messages * topology.scale_out_bandwidth / topology.nic_message_rate);
  }
  return bytes;
}

double low_latency_time(const Topology& topology, Members members, double S, Shape shape) {
  const AllToAllPeers peers = peers_of(topology, members);
  const PerPeer bytes = low_latency_bytes(topology, S / peers.n, shape);
  const double up = peers.up * bytes.up / topology.scale_up_bandwidth;
  const double out = peers.out * bytes.out / peers.out_bandwidth;
  return std::max(peers.up_latency, peers.out_latency) + std::max(up, out);
}

// Node-forwarded all-to-all (DeepEP's normal kernels) on balanced domains: each rank sends one
// copy per destination domain (S/m over `fanout`) to its same-index peer there, which forwards
// it over scale-up to the `fanout` ranks that need it; both stages run at once (pipelined).
struct Forwarding {
  double g = 1.0, m = 1.0;
  double rail = 0.0;   // bytes to each same-index peer in another domain
  double local = 0.0;  // bytes to each other member of the own domain (forwarded and own)
};

Forwarding forwarding(const Topology& topology, Members members, double S, Shape shape) {
  const auto domains = by_domain(topology, members);
  Forwarding f;
  f.g = static_cast<double>(domains.front().size());
  f.m = static_cast<double>(domains.size());
  const double fanout = std::clamp(shape.fanout, 1.0, f.g);
  f.rail = S / (f.m * fanout);
  f.local = S / f.g / topology.forward_efficiency;
  return f;
}

double node_forwarded_time(const Topology& topology, Members members, double S, Shape shape) {
  const AllToAllPeers peers = peers_of(topology, members);
  const Forwarding f = forwarding(topology, members, S, shape);
  const double up = (f.g - 1) * f.local / topology.scale_up_bandwidth;
  const double out = (f.m - 1) * f.rail / peers.out_bandwidth;
  return peers.up_latency + peers.out_latency + std::max(up, out);
}

void check_flows(std::size_t flows) {
  if (flows > kMaxFlowsPerPhase) {
    throw ProgramError("all-to-all in contention mode needs " + std::to_string(flows) +
                       " flows; the limit is " + std::to_string(kMaxFlowsPerPhase) +
                       ": use the analytical network or smaller groups");
  }
}

Phase low_latency_phase(const Topology& topology, Members m, double S, Shape shape) {
  const std::size_t n = m.size();
  check_flows(n * (n - 1));
  const AllToAllPeers peers = peers_of(topology, m);
  const PerPeer bytes = low_latency_bytes(topology, S / peers.n, shape);
  Phase phase{std::max(peers.up_latency, peers.out_latency), {}};
  phase.flows.reserve(n * (n - 1));
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < n; ++j) {
      if (i == j) continue;
      const bool inside = topology.domain(m[i]) == topology.domain(m[j]);
      phase.flows.push_back({m[i], m[j], inside ? bytes.up : bytes.out});
    }
  }
  return phase;
}

Phase node_forwarded_phase(const Topology& topology, Members members, double S, Shape shape) {
  const auto domains = by_domain(topology, members);
  const Forwarding f = forwarding(topology, members, S, shape);
  const std::size_t g = domains.front().size(), m = domains.size();
  check_flows(members.size() * (g + m - 2));
  const AllToAllPeers peers = peers_of(topology, members);
  Phase phase{peers.up_latency + peers.out_latency, {}};
  for (std::size_t d = 0; d < m; ++d) {
    for (std::size_t j = 0; j < g; ++j) {
      for (std::size_t k = 0; k < g; ++k) {
        if (k != j) phase.flows.push_back({domains[d][j], domains[d][k], f.local});
      }
      for (std::size_t e = 0; e < m; ++e) {
        if (e != d) phase.flows.push_back({domains[d][j], domains[e][j], f.rail});
      }
    }
  }
  return phase;
}

bool ring_family(CollectiveOp op, Algorithm algorithm) {
  return algorithm == Algorithm::Ring &&
         (op == CollectiveOp::AllReduce || op == CollectiveOp::AllGather ||
          op == CollectiveOp::ReduceScatter);
}

// The channelled ring: one phase; returns its latency steps and fills `phase`.
double channel_plan(const Topology& topology, CollectiveOp op, Members members, double S,
                    Phase& phase) {
  const double n = n_of(members);
  const double rounds = op == CollectiveOp::AllReduce ? 2.0 : 1.0;
  phase = channel_rings(by_domain(topology, members), rounds * (n - 1) / n * S);
  return rounds * (n - 1);
}

// Per member: (g-1)/g of the ring's bytes over scale-up, 1/g over its NIC, in parallel.
// Costed from the hops the channels use, without building their g x n flows.
double channel_time(const Topology& topology, CollectiveOp op, Members members, double S) {
  const auto domains = by_domain(topology, members);
  const std::size_t m = domains.size(), g = domains.front().size();
  StepCost up, out;
  if (g > 1) up = {topology.scale_up_latency, 1.0 / topology.scale_up_bandwidth};
  for (std::size_t i = 0; i < m; ++i) {  // channel c leaves domain i at its (c-1)-th member
    for (std::size_t c = 0; c < g; ++c) {
      const Path path = route(topology, domains[i][(c + g - 1) % g], domains[(i + 1) % m][c]);
      out.a = std::max(out.a, path.latency);
      out.b = std::max(out.b, 1.0 / path.bandwidth);
    }
  }
  const double n = n_of(members), gd = static_cast<double>(g);
  const double rounds = op == CollectiveOp::AllReduce ? 2.0 : 1.0;
  const double b = std::max((gd - 1) / gd * up.b, out.b / gd);
  return rounds * (n - 1) * std::max(up.a, out.a) + rounds * (n - 1) / n * S * b;
}

void require_members(Members members) {
  if (members.empty()) throw ProgramError("a collective needs a group of at least one rank");
}

}  // namespace

bool applicable(const Topology& topology, CollectiveOp op, Algorithm algorithm, Members members) {
  const bool all_reduce = op == CollectiveOp::AllReduce;
  const bool gather_scatter = op == CollectiveOp::AllGather || op == CollectiveOp::ReduceScatter;
  const bool rooted = op == CollectiveOp::Broadcast || op == CollectiveOp::Reduce;
  switch (algorithm) {
    case Algorithm::Ring:
      return all_reduce || gather_scatter || rooted;
    case Algorithm::Tree:
      return all_reduce || rooted;
    case Algorithm::HalvingDoubling:
      return (all_reduce || gather_scatter) && power_of_two(members.size());
    case Algorithm::Hierarchical:
      return (all_reduce || gather_scatter) && balanced(by_domain(topology, members));
    case Algorithm::Direct:
    case Algorithm::LowLatency:
      return op == CollectiveOp::AllToAll;
    case Algorithm::NodeForwarded:
      return op == CollectiveOp::AllToAll && balanced(by_domain(topology, members));
    default:
      return false;
  }
}

double collective_time(const Topology& topology, CollectiveOp op, Algorithm algorithm,
                       Members members, double bytes, Shape shape) {
  require_members(members);
  if (algorithm == Algorithm::LowLatency || algorithm == Algorithm::NodeForwarded) {
    if (members.size() < 2) return topology.launch_latency;
    const double time = algorithm == Algorithm::LowLatency
                            ? low_latency_time(topology, members, bytes, shape)
                            : node_forwarded_time(topology, members, bytes, shape);
    return topology.launch_latency + time;
  }
  if (algorithm == Algorithm::Hierarchical) {
    return topology.launch_latency + hierarchical_time(topology, op, members, bytes);
  }
  if (algorithm == Algorithm::Direct) {
    return topology.launch_latency + direct_time(topology, members, bytes);
  }
  if (ring_family(op, algorithm) && channelled(topology, members)) {
    return topology.launch_latency + channel_time(topology, op, members, bytes);
  }
  const Plan plan = flat_plan(op, algorithm, members, bytes);
  return topology.launch_latency +
         flat_time(op, algorithm, members.size(), bytes, cost_of(topology, plan.phases));
}

Algorithm resolve_algorithm(const Topology& topology, CollectiveOp op, Algorithm requested,
                            Members members, double bytes, Shape shape) {
  require_members(members);
  if (requested != Algorithm::Auto) {
    if (applicable(topology, op, requested, members)) return requested;
    std::string allowed;
    for (int a = 1; a < kAlgorithms; ++a) {
      if (applicable(topology, op, static_cast<Algorithm>(a), members)) {
        allowed +=
            (allowed.empty() ? "" : ", ") + std::string(to_string(static_cast<Algorithm>(a)));
      }
    }
    throw ProgramError(std::string("algorithm ") + to_string(requested) + " cannot run " +
                       to_string(op) + " on a group of " + std::to_string(members.size()) +
                       " ranks; allowed here: " + allowed);
  }
  Algorithm best = Algorithm::Auto;
  double best_time = 0.0;
  for (int a = 1; a < kAlgorithms; ++a) {
    const auto algorithm = static_cast<Algorithm>(a);
    if (!applicable(topology, op, algorithm, members)) continue;
    const double time = analytical_time(topology, op, algorithm, members, bytes, shape);
    if (best == Algorithm::Auto || time < best_time) best = algorithm, best_time = time;
  }
  return best;
}

std::vector<Phase> collective_phases(const Topology& topology, CollectiveOp op, Algorithm algorithm,
                                     Members members, double bytes, Shape shape) {
  require_members(members);
  if (members.size() < 2) return {};
  if (algorithm == Algorithm::LowLatency)
    return {low_latency_phase(topology, members, bytes, shape)};
  if (algorithm == Algorithm::NodeForwarded) {
    return {node_forwarded_phase(topology, members, bytes, shape)};
  }
  if (algorithm == Algorithm::Direct) {
    Phase phase = all_pairs(members, bytes);
    phase.latency = (n_of(members) - 1) * cost_of(topology, {phase}).a;
    return {std::move(phase)};
  }
  if (algorithm == Algorithm::Hierarchical) {
    Hierarchy h = hierarchical(topology, op, members, bytes);
    const StepCost up = cost_of(
        topology, h.intra_before.phases.empty() ? h.intra_after.phases : h.intra_before.phases);
    scale_latencies(h.intra_before, up.a);
    scale_latencies(h.inter, cost_of(topology, h.inter.phases).a);
    scale_latencies(h.intra_after, up.a);
    std::vector<Phase> out;
    for (Plan* plan : {&h.intra_before, &h.inter, &h.intra_after}) {
      for (Phase& phase : plan->phases) out.push_back(std::move(phase));
    }
    return out;
  }
  if (ring_family(op, algorithm) && channelled(topology, members)) {
    Phase phase;
    const double steps = channel_plan(topology, op, members, bytes, phase);
    phase.latency = steps * cost_of(topology, {phase}).a;
    return {std::move(phase)};
  }
  Plan plan = flat_plan(op, algorithm, members, bytes);
  scale_latencies(plan, cost_of(topology, plan.phases).a);
  return std::move(plan.phases);
}

bool spans_pods(const Topology& topology, Members members) {
  if (topology.num_pods() < 2) return false;
  return std::any_of(members.begin(), members.end(),
                     [&](std::int32_t r) { return topology.pod(r) != topology.pod(members[0]); });
}

namespace {

// Almost no bytes: every closed-form term is linear in the bytes, so only latencies remain (0
// itself would build phases without flows).
constexpr double kNoBytes = 1e-300;

std::int32_t pod_link(const Topology& topology, std::int64_t pod, bool down) {
  return static_cast<std::int32_t>(4 * topology.devices + 2 * pod + (down ? 1 : 0));
}

// Direct and low-latency all-to-all: pod p's members send (n - n_p) S/n each out of the pod, and
// receive as much. Node-forwarded (balanced domains of g ranks, m domains, pod p holding n_p / g
// of them): each member sends one S / (m fanout) copy to its same-index peer in every domain
// outside the pod; the forwarding itself stays inside a domain, hence inside the pod.
std::vector<PodLoad> all_to_all_pod_loads(const Topology& topology, Algorithm algorithm,
                                          Members members, double S, Shape shape) {
  std::unordered_map<std::int64_t, double> count;
  for (std::int32_t r : members) count[topology.pod(r)] += 1.0;
  std::vector<std::pair<std::int64_t, double>> pods(count.begin(), count.end());
  std::sort(pods.begin(), pods.end());  // deterministic order
  const double n = n_of(members);
  double g = 1.0, m = n, fanout = 1.0;
  if (algorithm == Algorithm::NodeForwarded) {
    const auto domains = by_domain(topology, members);
    g = static_cast<double>(domains.front().size());
    m = static_cast<double>(domains.size());
    fanout = std::clamp(shape.fanout, 1.0, g);
  }
  std::vector<PodLoad> out;
  for (const auto& [pod, np] : pods) {
    const double bytes = algorithm == Algorithm::NodeForwarded
                             ? np * (m - np / g) * S / (m * fanout)
                             : np * (n - np) * S / n;
    if (bytes <= 0) continue;
    out.push_back({pod_link(topology, pod, false), bytes});
    out.push_back({pod_link(topology, pod, true), bytes});
  }
  return out;
}

std::vector<PodLoad> phase_pod_loads(const Topology& topology, const Phase& phase) {
  std::unordered_map<std::int32_t, double> bytes;
  for (const Flow& f : phase.flows) {
    const std::int64_t from = topology.pod(f.src), to = topology.pod(f.dst);
    if (from == to) continue;
    bytes[pod_link(topology, from, false)] += f.bytes * f.count;
    bytes[pod_link(topology, to, true)] += f.bytes * f.count;
  }
  std::vector<PodLoad> out;
  out.reserve(bytes.size());
  for (const auto& [link, b] : bytes) out.push_back({link, b});
  std::sort(out.begin(), out.end(),
            [](const PodLoad& x, const PodLoad& y) { return x.link < y.link; });
  return out;
}

// The bandwidth term collective_time charges each phase of collective_phases (same order).
std::vector<double> phase_bandwidth(const Topology& topology, CollectiveOp op, Algorithm algorithm,
                                    Members members, double S, Shape shape,
                                    const std::vector<Phase>& phases) {
  if (phases.size() <= 1) {  // one phase: the whole bandwidth term of the closed form
    return {collective_time(topology, op, algorithm, members, S, shape) -
            collective_time(topology, op, algorithm, members, kNoBytes, shape)};
  }
  std::vector<double> out;
  if (algorithm == Algorithm::Hierarchical) {
    const Hierarchy h = hierarchical(topology, op, members, S);
    const StepCost up = cost_of(
        topology, h.intra_before.phases.empty() ? h.intra_after.phases : h.intra_before.phases);
    const StepCost across = cost_of(topology, h.inter.phases);
    const double rounds = op == CollectiveOp::AllReduce ? 2.0 : 1.0;
    const double inside = (h.g - 1) / h.g * S * up.b;
    const double shard = rounds * (h.m - 1) / h.m * (S / h.g) * across.b;
    if (!h.intra_before.phases.empty()) out.push_back(inside);
    if (!h.inter.phases.empty()) out.push_back(shard);
    if (!h.intra_after.phases.empty()) out.push_back(inside);
    return out;
  }
  // Flat multi-phase algorithms (tree, halving-doubling, binomial): every step is charged the
  // group's slowest path for what its busiest sender sends in it.
  const double b = cost_of(topology, phases).b;
  for (const Phase& phase : phases) {
    std::unordered_map<std::int32_t, double> sent;
    double most = 0.0;
    for (const Flow& f : phase.flows) most = std::max(most, sent[f.src] += f.bytes * f.count);
    out.push_back(most * b);
  }
  return out;
}

}  // namespace

std::vector<std::vector<PodLoad>> pod_loads(const Topology& topology, CollectiveOp op,
                                            Algorithm algorithm, Members members, double bytes,
                                            Shape shape) {
  require_members(members);
  if (members.size() < 2 || !spans_pods(topology, members)) return {};
  if (algorithm == Algorithm::Direct || algorithm == Algorithm::LowLatency ||
      algorithm == Algorithm::NodeForwarded) {
    return {all_to_all_pod_loads(topology, algorithm, members, bytes, shape)};
  }
  std::vector<std::vector<PodLoad>> out;
  for (const Phase& phase : collective_phases(topology, op, algorithm, members, bytes, shape))
    out.push_back(phase_pod_loads(topology, phase));
  return out;
}

std::vector<double> pod_seconds(const Topology& topology,
                                const std::vector<std::vector<PodLoad>>& loads) {
  std::vector<double> out;
  out.reserve(loads.size());
  for (const auto& phase : loads) {
    double most = 0.0;
    for (const PodLoad& load : phase)
      most = std::max(most, load.bytes / topology.link_capacity(load.link));
    out.push_back(most);
  }
  return out;
}

double analytical_time(const Topology& topology, CollectiveOp op, Algorithm algorithm,
                       Members members, double bytes, Shape shape,
                       std::span<const double> seconds) {
  const double base = collective_time(topology, op, algorithm, members, bytes, shape);
  if (members.size() < 2 || !spans_pods(topology, members)) return base;
  std::vector<double> own;
  if (seconds.empty()) {
    own = pod_seconds(topology, pod_loads(topology, op, algorithm, members, bytes, shape));
    seconds = own;
  }
  std::vector<double> bandwidth;
  if (algorithm == Algorithm::Direct) {  // one phase, no flows built
    bandwidth = {base - collective_time(topology, op, algorithm, members, kNoBytes, shape)};
  } else if (algorithm == Algorithm::LowLatency || algorithm == Algorithm::NodeForwarded) {
    // One phase: everything but the launch and the hops (the per-message charges are link
    // time too), so that the time is the larger of the link terms and the pod link's.
    const AllToAllPeers peers = peers_of(topology, members);
    const double hops = algorithm == Algorithm::LowLatency
                            ? std::max(peers.up_latency, peers.out_latency)
                            : peers.up_latency + peers.out_latency;
    bandwidth = {base - topology.launch_latency - hops};
  } else {
    bandwidth = phase_bandwidth(topology, op, algorithm, members, bytes, shape,
                                collective_phases(topology, op, algorithm, members, bytes, shape));
  }
  double extra = 0.0;
  for (std::size_t k = 0; k < seconds.size() && k < bandwidth.size(); ++k)
    extra += std::max(0.0, seconds[k] - bandwidth[k]);
  return base + extra;
}

const char* to_string(Kind kind) {
  static const char* names[] = {"compute", "collective", "send", "recv", "wait"};
  return names[static_cast<int>(kind)];
}

const char* to_string(CollectiveOp op) {
  static const char* names[] = {"all-reduce", "all-gather", "reduce-scatter",
                                "all-to-all", "broadcast",  "reduce"};
  return names[static_cast<int>(op)];
}

const char* to_string(Algorithm algorithm) {
  static const char* names[] = {"auto",         "ring",   "tree",        "halving-doubling",
                                "hierarchical", "direct", "low-latency", "node-forwarded"};
  return names[static_cast<int>(algorithm)];
}

}  // namespace podsim
