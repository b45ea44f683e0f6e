// Every rank of a symmetric program, with noise (docs/engine.md, "Replicated runs").
//
// A symmetric analytical run records its order of completions: a topological order of the
// representatives' graph. Each representative's op stands for the same op on each of its
// copies (rank copies), and each of its collectives for one instance per copy of its group
// (group copies); deps join ops of one rank, instances the ranks of one group copy, transfers
// copy j of one representative with copy j of another. Taking each item of that order for
// every copy at once is therefore a topological order of the every-rank program, and its
// sweep (the event loop's maxima and additions, with every rank's own draws, keyed as in the
// every-rank program) gives that program's times without building it: its ops side by side
// per representative op ("cells"), so each step reads and writes in sequence.
#pragma once

#include <cstdint>
#include <vector>

#include "draws.hpp"

namespace podsim {

struct ReplicatedPlan {
  enum class ItemKind : std::int8_t { Op, Instance, Transfer };
  struct Item {
    ItemKind kind;
    std::int32_t position;  // the representative's op (a transfer: its send; its receive next)
    std::int32_t detail;    // Instance: index into `instances`, Transfer: into `transfers`
  };
  // A collective of a representative, for each copy of its group.
  struct Instance {
    double time;     // each repetition's closed form (or pod-link time), times repeat
    double latency;  // the latency term of one repetition, stretched by the draws
    std::int32_t repeat;
    std::int32_t group_size;  // also the concurrent hops of its latency draws
    std::int64_t members;     // into member_copies: group copies one after the other
    std::int64_t ids;         // into instance_ids: each group copy's instance (the draw's key)
  };
  // A transfer between two representatives, for each copy: path latency and bandwidth term.
  struct Transfer {
    std::int64_t paths;  // into latency / bandwidth_term, one per copy (or one for all: `same`)
    bool same;
  };

  std::vector<Item> items;
  // Per position (a representative's op, in the recorded order).
  std::vector<std::int64_t> cell;               // its first cell; its copies' cells follow
  std::vector<std::int32_t> copies;             // how many copies
  std::vector<std::int64_t> first_op;           // the every-rank program's op of copy 0
  std::vector<std::int64_t> op_stride;          // ops between one copy's and the next's
  std::vector<std::int64_t> ranks;              // into copy_ranks: its copies' ranks
  std::vector<double> duration;                 // compute: its duration
  std::vector<std::int64_t> dependent_offsets;  // CSR: positions released by this one
  std::vector<std::int32_t> dependents;
  std::vector<std::int32_t> copy_ranks;
  std::vector<Instance> instances;
  std::vector<std::int32_t> member_copies;  // copy indices (cells) of each group copy's members
  std::vector<std::int64_t> instance_ids;
  std::vector<Transfer> transfers;
  std::vector<double> latency, bandwidth_term;
  double launch_latency = 0.0;
  std::int64_t cells = 0;        // ops of the every-rank program
  std::int32_t most_copies = 0;  // the largest `copies`
  Draws draws;

  // One step: its makespan. `ready` (cells) and `ends` (most_copies) are work space; with
  // `start` and `end` (cells, indexed by the every-rank program's ops), every op's times.
  double step(std::uint64_t iteration, std::vector<double>& ready, std::vector<double>& ends,
              double* start = nullptr, double* end = nullptr) const;
};

}  // namespace podsim
