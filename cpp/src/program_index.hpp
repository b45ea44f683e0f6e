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
  std::vector<std::int32_t> dependent_ops;  // int32: a cache line holds twice as many
  // Per op: its collective instance, or -1. Per instance: group, and its ops (CSR).
  std::vector<std::int32_t> instance_of;
  std::vector<std::int32_t> instance_groups;
  std::vector<std::int64_t> instance_offsets;
  std::vector<std::int64_t> instance_members;
  // Per send or recv: the matching recv or send, or -1 if none.
  std::vector<std::int64_t> partner;

  std::span<const std::int32_t> dependents(std::int64_t op) const {
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

// Ops renumbered for memory locality: the k-th op of every rank next to each other (ranks of a
// pipeline stage run the same template, so they reach their k-th ops at about the same time),
// ties in program order. `to_original[internal]` is the op's index in the program.
std::vector<std::int64_t> locality_order(const Program& program);

// column[from[x]] for each x.
template <class T>
std::vector<T> gather(const std::vector<T>& column, const std::vector<std::int64_t>& from) {
  std::vector<T> out(from.size());
  for (std::size_t x = 0; x < from.size(); ++x) out[x] = column[static_cast<std::size_t>(from[x])];
  return out;
}

// The index with ops renumbered by `to_original` (a permutation). Every list keeps its order
// under the renaming (dependents, instance members), so that a run handles the same events in
// the same order.
ProgramIndex permute(const ProgramIndex& index, const std::vector<std::int64_t>& to_original);

// Why a run that ended with unfinished ops could not go on: the first blocked op.
std::string describe_deadlock(const Program& program, const ProgramIndex& index,
                              const std::vector<std::int32_t>& pending,
                              const std::vector<char>& ready, const std::vector<double>& end);

}  // namespace podsim
