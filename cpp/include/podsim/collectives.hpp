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

// Closed-form time without contention, launch latency included (algorithm resolved).
double collective_time(const Topology& topology, CollectiveOp op, Algorithm algorithm,
                       std::span<const std::int32_t> members, double bytes, Shape shape = {});

// The phases the contention network runs (launch latency not included).
std::vector<Phase> collective_phases(const Topology& topology, CollectiveOp op, Algorithm algorithm,
                                     std::span<const std::int32_t> members, double bytes,
                                     Shape shape = {});

}  // namespace podsim
