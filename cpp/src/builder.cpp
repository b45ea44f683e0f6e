#include "podsim/builder.hpp"

#include <limits>
#include <string>

#include "podsim/errors.hpp"

namespace podsim {

std::int32_t ProgramBuilder::group(Indices ranks) {
  std::vector<std::int32_t> key(ranks.span().begin(), ranks.span().end());
  const auto found = group_index_.find(key);
  if (found != group_index_.end()) return found->second;
  const auto index = static_cast<std::int32_t>(groups_.size());
  groups_.push_back(key);
  group_index_.emplace(std::move(key), index);
  return index;
}

std::int32_t ProgramBuilder::compute(std::int32_t rank, double duration, std::int32_t stream,
                                     Indices deps) {
  return add(rank, stream, Kind::Compute, duration, 0.0, -1, -1, -1, 1, deps);
}

std::int32_t ProgramBuilder::wait(std::int32_t rank, std::int32_t stream, Indices deps) {
  return add(rank, stream, Kind::Wait, 0.0, 0.0, -1, -1, -1, 1, deps);
}

std::int32_t ProgramBuilder::collective(std::int32_t rank, CollectiveOp op, std::int32_t group,
                                        double bytes, Algorithm algorithm, std::int32_t stream,
                                        Indices deps, std::int32_t repeat) {
  return add(rank, stream, Kind::Collective, 0.0, bytes, group, static_cast<std::int8_t>(op),
             static_cast<std::int8_t>(algorithm), repeat, deps);
}

namespace {

// The `collective` column holds a send's or recv's tag: it must fit, in [-1, 127].
std::int8_t tag_of(int tag, std::size_t op) {
  if (tag < -1 || tag > std::numeric_limits<std::int8_t>::max()) {
    throw ProgramError("op " + std::to_string(op) + ": tag = " + std::to_string(tag) +
                       " must be in [-1, 127]");
  }
  return static_cast<std::int8_t>(tag);
}

}  // namespace

std::int32_t ProgramBuilder::send(std::int32_t rank, std::int32_t dst, double bytes,
                                  std::int32_t stream, Indices deps, int tag) {
  return add(rank, stream, Kind::Send, 0.0, bytes, dst, tag_of(tag, num_ops()), -1, 1, deps);
}

std::int32_t ProgramBuilder::recv(std::int32_t rank, std::int32_t src, double bytes,
                                  std::int32_t stream, Indices deps, int tag) {
  return add(rank, stream, Kind::Recv, 0.0, bytes, src, tag_of(tag, num_ops()), -1, 1, deps);
}

std::int32_t ProgramBuilder::add(std::int32_t rank, std::int32_t stream, Kind kind, double duration,
                                 double bytes, std::int32_t peer, std::int8_t collective,
                                 std::int8_t algorithm, std::int32_t repeat, Indices deps) {
  Program& p = program_;
  if (p.num_ops() >= static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) {
    throw ProgramError("a program holds at most 2147483647 ops");
  }
  if (p.dep_offsets.empty()) p.dep_offsets.push_back(0);
  p.rank.push_back(rank);
  p.stream.push_back(stream);
  p.kind.push_back(static_cast<std::int8_t>(kind));
  p.duration.push_back(duration);
  p.bytes.push_back(bytes);
  p.peer.push_back(peer);
  p.collective.push_back(collective);
  p.algorithm.push_back(algorithm);
  p.repeat.push_back(repeat);
  p.dep_ops.insert(p.dep_ops.end(), deps.span().begin(), deps.span().end());
  p.dep_offsets.push_back(static_cast<std::int64_t>(p.dep_ops.size()));
  return static_cast<std::int32_t>(p.num_ops() - 1);
}

Program ProgramBuilder::build() const {
  Program p = program_;
  if (p.dep_offsets.empty()) p.dep_offsets.push_back(0);
  p.group_offsets.reserve(groups_.size() + 1);
  p.group_offsets.push_back(0);
  for (const auto& members : groups_) {
    p.group_ranks.insert(p.group_ranks.end(), members.begin(), members.end());
    p.group_offsets.push_back(static_cast<std::int64_t>(p.group_ranks.size()));
  }
  return p;
}

}  // namespace podsim
