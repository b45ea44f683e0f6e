// What the representatives of a symmetric program stand for (docs/engine.md, "Symmetric runs"),
// so that the analytical network can charge pod links the waves of every concurrent copy.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "podsim/program.hpp"
#include "podsim/topology.hpp"

namespace podsim {

struct Copies {
  // CSR over the program's groups: the member lists of the groups each stands for, the group
  // itself first, each list as long as the group. Empty: every group stands for itself.
  std::vector<std::int64_t> group_offsets;
  std::vector<std::int32_t> group_ranks;
  // CSR over ranks [0, devices): the ranks each stands for, itself first; copy j of a transfer
  // from a to b runs from ranks(a)[j] to ranks(b)[j]. Empty: every rank stands for itself.
  std::vector<std::int64_t> rank_offsets;
  std::vector<std::int32_t> ranks;

  bool empty() const { return group_offsets.empty() && rank_offsets.empty(); }

  // Throws SpecError naming the field, the value and what is allowed.
  void validate(const Program& program, const Topology& topology) const;

  // The member lists group `group` (whose members are `members`) stands for.
  std::vector<std::span<const std::int32_t>> of_group(std::int32_t group,
                                                      std::span<const std::int32_t> members) const;
  // The ranks `rank` stands for (itself alone without rank copies).
  std::span<const std::int32_t> of_rank(const std::int32_t& rank) const;
};

}  // namespace podsim
