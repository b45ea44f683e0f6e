// Writing programs op by op, as podsim.program.ProgramBuilder does in Python: each call appends
// one op and returns its index, for use in the deps of later ops; build() returns the columns.
//
//   podsim::ProgramBuilder b;
//   const auto g = b.group({0, 1});
//   const auto x = b.compute(0, 1e-3);
//   b.collective(0, podsim::CollectiveOp::AllReduce, g, 1e6, podsim::Algorithm::Ring, 1, {x});
//   b.collective(1, podsim::CollectiveOp::AllReduce, g, 1e6, podsim::Algorithm::Ring);
//   podsim::Program program = b.build();
//
// The builder only fills the columns; the engine checks them (docs/engine.md) and throws
// ProgramError naming the op and field of anything it does not allow.
#pragma once

#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <ranges>
#include <span>
#include <vector>

#include "podsim/program.hpp"

namespace podsim {

// A list of indices (the op ids an op waits for, the ranks of a group): `{a, b}`, or a
// contiguous range of std::int32_t (a std::vector, std::array or std::span). It only refers to
// them, without a copy: pass it straight to a builder call.
class Indices {
 public:
  Indices() = default;
  Indices(std::initializer_list<std::int32_t> ids) : ids_(ids.begin(), ids.size()) {}
  template <std::ranges::contiguous_range R>
    requires std::same_as<std::ranges::range_value_t<R>, std::int32_t>
  Indices(const R& ids)  // NOLINT(google-explicit-constructor): implicit by design
      : ids_(std::ranges::data(ids), std::ranges::size(ids)) {}

  std::span<const std::int32_t> span() const { return ids_; }

 private:
  std::span<const std::int32_t> ids_;
};

class ProgramBuilder {
 public:
  // The index of the group with these members (in this order: the ring order, and the first
  // member is the root of broadcast and reduce), added if new.
  std::int32_t group(Indices ranks);

  // `duration` seconds of work on `rank`.
  std::int32_t compute(std::int32_t rank, double duration, std::int32_t stream = 0,
                       Indices deps = {});
  // Completes once its deps have: joins streams.
  std::int32_t wait(std::int32_t rank, std::int32_t stream = 0, Indices deps = {});
  // `rank`'s part of a collective on group `group` (from group()); every member adds its own,
  // with the same op, bytes and algorithm. `repeat` back-to-back instances as a single op.
  std::int32_t collective(std::int32_t rank, CollectiveOp op, std::int32_t group, double bytes,
                          Algorithm algorithm = Algorithm::Auto, std::int32_t stream = 1,
                          Indices deps = {}, std::int32_t repeat = 1);
  // The k-th send from rank to dst with a tag matches dst's k-th recv from rank with that tag.
  // A tag is in [-1, 127] (-1: untagged); anything else throws ProgramError.
  std::int32_t send(std::int32_t rank, std::int32_t dst, double bytes, std::int32_t stream = 1,
                    Indices deps = {}, int tag = -1);
  std::int32_t recv(std::int32_t rank, std::int32_t src, double bytes, std::int32_t stream = 1,
                    Indices deps = {}, int tag = -1);

  std::size_t num_ops() const { return program_.num_ops(); }
  std::size_t num_groups() const { return groups_.size(); }

  // The program so far (the builder can go on adding ops afterwards).
  Program build() const;

 private:
  std::int32_t add(std::int32_t rank, std::int32_t stream, Kind kind, double duration, double bytes,
                   std::int32_t peer, std::int8_t collective, std::int8_t algorithm,
                   std::int32_t repeat, Indices deps);

  Program program_;  // op columns and deps; groups are added by build()
  std::vector<std::vector<std::int32_t>> groups_;
  std::map<std::vector<std::int32_t>, std::int32_t> group_index_;
};

}  // namespace podsim
