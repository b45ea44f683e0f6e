#include "podsim/collectives.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "podsim/errors.hpp"

namespace podsim {

std::vector<std::int64_t> partners(const Topology& topology, Exclude exclude,
                                   std::span<const std::int32_t> ends,
                                   std::span<const std::int32_t> others) {
  const auto all = static_cast<std::int64_t>(others.size());
  std::vector<std::int64_t> out(ends.size(), all);
  if (exclude == Exclude::None) return out;
  // Others per key (a device, or a domain): an end pairs with those of other keys.
  auto key = [&](std::int32_t device) {
    return exclude == Exclude::SameDomain ? topology.domain(device) : device;
  };
  std::unordered_map<std::int64_t, std::int64_t> same;
  for (std::int32_t d : others) ++same[key(d)];
  for (std::size_t i = 0; i < ends.size(); ++i) {
    const auto it = same.find(key(ends[i]));
    if (it != same.end()) out[i] -= it->second;
  }
  return out;
}

FlowBlock make_block(const Topology& topology, std::vector<std::int32_t> srcs,
                     std::vector<std::int32_t> dsts, double bytes, Exclude exclude) {
  FlowBlock block{std::move(srcs), std::move(dsts), bytes, exclude, 0};
  for (std::int64_t n : partners(topology, exclude, block.srcs, block.dsts)) block.pairs += n;
  return block;
}

std::pair<std::int32_t, std::int32_t> first_pair(const Topology& topology, const FlowBlock& block) {
  for (std::int32_t src : block.srcs) {
    for (std::int32_t dst : block.dsts) {
      if (block_pair(topology, block.exclude, src, dst)) return {src, dst};
    }
  }
  throw ProgramError("a flow block without pairs");
}

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
    for (const FlowBlock& block : phase.blocks) {  // its pairs all take the same kind of path
      const bool intra = block.exclude == Exclude::SameDevice;
      if ((which == Paths::IntraDomain && !intra) || (which == Paths::InterDomain && intra)) {
        continue;
      }
      const auto [src, dst] = first_pair(topology, block);
      const Path path = route(topology, src, dst);
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
  Phase phase{latency, {}, {}};
  const std::size_t n = ranks.size();
  if (n < 2 || bytes <= 0) return phase;
  phase.flows.reserve(n);
  for (std::size_t i = 0; i < n; ++i) phase.flows.push_back({ranks[i], ranks[(i + 1) % n], bytes});
  return phase;
}

// Members grouped by `key` (their domain, their pod), groups in order of first appearance,
// members in group order; a map over the group's keys only (memory in proportion to the group,
// not to the cluster).
template <class Key>
std::vector<std::vector<std::int32_t>> grouped(Members members, Key key) {
  std::vector<std::vector<std::int32_t>> groups;
  std::unordered_map<std::int64_t, std::size_t> index;
  index.reserve(members.size());
  for (std::int32_t rank : members) {
    const auto [slot, added] = index.try_emplace(key(rank), groups.size());
    if (added) groups.emplace_back();
    groups[slot->second].push_back(rank);
  }
  return groups;
}

std::vector<std::vector<std::int32_t>> by_domain(const Topology& topology, Members members) {
  return grouped(members, [&](std::int32_t rank) { return topology.domain(rank); });
}

std::vector<std::vector<std::int32_t>> by_pod(const Topology& topology, Members members) {
  return grouped(members, [&](std::int32_t rank) { return topology.pod(rank); });
}

bool balanced(const std::vector<std::vector<std::int32_t>>& domains) {
  return std::all_of(domains.begin(), domains.end(),
                     [&](const auto& d) { return d.size() == domains.front().size(); });
}

bool one_domain(const Topology& topology, Members members) {
  return std::all_of(members.begin(), members.end(), [&](std::int32_t r) {
    return topology.domain(r) == topology.domain(members[0]);
  });
}

// Whether the members fill a sub-torus of one torus domain: per dimension either one coordinate
// or the whole ring (so that every ring of the sub-torus wraps round). `spans`: its extents.
bool sub_torus(const Topology& topology, Members members, std::array<std::int64_t, 3>& spans) {
  if (topology.scale_up != ScaleUp::Torus || !one_domain(topology, members)) return false;
  std::vector<char> seen(static_cast<std::size_t>(topology.domain_size), 0);
  std::array<std::vector<char>, 3> values;
  spans = {0, 0, 0};
  for (std::size_t d = 0; d < 3; ++d)
    values[d].assign(static_cast<std::size_t>(topology.torus_dims[d]), 0);
  for (std::int32_t r : members) {
    auto& once = seen[static_cast<std::size_t>(r % topology.domain_size)];
    if (once) return false;  // a rank listed twice
    once = 1;
    const auto c = topology.coords(r);
    for (std::size_t d = 0; d < 3; ++d) {
      auto& v = values[d][static_cast<std::size_t>(c[d])];
      spans[d] += v ? 0 : 1;
      v = 1;
    }
  }
  std::int64_t product = 1;
  for (std::size_t d = 0; d < 3; ++d) {
    if (spans[d] != 1 && spans[d] != topology.torus_dims[d]) return false;
    product *= spans[d];
  }
  return product == static_cast<std::int64_t>(members.size());
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
  Phase phase{latency, {}, {}};
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

// Every member sends `bytes` to every other one at once: on a full mesh each over its own link.
Phase one_shot(Members m, double bytes) {
  Phase phase;
  phase.flows.reserve(m.size() * (m.size() - 1));
  for (std::size_t i = 0; i < m.size(); ++i) {
    for (std::size_t j = 0; j < m.size(); ++j) {
      if (i != j) phase.flows.push_back({m[i], m[j], bytes});
    }
  }
  return phase;
}

// HCCL's mesh algorithms on a full mesh (docs/engine.md): reduce-scatter sends each peer its
// S/n shard, all-gather each peer our own shard, all in one step over the n - 1 links.
Plan mesh_plan(CollectiveOp op, Members m, double S) {
  Plan plan;
  const double shard = S / n_of(m);
  if (op == CollectiveOp::AllReduce || op == CollectiveOp::ReduceScatter)
    push(plan, one_shot(m, shard), 1);
  if (op == CollectiveOp::AllReduce || op == CollectiveOp::AllGather)
    push(plan, one_shot(m, shard), 1);
  return plan;
}

// One dimension's rings of a sub-torus, each bidirectional: half of the (k-1)/k S a ring moves
// goes each way round (k = 2: both neighbours are one, a single ring takes it all).
Phase torus_rings(const Topology& topology, Members m, std::size_t dim, double S) {
  const std::int64_t k = topology.torus_dims[dim];
  const double kd = static_cast<double>(k), bytes = (kd - 1) / kd * S;
  Phase phase;
  for (std::int32_t r : m) {
    auto next = topology.coords(r), prev = next;
    next[dim] = (next[dim] + 1) % k;
    prev[dim] = (prev[dim] + k - 1) % k;
    const auto to_next = static_cast<std::int32_t>(topology.at(r, next));
    const auto to_prev = static_cast<std::int32_t>(topology.at(r, prev));
    if (k == 2) {
      phase.flows.push_back({r, to_next, bytes});
    } else {
      phase.flows.push_back({r, to_next, bytes / 2});
      phase.flows.push_back({r, to_prev, bytes / 2});
    }
  }
  return phase;
}

// Dimension-ordered reduce-scatter and all-gather on a torus, as TPUs run them: a reduce-scatter
// along x on S leaves S / kx to reduce along y, then S / (kx ky) along z; all-gather runs the
// dimensions in reverse. So that every dimension's links work at once, the data is cut into one
// part per dimension of the group and part j takes the dimensions in the order j, j + 1, ...
// (an assumption: with one part the other dimensions' links would idle). Step t of the plan runs
// every part's t-th dimension, on links no other part uses in that step.
Plan torus_plan(const Topology& topology, CollectiveOp op, Members m, double S) {
  std::array<std::int64_t, 3> spans{};
  sub_torus(topology, m, spans);
  std::vector<std::size_t> dims;
  for (std::size_t d = 0; d < 3; ++d) {
    if (spans[d] >= 2) dims.push_back(d);
  }
  const std::size_t parts = dims.size();
  // The dimension part j works on at its t-th step, and the bytes it has then.
  auto dim_of = [&](std::size_t j, std::size_t t) { return dims[(j + t) % parts]; };
  auto bytes_at = [&](std::size_t j, std::size_t t) {
    double bytes = S / static_cast<double>(parts);
    for (std::size_t u = 0; u < t; ++u) bytes /= static_cast<double>(spans[dim_of(j, u)]);
    return bytes;
  };
  auto step = [&](std::size_t t) {
    Phase phase;
    double steps = 0.0;
    for (std::size_t j = 0; j < parts; ++j) {
      Phase one = torus_rings(topology, m, dim_of(j, t), bytes_at(j, t));
      phase.flows.insert(phase.flows.end(), one.flows.begin(), one.flows.end());
      steps = std::max(steps, static_cast<double>(spans[dim_of(j, t)] - 1));
    }
    return std::make_pair(std::move(phase), steps);
  };
  Plan plan;
  if (op == CollectiveOp::AllReduce || op == CollectiveOp::ReduceScatter) {
    for (std::size_t t = 0; t < parts; ++t) {
      auto [phase, steps] = step(t);
      push(plan, std::move(phase), steps);
    }
  }
  if (op == CollectiveOp::AllReduce || op == CollectiveOp::AllGather) {
    for (std::size_t t = parts; t-- > 0;) {
      auto [phase, steps] = step(t);
      push(plan, std::move(phase), steps);
    }
  }
  return plan;
}

Plan topology_plan(const Topology& topology, CollectiveOp op, Algorithm algorithm, Members m,
                   double S) {
  return algorithm == Algorithm::Mesh ? mesh_plan(op, m, S) : torus_plan(topology, op, m, S);
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

void check_flows(std::size_t flows) {
  if (flows > kMaxFlowsPerPhase) {
    throw ProgramError("all-to-all in contention mode needs " + std::to_string(flows) +
                       " flows; the limit is " + std::to_string(kMaxFlowsPerPhase) +
                       ": use the analytical network or smaller groups");
  }
}

// What an all-to-all's flow blocks hold: member entries (a source or destination of a block)
// and blocks, bounded so that the network's copy (about 24 bytes an entry, 250 a block:
// the phase's block, the network's block and its entry) fits.
constexpr std::int64_t kMaxBlockEntries = std::int64_t{1} << 25;

// Refuses, before building them, blocks that would not fit: per domain (switch), per pod with
// members in two domains or more, per ordered pair of pods.
void check_blocks(const Topology& topology, std::size_t n,
                  const std::vector<std::vector<std::int32_t>>& domains,
                  const std::vector<std::vector<std::int32_t>>& pods, bool switch_domains) {
  std::int64_t blocks = 0, entries = 0;
  if (switch_domains) {
    for (const auto& d : domains) {
      if (d.size() > 1) ++blocks, entries += 2 * static_cast<std::int64_t>(d.size());
    }
  }
  const auto p = static_cast<std::int64_t>(pods.size());
  for (const auto& pod : pods) {
    if (!one_domain(topology, pod)) ++blocks, entries += 2 * static_cast<std::int64_t>(pod.size());
  }
  blocks += p * (p - 1);
  entries += 2 * (p - 1) * static_cast<std::int64_t>(n);
  if (entries > kMaxBlockEntries || blocks > static_cast<std::int64_t>(kMaxFlowsPerPhase)) {
    const std::int64_t mib = (24 * entries + 250 * blocks) >> 20;
    throw ProgramError("all-to-all on " + std::to_string(n) + " ranks in contention mode needs " +
                       std::to_string(blocks) + " flow blocks of " + std::to_string(entries) +
                       " member entries (about " + std::to_string(mib) + " MiB); the limits are " +
                       std::to_string(kMaxFlowsPerPhase) + " blocks and " +
                       std::to_string(kMaxBlockEntries) +
                       " entries: use the analytical network, fewer pods or smaller groups");
  }
}

// Every ordered pair of distinct members, `inside` bytes within a domain and `outside` between
// domains, as blocks (docs/engine.md, "Contention at scale"): per switch domain, per pod between
// its domains, per ordered pair of pods. Pairs inside a full-mesh or torus domain, or of
// multi-die packages, each take their own links: those are listed flow by flow.
Phase all_pairs(const Topology& topology, Members m, double inside, double outside) {
  Phase phase;
  const bool switch_domains = topology.scale_up == ScaleUp::Switch && topology.package_size == 1;
  const auto domains = by_domain(topology, m);
  const auto pods = by_pod(topology, m);
  check_blocks(topology, m.size(), domains, pods, switch_domains);
  std::size_t listed = 0;
  for (const auto& d : domains) {
    if (d.size() < 2) continue;
    if (switch_domains) {
      phase.blocks.push_back(make_block(topology, d, d, inside, Exclude::SameDevice));
      continue;
    }
    listed += d.size() * (d.size() - 1);
    if (listed > kMaxFlowsPerPhase) check_flows(listed);
    for (std::int32_t src : d) {
      for (std::int32_t dst : d) {
        if (src != dst) phase.flows.push_back({src, dst, inside});
      }
    }
  }
  for (const auto& from : pods) {
    for (const auto& to : pods) {
      const Exclude exclude = &from == &to ? Exclude::SameDomain : Exclude::None;
      FlowBlock block = make_block(topology, from, to, outside, exclude);
      if (block.pairs > 0) phase.blocks.push_back(std::move(block));
    }
  }
  return phase;
}

// Hierarchical phases with their step counts; intra and inter phases are costed separately.
struct Hierarchy {
  Plan intra_before, inter, intra_after;
  double g = 1.0, m = 1.0;
};

// The intra-domain steps of the hierarchical algorithms: a ring of g - 1 steps that sends
// (g-1)/g of S per member, or on a full mesh HCCL's one step that sends S/g to each peer.
double intra_steps(const Topology& topology, double g) {
  return topology.scale_up == ScaleUp::FullMesh ? 1.0 : g - 1;
}

double intra_share(const Topology& topology, double g) {
  return topology.scale_up == ScaleUp::FullMesh ? 1.0 / g : (g - 1) / g;
}

Phase intra_phase(const Topology& topology, const std::vector<std::vector<std::int32_t>>& domains,
                  double g, double S) {
  if (topology.scale_up != ScaleUp::FullMesh) return rings(domains, (g - 1) / g * S, 0);
  Phase phase;
  for (const auto& domain : domains) {
    if (domain.size() < 2) continue;
    Phase one = one_shot(domain, S / g);
    phase.flows.insert(phase.flows.end(), one.flows.begin(), one.flows.end());
  }
  return phase;
}

Hierarchy hierarchical(const Topology& topology, CollectiveOp op, Members members, double S) {
  const auto domains = by_domain(topology, members);
  Hierarchy h;
  h.g = static_cast<double>(domains.front().size());
  h.m = static_cast<double>(domains.size());
  const double g = h.g, m = h.m;
  const auto across = rails(domains);
  const double steps = intra_steps(topology, g);
  if (op == CollectiveOp::AllReduce) {
    push(h.intra_before, intra_phase(topology, domains, g, S), steps);
    push(h.inter, rings(across, 2 * (m - 1) / m * S / g, 0), 2 * (m - 1));
    push(h.intra_after, intra_phase(topology, domains, g, S), steps);
  } else if (op == CollectiveOp::AllGather) {
    push(h.inter, rings(across, (m - 1) / m * S / g, 0), m - 1);
    push(h.intra_after, intra_phase(topology, domains, g, S), steps);
  } else {  // reduce-scatter
    push(h.intra_before, intra_phase(topology, domains, g, S), steps);
    push(h.inter, rings(across, (m - 1) / m * S / g, 0), m - 1);
  }
  return h;
}

void scale_latencies(Plan& plan, double a) {
  for (std::size_t i = 0; i < plan.phases.size(); ++i) plan.phases[i].latency = plan.steps[i] * a;
}

// Mesh and torus plans, whose flows in a phase each have links of their own: a phase costs its
// steps of its slowest path's latency plus its largest flow at that path's bandwidth, exactly
// what the contention network gives them.
double plan_time(const Topology& topology, const Plan& plan) {
  double time = 0.0;
  for (std::size_t k = 0; k < plan.phases.size(); ++k) {
    const StepCost c = cost_of(topology, {plan.phases[k]});
    double most = 0.0;
    for (const Flow& f : plan.phases[k].flows) most = std::max(most, f.bytes);
    time += plan.steps[k] * c.a + most * c.b;
  }
  return time;
}

void scale_each(const Topology& topology, Plan& plan) {
  for (std::size_t k = 0; k < plan.phases.size(); ++k)
    plan.phases[k].latency = plan.steps[k] * cost_of(topology, {plan.phases[k]}).a;
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
  return rounds * (intra_steps(topology, g) * up.a + intra_share(topology, g) * S * up.b) +
         rounds * ((m - 1) * out.a + (m - 1) / m * (S / g) * out.b);
}

// Direct all-to-all inside the domains of a full mesh or a torus, `per_peer` bytes to each peer:
// (latency of one step, seconds of the busiest link). A full mesh gives every peer its own
// link. On a torus, dimension-ordered routing loads the links of a dimension with c members per
// ring with (n_d / c) x sum of ring distances x per_peer over its c (2 or, for c = 2, 1 per
// member) links; the group is taken as the sub-torus its coordinates span (an estimate for
// other shapes).
std::pair<double, double> mesh_or_torus_all_to_all(
    const Topology& topology, const std::vector<std::vector<std::int32_t>>& domains,
    double per_peer) {
  if (topology.scale_up == ScaleUp::FullMesh)
    return {topology.scale_up_latency, per_peer / topology.link_bandwidth};
  double hops = 0.0, load = 0.0;
  for (const auto& domain : domains) {
    if (domain.size() < 2) continue;
    std::array<std::vector<char>, 3> seen;
    std::array<double, 3> spans{0, 0, 0};
    for (std::size_t d = 0; d < 3; ++d)
      seen[d].assign(static_cast<std::size_t>(topology.torus_dims[d]), 0);
    for (std::int32_t r : domain) {
      const auto c = topology.coords(r);
      for (std::size_t d = 0; d < 3; ++d) {
        auto& v = seen[d][static_cast<std::size_t>(c[d])];
        spans[d] += v ? 0.0 : 1.0;
        v = 1;
      }
    }
    double diameter = 0.0;
    for (std::size_t d = 0; d < 3; ++d) {
      const auto c = static_cast<std::int64_t>(spans[d]);
      double distances = 0.0;
      for (std::int64_t x = 1; x < c; ++x) distances += static_cast<double>(std::min(x, c - x));
      const double links = c == 2 ? 1.0 : 2.0;
      const double nd = static_cast<double>(domain.size());
      load = std::max(load, nd / spans[d] * distances * per_peer / links);
      diameter += static_cast<double>(c / 2);
    }
    hops = std::max(hops, diameter);
  }
  return {hops * topology.scale_up_latency, load / topology.link_bandwidth};
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

double direct_time(const Topology& topology, Members members, double S) {
  const AllToAllPeers peers = peers_of(topology, members);
  const double n = peers.n;
  double a = peers.up_latency, time = peers.up * S / n / topology.scale_up_bandwidth;
  if (peers.up > 0 && topology.scale_up != ScaleUp::Switch) {
    std::tie(a, time) = mesh_or_torus_all_to_all(topology, by_domain(topology, members), S / n);
  }
  if (peers.out > 0) {  // some pairs cross domains
    a = std::max(a, peers.out_latency);
    time = std::max(time, peers.out * S / n / peers.out_bandwidth);
  }
  return (n - 1) * a + time;
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

Phase low_latency_phase(const Topology& topology, Members m, double S, Shape shape) {
  const AllToAllPeers peers = peers_of(topology, m);
  const PerPeer bytes = low_latency_bytes(topology, S / peers.n, shape);
  Phase phase = all_pairs(topology, m, bytes.up, bytes.out);
  phase.latency = std::max(peers.up_latency, peers.out_latency);
  return phase;
}

Phase node_forwarded_phase(const Topology& topology, Members members, double S, Shape shape) {
  const auto domains = by_domain(topology, members);
  const Forwarding f = forwarding(topology, members, S, shape);
  const std::size_t g = domains.front().size(), m = domains.size();
  check_flows(members.size() * (g + m - 2));
  const AllToAllPeers peers = peers_of(topology, members);
  Phase phase{peers.up_latency + peers.out_latency, {}, {}};
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
// Costed from the hops the channels use, without building their g x n flows. Returns the step
// cost (largest hop latency, seconds per byte of the ring's bytes) and the latency steps.
std::pair<StepCost, double> channel_cost(const Topology& topology, CollectiveOp op,
                                         Members members) {
  const auto domains = by_domain(topology, members);
  const std::size_t m = domains.size(), g = domains.front().size();
  StepCost up, out;
  if (g > 1 && topology.scale_up == ScaleUp::Switch) {
    up = {topology.scale_up_latency, 1.0 / topology.scale_up_bandwidth};
  } else if (g > 1) {  // a mesh link or a torus route per hop of the ring
    for (const auto& domain : domains) {
      for (std::size_t k = 0; k < g; ++k) {
        const Path path = route(topology, domain[k], domain[(k + 1) % g]);
        up.a = std::max(up.a, path.latency);
        up.b = std::max(up.b, 1.0 / path.bandwidth);
      }
    }
  }
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
  return {{std::max(up.a, out.a), b}, rounds * (n - 1)};
}

// --- Protocols (docs/engine.md, "Protocols") ------------------------------------------------

// What a protocol changes against Simple (the plain model): its set-up time (a factor on the
// launch latency), its per-step latency (a factor on the hop latency) and the fraction of the
// bandwidth it delivers. Latency ratios: NCCL's tuner constants for rings (NVIDIA/nccl,
// src/graph/tuning.cc: baseLatencies 6.6 / 14.0 / 8.4 us for LL / LL128 / Simple; hwLatencies
// per step 0.6 / 1.9 / 3.4 us over NVLink, 2.7 / 4.0 / 14.0 us over the network). Bandwidth:
// LL128 sends 120 data bytes per 128-byte line (NCCL's tuner: 0.92); LL's 8-byte lines carry 4
// data bytes (at most 1/2), and kLLEfficiency is fitted on nccl-tests (tools/fit_nvls.py).
struct ProtocolCost {
  double launch = 1.0;
  double hop = 1.0;
  double bandwidth = 1.0;
};

constexpr double kLLEfficiency = 0.335;

ProtocolCost protocol_cost(Protocol protocol, bool across_domains) {
  switch (protocol) {
    case Protocol::LL:
      return {6.6 / 8.4, across_domains ? 2.7 / 14.0 : 0.6 / 3.4, kLLEfficiency};
    case Protocol::LL128:
      return {14.0 / 8.4, across_domains ? 4.0 / 14.0 : 1.9 / 3.4, 0.92};
    default:
      return {};
  }
}

// A protocol's latency on top of the launch latency: its set-up change plus its steps (never
// below 0, so that a cluster without hop latencies keeps its launch latency).
double protocol_latency(const Topology& topology, const ProtocolCost& f, double steps_latency) {
  if (f.launch == 1.0 && f.hop == 1.0) return steps_latency;
  return std::max(0.0, topology.launch_latency * (f.launch - 1.0) + steps_latency * f.hop);
}

ProtocolCost ring_protocol(const Topology& topology, Members members, Protocol protocol) {
  return protocol_cost(protocol, !one_domain(topology, members));
}

// A ring of all-reduce, all-gather or reduce-scatter under `protocol` (never Auto), launch
// latency included.
double ring_time(const Topology& topology, CollectiveOp op, Members members, double S,
                 Protocol protocol) {
  const ProtocolCost f = ring_protocol(topology, members, protocol);
  const double n = n_of(members);
  const double rounds = op == CollectiveOp::AllReduce ? 2.0 : 1.0;
  // L + (latency + bandwidth): Simple keeps the bits of the plain closed form, and with them
  // the ties AUTO breaks by order.
  if (channelled(topology, members)) {
    const auto [c, steps] = channel_cost(topology, op, members);
    return topology.launch_latency + (protocol_latency(topology, f, steps * c.a) +
                                      rounds * (n - 1) / n * S * c.b / f.bandwidth);
  }
  const Plan plan = flat_plan(op, Algorithm::Ring, members, S);
  const StepCost c = cost_of(topology, plan.phases);
  const double steps = rounds * (n - 1);
  return topology.launch_latency +
         (protocol_latency(topology, f, steps * c.a) +
          flat_time(op, Algorithm::Ring, members.size(), S, {0.0, c.b / f.bandwidth}));
}

// The ring's phases under `protocol`: its latency, and the bytes each flow puts on the wire (the
// protocol's flags included).
std::vector<Phase> ring_phases(const Topology& topology, CollectiveOp op, Members members, double S,
                               Protocol protocol) {
  const ProtocolCost f = ring_protocol(topology, members, protocol);
  std::vector<Phase> out;
  if (channelled(topology, members)) {
    Phase phase;
    const double steps = channel_plan(topology, op, members, S, phase);
    phase.latency = steps * cost_of(topology, {phase}).a;
    out.push_back(std::move(phase));
  } else {
    Plan plan = flat_plan(op, Algorithm::Ring, members, S);
    scale_latencies(plan, cost_of(topology, plan.phases).a);
    out = std::move(plan.phases);
  }
  for (Phase& phase : out) {
    phase.latency = protocol_latency(topology, f, phase.latency);
    for (Flow& flow : phase.flows) flow.bytes /= f.bandwidth;
  }
  return out;
}

// NVLS all-reduce (NVLink SHARP): each member writes its S through the switch, which reduces,
// and reads the reduced S back (multicast), 1/n of it as the shard it owns on top: (n+1)/n S
// per link and direction, at the bandwidth NVLS achieves, after its fixed start-up time.
double nvls_bytes(Members members, double S) { return (n_of(members) + 1) / n_of(members) * S; }

double nvls_time(const Topology& topology, Members members, double S) {
  return topology.nvls_latency + nvls_bytes(members, S) / topology.nvls_bandwidth;
}

// The contention network's view: one flow per member to the next over its switch links, sized
// so that the achieved scale-up bandwidth moves it in the NVLS time.
Phase nvls_phase(const Topology& topology, Members members, double S) {
  const double scale = topology.scale_up_bandwidth / topology.nvls_bandwidth;
  Phase phase = ring(members, nvls_bytes(members, S) * scale, topology.nvls_latency);
  return phase;
}

// NVLS-tree all-reduce (NCCL's NVLSTree) over m >= 2 balanced domains of g members: the switch
// of each domain reduces (nvls), member j of every domain all-reduces the j-th S/g shard with
// its peers in the other domains over a double binary tree through its NIC, and the switch
// multicasts the result; the three stages pipeline by chunks, so the slower of the switch's
// and the NIC's bandwidth terms sets the time after the start-up and the tree's 2h hops.
struct NvlsTree {
  std::vector<std::vector<std::int32_t>> domains;
  double g = 1.0, m = 1.0;
  double tree_steps = 0.0;  // 2 floor(log2 m)
  double half = 1.0;        // the tree's share of each half: 1/2 on 2 domains (one edge each)
};

NvlsTree nvls_tree(const Topology& topology, Members members) {
  NvlsTree t;
  t.domains = by_domain(topology, members);
  t.g = static_cast<double>(t.domains.front().size());
  t.m = static_cast<double>(t.domains.size());
  t.tree_steps = 2.0 * floor_log2(t.domains.size());
  t.half = t.domains.size() == 2 ? 0.5 : 1.0;
  return t;
}

// The tree flows (both trees, reduce and broadcast at once) across domains, S/g per shard.
Phase nvls_tree_flows(const NvlsTree& t, double S) {
  Phase phase;
  for (const auto& rail : rails(t.domains)) {
    for (const bool up : {true, false}) {
      Phase one = tree_phase(rail, S / t.g / 2, up);
      phase.flows.insert(phase.flows.end(), one.flows.begin(), one.flows.end());
    }
  }
  return phase;
}

double nvls_tree_time(const Topology& topology, Members members, double S) {
  const NvlsTree t = nvls_tree(topology, members);
  const StepCost out = cost_of(topology, {nvls_tree_flows(t, 1.0)});
  const double in_switch = (t.g + 1) / t.g * S / topology.nvls_bandwidth;
  const double across = 2 * t.half * S / t.g * out.b;
  return topology.nvls_latency + t.tree_steps * out.a + std::max(in_switch, across);
}

// One phase: every domain's nvls flows (as nvls_phase) and the trees' flows at once.
Phase nvls_tree_phase(const Topology& topology, Members members, double S) {
  const NvlsTree t = nvls_tree(topology, members);
  Phase phase = nvls_tree_flows(t, S);
  const double scale = topology.scale_up_bandwidth / topology.nvls_bandwidth;
  for (const auto& domain : t.domains) {
    if (domain.size() < 2) continue;
    const Phase one = ring(domain, (t.g + 1) / t.g * S * scale, 0.0);
    phase.flows.insert(phase.flows.end(), one.flows.begin(), one.flows.end());
  }
  phase.latency =
      topology.nvls_latency + t.tree_steps * cost_of(topology, {phase}, Paths::InterDomain).a;
  return phase;
}

// --- NCCL's tree all-reduce (docs/engine.md, "NCCL's tree all-reduce")
// ----------------------------

// NCCL's Tree all-reduce over m >= 2 balanced domains of g members: g channels, channel j
// carrying S/g. Inside each domain a chain starting at member j (j, j+1, ..., j-1) reduces the
// shard up to member j; across domains the members j form a double binary tree (each tree half
// of the shard, over their own NICs) that reduces and broadcasts; the chain broadcasts back.
// Everything pipelines by chunks: after the 2 (g-1) chain hops and 2 floor(log2 m) tree hops,
// the slower of the scale-up term (each member sends 2 (g-1)/g S) and the NIC term (2 c S/g,
// c = 1/2 on two domains) sets the time.
// Its domains and the trees across them are nvls-tree's (nvls_tree, nvls_tree_flows).
using NcclTree = NvlsTree;

// The chains inside the domains, reduce and broadcast at once, S/g per hop and direction.
Phase nccl_tree_chains(const NcclTree& t, double S) {
  Phase phase;
  const std::size_t g = t.domains.front().size();
  for (const auto& domain : t.domains) {
    for (std::size_t j = 0; j < g; ++j) {
      for (std::size_t i = 0; i + 1 < g; ++i) {
        const std::int32_t near = domain[(j + i) % g], far = domain[(j + i + 1) % g];
        phase.flows.push_back({far, near, S / t.g});
        phase.flows.push_back({near, far, S / t.g});
      }
    }
  }
  return phase;
}

// NCCL's tree tuner (NVIDIA/nccl src/graph/tuning.cc) against the ring's Simple, podsim's
// plain model: base latency 6.8 / 14.0 / 8.4 us (LL / LL128 / Simple) over the ring's 8.4; per
// hop 0.6 / 1.25 / 4.0 us over NVLink (ring Simple: 3.4) and 5.0 / 8.5 / 14 us over the
// network (ring Simple: 14). Bandwidth: the tuner's 0.92 on every tree all-reduce, times 1/3.8
// for LL and 120/128 for LL128 across nodes.
struct TreeProtocolCost {
  double launch, inside, across, bandwidth;
};

TreeProtocolCost tree_protocol_cost(Protocol protocol) {
  switch (protocol) {
    case Protocol::LL:
      return {6.8 / 8.4, 0.6 / 3.4, 5.0 / 14.0, 0.92 / 3.8};
    case Protocol::LL128:
      return {14.0 / 8.4, 1.25 / 3.4, 8.5 / 14.0, 0.92 * 120.0 / 128.0};
    default:
      return {1.0, 4.0 / 3.4, 1.0, 0.92};
  }
}

struct NcclTreeCost {
  double latency = 0.0;    // seconds after the launch latency
  double bandwidth = 0.0;  // seconds: the pipelined bandwidth term
  double share = 1.0;      // fraction of the bandwidth the protocol delivers
};

NcclTreeCost nccl_tree_cost(const Topology& topology, const NcclTree& t, double S,
                            Protocol protocol) {
  const TreeProtocolCost f = tree_protocol_cost(protocol);
  const StepCost out = cost_of(topology, {nvls_tree_flows(t, 1.0)});
  const StepCost up = t.g > 1 ? cost_of(topology, {nccl_tree_chains(t, 1.0)}) : StepCost{};
  NcclTreeCost c;
  c.share = f.bandwidth;
  c.latency = std::max(0.0, topology.launch_latency * (f.launch - 1.0) +
                                2 * (t.g - 1) * up.a * f.inside + t.tree_steps * out.a * f.across);
  c.bandwidth = std::max(2 * (t.g - 1) / t.g * S * up.b, 2 * t.half * S / t.g * out.b) / c.share;
  return c;
}

double nccl_tree_time(const Topology& topology, Members members, double S, Protocol protocol) {
  const NcclTreeCost c = nccl_tree_cost(topology, nvls_tree(topology, members), S, protocol);
  return topology.launch_latency + c.latency + c.bandwidth;
}

// One phase: the chains' and the trees' flows at once, the protocol's flags on the wire.
Phase nccl_tree_phase(const Topology& topology, Members members, double S, Protocol protocol) {
  const NcclTree t = nvls_tree(topology, members);
  const NcclTreeCost c = nccl_tree_cost(topology, t, S, protocol);
  Phase phase = nccl_tree_chains(t, S / c.share);
  const Phase trees = nvls_tree_flows(t, S / c.share);
  phase.flows.insert(phase.flows.end(), trees.flows.begin(), trees.flows.end());
  phase.latency = c.latency;
  return phase;
}

// A protocol's time for the algorithms that have protocols (rings and nccl-tree).
double protocol_time(const Topology& topology, CollectiveOp op, Algorithm algorithm,
                     Members members, double S, Protocol protocol) {
  return algorithm == Algorithm::NcclTree ? nccl_tree_time(topology, members, S, protocol)
                                          : ring_time(topology, op, members, S, protocol);
}

// NCCL's tuner: the protocol of the smallest predicted time (Simple on a tie), unless the
// topology forces one; algorithms other than rings and nccl-tree run Simple.
Protocol choose_protocol(const Topology& topology, CollectiveOp op, Algorithm algorithm,
                         Members members, double S) {
  const bool has_protocols = ring_family(op, algorithm) || algorithm == Algorithm::NcclTree;
  if (!has_protocols || members.size() < 2) return Protocol::Simple;
  if (topology.protocol != Protocol::Auto) return topology.protocol;
  Protocol best = Protocol::Simple;
  double best_time = protocol_time(topology, op, algorithm, members, S, best);
  for (const Protocol p : {Protocol::LL128, Protocol::LL}) {
    const double time = protocol_time(topology, op, algorithm, members, S, p);
    if (time < best_time) best = p, best_time = time;
  }
  return best;
}

// NCCL's tuner takes NVLS for all-reduce unless the message is small (docs/engine.md): podsim
// takes it once moving the bytes costs at least its start-up time.
bool nvls_preferred(const Topology& topology, Members members, double S) {
  return nvls_bytes(members, S) / topology.nvls_bandwidth >= topology.nvls_latency;
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
      return op == CollectiveOp::AllToAll;
    case Algorithm::LowLatency:  // DeepEP's kernels: NVLink through NVSwitch
      return op == CollectiveOp::AllToAll && topology.scale_up == ScaleUp::Switch;
    case Algorithm::NodeForwarded:
      return op == CollectiveOp::AllToAll && topology.scale_up == ScaleUp::Switch &&
             balanced(by_domain(topology, members));
    case Algorithm::Mesh:
      return (all_reduce || gather_scatter) && topology.scale_up == ScaleUp::FullMesh &&
             members.size() >= 2 && one_domain(topology, members);
    case Algorithm::Torus: {
      std::array<std::int64_t, 3> spans{};
      return (all_reduce || gather_scatter) && members.size() >= 2 &&
             sub_torus(topology, members, spans);
    }
    case Algorithm::Nvls:
      return all_reduce && topology.nvls_bandwidth > 0 && members.size() >= 2 &&
             one_domain(topology, members);
    case Algorithm::NvlsTree: {
      if (!all_reduce || topology.nvls_bandwidth <= 0) return false;
      const auto domains = by_domain(topology, members);
      return domains.size() >= 2 && balanced(domains) && domains.front().size() >= 2;
    }
    case Algorithm::NcclTree: {  // NVIDIA nodes: NVLink through NVSwitch inside, NICs across
      if (!all_reduce || topology.scale_up != ScaleUp::Switch) return false;
      const auto domains = by_domain(topology, members);
      return domains.size() >= 2 && balanced(domains);
    }
    default:
      return false;
  }
}

Protocol resolve_protocol(const Topology& topology, CollectiveOp op, Algorithm algorithm,
                          Members members, double bytes) {
  require_members(members);
  return choose_protocol(topology, op, algorithm, members, bytes);
}

double collective_time(const Topology& topology, CollectiveOp op, Algorithm algorithm,
                       Members members, double bytes, Shape shape, Protocol protocol) {
  require_members(members);
  if (algorithm == Algorithm::LowLatency || algorithm == Algorithm::NodeForwarded) {
    if (members.size() < 2) return topology.launch_latency;
    const double time = algorithm == Algorithm::LowLatency
                            ? low_latency_time(topology, members, bytes, shape)
                            : node_forwarded_time(topology, members, bytes, shape);
    return topology.launch_latency + time;
  }
  if (algorithm == Algorithm::Nvls) {
    return topology.launch_latency + nvls_time(topology, members, bytes);
  }
  if (algorithm == Algorithm::NvlsTree) {
    return topology.launch_latency + nvls_tree_time(topology, members, bytes);
  }
  if (algorithm == Algorithm::NcclTree) {
    if (protocol == Protocol::Auto)
      protocol = choose_protocol(topology, op, algorithm, members, bytes);
    return nccl_tree_time(topology, members, bytes, protocol);
  }
  if (algorithm == Algorithm::Hierarchical) {
    return topology.launch_latency + hierarchical_time(topology, op, members, bytes);
  }
  if (algorithm == Algorithm::Direct) {
    return topology.launch_latency + direct_time(topology, members, bytes);
  }
  if (algorithm == Algorithm::Mesh || algorithm == Algorithm::Torus) {
    return topology.launch_latency +
           plan_time(topology, topology_plan(topology, op, algorithm, members, bytes));
  }
  if (ring_family(op, algorithm) && members.size() >= 2) {
    if (protocol == Protocol::Auto)
      protocol = choose_protocol(topology, op, algorithm, members, bytes);
    return ring_time(topology, op, members, bytes, protocol);
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
  if (applicable(topology, op, Algorithm::Nvls, members) &&
      nvls_preferred(topology, members, bytes)) {
    return Algorithm::Nvls;
  }
  Algorithm best = Algorithm::Auto;
  double best_time = 0.0;
  // The topology's own algorithms (mesh, torus) first: on a tie the vendor's choice wins.
  static constexpr Algorithm kOrder[] = {
      Algorithm::Mesh,   Algorithm::Torus,           Algorithm::Ring,
      Algorithm::Tree,   Algorithm::HalvingDoubling, Algorithm::Hierarchical,
      Algorithm::Direct, Algorithm::LowLatency,      Algorithm::NodeForwarded,
      Algorithm::Nvls,   Algorithm::NvlsTree};
  for (const Algorithm algorithm : kOrder) {
    if (!applicable(topology, op, algorithm, members)) continue;
    const double time = analytical_time(topology, op, algorithm, members, bytes, shape);
    if (best == Algorithm::Auto || time < best_time) best = algorithm, best_time = time;
  }
  return best;
}

std::vector<Phase> collective_phases(const Topology& topology, CollectiveOp op, Algorithm algorithm,
                                     Members members, double bytes, Shape shape,
                                     Protocol protocol) {
  require_members(members);
  if (members.size() < 2) return {};
  if (algorithm == Algorithm::LowLatency)
    return {low_latency_phase(topology, members, bytes, shape)};
  if (algorithm == Algorithm::NodeForwarded) {
    return {node_forwarded_phase(topology, members, bytes, shape)};
  }
  if (algorithm == Algorithm::Nvls) return {nvls_phase(topology, members, bytes)};
  if (algorithm == Algorithm::NvlsTree) return {nvls_tree_phase(topology, members, bytes)};
  if (algorithm == Algorithm::NcclTree) {
    if (protocol == Protocol::Auto)
      protocol = choose_protocol(topology, op, algorithm, members, bytes);
    return {nccl_tree_phase(topology, members, bytes, protocol)};
  }
  if (algorithm == Algorithm::Direct) {
    const double per_peer = bytes / n_of(members);
    Phase phase = all_pairs(topology, members, per_peer, per_peer);
    phase.latency = (n_of(members) - 1) * cost_of(topology, {phase}).a;
    return {std::move(phase)};
  }
  if (algorithm == Algorithm::Mesh || algorithm == Algorithm::Torus) {
    Plan plan = topology_plan(topology, op, algorithm, members, bytes);
    scale_each(topology, plan);
    return std::move(plan.phases);
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
  if (ring_family(op, algorithm)) {
    if (protocol == Protocol::Auto)
      protocol = choose_protocol(topology, op, algorithm, members, bytes);
    return ring_phases(topology, op, members, bytes, protocol);
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
    const Protocol p = choose_protocol(topology, op, algorithm, members, S);
    return {collective_time(topology, op, algorithm, members, S, shape, p) -
            collective_time(topology, op, algorithm, members, kNoBytes, shape, p)};
  }
  std::vector<double> out;
  if (algorithm == Algorithm::Hierarchical) {
    const Hierarchy h = hierarchical(topology, op, members, S);
    const StepCost up = cost_of(
        topology, h.intra_before.phases.empty() ? h.intra_after.phases : h.intra_before.phases);
    const StepCost across = cost_of(topology, h.inter.phases);
    const double rounds = op == CollectiveOp::AllReduce ? 2.0 : 1.0;
    const double inside = intra_share(topology, h.g) * S * up.b;
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
                                "hierarchical", "direct", "low-latency", "node-forwarded",
                                "mesh",         "torus",  "nvls",        "nvls-tree",
                                "nccl-tree"};
  return names[static_cast<int>(algorithm)];
}

}  // namespace podsim
