// Collective algorithms: closed-form alpha-beta times and their phases of flows.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "podsim/program.hpp"
#include "podsim/topology.hpp"

namespace podsim {

// `count` identical flows (same path, same bytes) merged into one: max-min gives each the
// same rate, so they are simulated once with `count` shares.
struct Flow {
  std::int32_t src = 0;
  std::int32_t dst = 0;
  double bytes = 0.0;
  std::int32_t count = 1;
};

// Which pairs of a block are not flows: none, a device and itself, or two devices of a domain.
enum class Exclude : std::int8_t { None = 0, SameDevice = 1, SameDomain = 2 };

// A block of flows (docs/engine.md, "Contention at scale"): one of `bytes` from each device of
// `srcs` to each device of `dsts`, except the pairs `exclude` names; `pairs` flows in all. The
// direct all-to-all's traffic inside a switch domain, between the domains of a pod, or from one
// pod to another: each flow leaves over its source's own link (up or NIC), enters over its
// destination's own link (down or NIC), and every flow crosses the same links between (none, or
// the same two pod links), so the contention network solves the block as one weighted flow.
struct FlowBlock {
  std::vector<std::int32_t> srcs;
  std::vector<std::int32_t> dsts;
  double bytes = 0.0;
  Exclude exclude = Exclude::None;
  std::int64_t pairs = 0;
};

// For each of `ends`, how many of `others` it pairs with in a block that excludes `exclude`.
std::vector<std::int64_t> partners(const Topology& topology, Exclude exclude,
                                   std::span<const std::int32_t> ends,
                                   std::span<const std::int32_t> others);

// The block of every pair of `srcs` x `dsts` that `exclude` keeps (pairs counted).
FlowBlock make_block(const Topology& topology, std::vector<std::int32_t> srcs,
                     std::vector<std::int32_t> dsts, double bytes, Exclude exclude);

// Whether src -> dst is a pair of a block that excludes `exclude`.
inline bool block_pair(const Topology& topology, Exclude exclude, std::int32_t src,
                       std::int32_t dst) {
  if (exclude == Exclude::SameDomain) return topology.domain(src) != topology.domain(dst);
  return exclude == Exclude::None || src != dst;
}

// The block's first pair in order (sources, then destinations); the block must have pairs.
std::pair<std::int32_t, std::int32_t> first_pair(const Topology& topology, const FlowBlock& block);

// A phase waits `latency`, then runs its flows and blocks; it ends when the last flow ends.
struct Phase {
  double latency = 0.0;
  std::vector<Flow> flows;
  std::vector<FlowBlock> blocks;

  // The flows it runs: the ones listed, their merged copies and the blocks' pairs.
  std::int64_t flow_count() const {
    std::int64_t n = 0;
    for (const Flow& f : flows) n += f.count;
    for (const FlowBlock& b : blocks) n += b.pairs;
    return n;
  }
};

// How an all-to-all's bytes are shaped (docs/engine.md); other collectives ignore it.
struct Shape {
  double message_bytes = 0.0;  // one message (e.g. one token's hidden vector); 0: one per peer
  double fanout = 1.0;         // node-forwarded: ranks of a domain that one per-domain copy reaches
};

// Whether `algorithm` can run `op` on these members (never Auto).
bool applicable(const Topology& topology, CollectiveOp op, Algorithm algorithm,
                std::span<const std::int32_t> members);

// The algorithm to use: `requested`, checked, or for Auto the fastest applicable one.
// Throws ProgramError when the requested algorithm does not apply.
Algorithm resolve_algorithm(const Topology& topology, CollectiveOp op, Algorithm requested,
                            std::span<const std::int32_t> members, double bytes, Shape shape = {});

// The protocol a collective runs (never Auto): for rings of all-reduce, all-gather and
// reduce-scatter the topology's protocol, or for Auto the fastest at these bytes; Simple for
// every other algorithm (docs/engine.md, "Protocols").
Protocol resolve_protocol(const Topology& topology, CollectiveOp op, Algorithm algorithm,
                          std::span<const std::int32_t> members, double bytes);

// Closed-form time without contention, launch latency included (algorithm resolved). The
// protocol: Auto resolves it at these bytes (resolve_protocol); pass the resolved one to cost
// other byte counts under the same protocol.
double collective_time(const Topology& topology, CollectiveOp op, Algorithm algorithm,
                       std::span<const std::int32_t> members, double bytes, Shape shape = {},
                       Protocol protocol = Protocol::Auto);

// The phases the contention network runs (launch latency not included).
std::vector<Phase> collective_phases(const Topology& topology, CollectiveOp op, Algorithm algorithm,
                                     std::span<const std::int32_t> members, double bytes,
                                     Shape shape = {}, Protocol protocol = Protocol::Auto);

// --- Pod links in the analytical network (docs/engine.md, "Pod links") ----------------------

// Bytes one phase moves over one pod link (a pod's uplink or downlink).
struct PodLoad {
  std::int32_t link = 0;
  double bytes = 0.0;
};

// Per phase of collective_phases (same order): the bytes the group pushes over each pod link
// it crosses; none when the group stays in one pod. Direct all-to-all is counted per pod, without
// building its n(n-1) flows.
std::vector<std::vector<PodLoad>> pod_loads(const Topology& topology, CollectiveOp op,
                                            Algorithm algorithm,
                                            std::span<const std::int32_t> members, double bytes,
                                            Shape shape = {});

// Per phase: the seconds its busiest pod link needs for `loads` (bytes / link capacity).
std::vector<double> pod_seconds(const Topology& topology,
                                const std::vector<std::vector<PodLoad>>& loads);

// The analytical network's time: collective_time, except that each phase's bandwidth term is at
// least `pod_seconds[k]`, the time its traffic (and any concurrent copies of it the caller
// counted) needs on the busiest pod link it crosses. Empty `pod_seconds`: the group's own
// traffic alone, pod_seconds(pod_loads(...)).
double analytical_time(const Topology& topology, CollectiveOp op, Algorithm algorithm,
                       std::span<const std::int32_t> members, double bytes, Shape shape = {},
                       std::span<const double> pod_seconds = {});

// Whether the members sit in more than one pod (only then do pod links matter).
bool spans_pods(const Topology& topology, std::span<const std::int32_t> members);

}  // namespace podsim
