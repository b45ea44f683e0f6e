// What the engine derives from a program once, after checking it: who waits for whom,
// which ops form one collective instance, which send matches which receive.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "podsim/program.hpp"
#include "podsim/topology.hpp"

namespace podsim {

struct ProgramIndex {
  // Per op: deps plus the previous op of its stream.
  std::vector<std::int32_t> initial_pending;
  // CSR: ops that wait for each op (its deps' dependents and its stream successor).
  std::vector<std::int64_t> dependent_offsets;
  std::vector<std::int64_t> dependent_ops;
  // Per op: its collective instance, or -1. Per instance: group, and its ops (CSR).
  std::vector<std::int32_t> instance_of;
  std::vector<std::int32_t> instance_groups;
  std::vector<std::int64_t> instance_offsets;
  std::vector<std::int64_t> instance_members;
  // Per send or recv: the matching recv or send, or -1 if none.
  std::vector<std::int64_t> partner;

  std::span<const std::int64_t> dependents(std::int64_t op) const {
    return {dependent_ops.data() + dependent_offsets[op],
            static_cast<std::size_t>(dependent_offsets[op + 1] - dependent_offsets[op])};
  }
  std::span<const std::int64_t> instance_ops(std::int32_t instance) const {
    return {instance_members.data() + instance_offsets[instance],
            static_cast<std::size_t>(instance_offsets[instance + 1] - instance_offsets[instance])};
  }
};

// Checks every field against the topology (throws ProgramError naming op, field and value).
ProgramIndex index_program(const Program& program, const Topology& topology);

// Why a run that ended with unfinished ops could not go on: the first blocked op.
std::string describe_deadlock(const Program& program, const ProgramIndex& index,
                              const std::vector<std::int32_t>& pending,
                              const std::vector<char>& ready, const std::vector<double>& end);

}  // namespace podsim
