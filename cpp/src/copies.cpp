#include "podsim/copies.hpp"

#include <algorithm>
#include <string>

#include "podsim/errors.hpp"

namespace podsim {
namespace {

[[noreturn]] void refuse(const std::string& field, const std::string& what) {
  std::string message = "copies.";  // appended in place (GCC 12 warns on "literal" + string)
  message += field;
  message += ' ';
  message += what;
  throw SpecError(message);
}

// A CSR over `rows` rows of `values` entries: starts at 0, ends at `values`, never decreases.
void check_csr(const std::vector<std::int64_t>& offsets, std::size_t rows, std::size_t values,
               const char* name) {
  if (offsets.size() != rows + 1) {
    refuse(name, "has " + std::to_string(offsets.size()) + " entries; expected " +
                     std::to_string(rows + 1) + " (one more than its rows)");
  }
  if (offsets.front() != 0 || offsets.back() != static_cast<std::int64_t>(values)) {
    refuse(name, "must start at 0 and end at " + std::to_string(values));
  }
  for (std::size_t i = 0; i < rows; ++i) {
    if (offsets[i + 1] < offsets[i]) refuse(name, "decreases at " + std::to_string(i));
  }
}

void check_ranks(const std::vector<std::int32_t>& ranks, std::int64_t devices, const char* name) {
  for (std::size_t i = 0; i < ranks.size(); ++i) {
    if (ranks[i] < 0 || ranks[i] >= devices) {
      std::string where = std::string(name) + '[' + std::to_string(i) + ']';
      refuse(where, "= " + std::to_string(ranks[i]) + " is not a rank in [0, " +
                        std::to_string(devices) + ")");
    }
  }
}

}  // namespace

void Copies::validate(const Program& program, const Topology& topology) const {
  if (!group_offsets.empty()) {
    check_csr(group_offsets, program.num_groups(), group_ranks.size(), "group_offsets");
    check_ranks(group_ranks, topology.devices, "group_ranks");
    for (std::size_t g = 0; g < program.num_groups(); ++g) {
      const std::int64_t size = program.group_offsets[g + 1] - program.group_offsets[g];
      const std::int64_t count = group_offsets[g + 1] - group_offsets[g];
      const auto own = program.group_ranks.begin() + program.group_offsets[g];
      if (count < size || count % size != 0 ||
          !std::equal(own, own + size, group_ranks.begin() + group_offsets[g])) {
        refuse("group_ranks", "of group " + std::to_string(g) + " must be whole copies of its " +
                                  std::to_string(size) + " members, the group itself first");
      }
    }
  }
  if (!rank_offsets.empty()) {
    check_csr(rank_offsets, static_cast<std::size_t>(topology.devices), ranks.size(),
              "rank_offsets");
    check_ranks(ranks, topology.devices, "ranks");
    for (std::int64_t r = 0; r < topology.devices; ++r) {
      const std::int64_t at = rank_offsets[static_cast<std::size_t>(r)];
      if (at < rank_offsets[static_cast<std::size_t>(r) + 1] && ranks[at] != r) {
        refuse("ranks", "of rank " + std::to_string(r) + " must list the rank itself first");
      }
    }
  }
}

std::vector<std::span<const std::int32_t>> Copies::of_group(
    std::int32_t group, std::span<const std::int32_t> members) const {
  if (group_offsets.empty()) return {members};
  std::vector<std::span<const std::int32_t>> out;
  const auto g = static_cast<std::size_t>(group);
  for (std::int64_t i = group_offsets[g]; i < group_offsets[g + 1];
       i += static_cast<std::int64_t>(members.size())) {
    out.emplace_back(group_ranks.data() + i, members.size());
  }
  return out;
}

std::span<const std::int32_t> Copies::of_rank(const std::int32_t& rank) const {
  if (rank_offsets.empty()) return {&rank, 1};
  const auto r = static_cast<std::size_t>(rank);
  return {ranks.data() + rank_offsets[r],
          static_cast<std::size_t>(rank_offsets[r + 1] - rank_offsets[r])};
}

}  // namespace podsim
