// Programs: per-rank ops as a struct of arrays (docs/engine.md).
#pragma once

#include <cstdint>
#include <vector>

namespace podsim {

enum class Kind : std::int8_t { Compute = 0, Collective = 1, Send = 2, Recv = 3, Wait = 4 };

enum class CollectiveOp : std::int8_t {
  AllReduce = 0,
  AllGather = 1,
  ReduceScatter = 2,
  AllToAll = 3,
  Broadcast = 4,
  Reduce = 5,
};
inline constexpr int kCollectiveOps = 6;

enum class Algorithm : std::int8_t {
  Auto = 0,
  Ring = 1,
  Tree = 2,
  HalvingDoubling = 3,
  Hierarchical = 4,
  Direct = 5,
  LowLatency = 6,     // all-to-all: every peer written at once (DeepEP low-latency)
  NodeForwarded = 7,  // all-to-all: one copy per domain over scale-out, then scale-up forwarding
  Mesh = 8,           // full mesh: every member writes each peer over its own link at once (HCCL)
  Torus = 9,          // torus: dimension-ordered bidirectional rings (TPU)
  Nvls = 10,          // all-reduce reduced in the scale-up switch (NVLink SHARP)
  NvlsTree = 11,      // all-reduce: nvls in each domain, a tree across domains (NCCL's NVLSTree)
  NcclTree = 12,      // all-reduce: a chain in each domain, a tree across domains (NCCL's Tree)
};
inline constexpr int kAlgorithms = 13;

inline constexpr int kMaxStreams = 64;
inline constexpr std::int32_t kMaxRepeat = 1 << 20;

const char* to_string(Kind kind);
const char* to_string(CollectiveOp op);
const char* to_string(Algorithm algorithm);

// Owned columns; `peer` is the group (collective), the peer rank (send/recv) or -1.
struct Program {
  std::vector<std::int32_t> rank;
  std::vector<std::int32_t> stream;
  std::vector<std::int8_t> kind;
  std::vector<double> duration;
  std::vector<double> bytes;
  std::vector<std::int32_t> peer;
  std::vector<std::int8_t> collective;
  std::vector<std::int8_t> algorithm;
  std::vector<std::int32_t> repeat;  // a collective: this many back-to-back instances
  // Optional all-to-all shape (docs/engine.md); empty: every op takes the default.
  std::vector<double> message_bytes;      // bytes of one message (a token); 0: one per peer
  std::vector<double> fanout;             // ranks of a domain one per-domain copy reaches; 1: none
  std::vector<std::int64_t> dep_offsets;  // size ops + 1
  std::vector<std::int32_t> dep_ops;
  std::vector<std::int64_t> group_offsets;  // size groups + 1
  std::vector<std::int32_t> group_ranks;

  std::size_t num_ops() const { return rank.size(); }
  std::size_t num_groups() const { return group_offsets.empty() ? 0 : group_offsets.size() - 1; }
};

}  // namespace podsim
