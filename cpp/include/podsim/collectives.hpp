// Collective algorithms: closed-form alpha-beta times and their phases of flows.
#pragma once

#include <cstdint>
#include <span>
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

// A phase waits `latency`, then runs its flows; it ends when the last flow ends.
struct Phase {
  double latency = 0.0;
  std::vector<Flow> flows;
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
