#include "program_index.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <tuple>
#include <unordered_map>

#include "podsim/errors.hpp"
#include "podsim/interrupt.hpp"

namespace podsim {
namespace {

[[noreturn]] void fail(std::int64_t op, const std::string& what) {
  throw ProgramError("op " + std::to_string(op) + ": " + what);
}

// A double as %g writes it (-1e+300, not 300 digits).
std::string short_number(double x) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", x);
  return text;
}

std::uint64_t pair_key(std::int64_t a, std::int64_t b) {
  return (static_cast<std::uint64_t>(a) << 32) | static_cast<std::uint32_t>(b);
}

template <class T>
void require_size(const std::vector<T>& column, std::size_t n, const char* name) {
  if (column.size() != n) {
    throw ProgramError(std::string("program.") + name + " has " + std::to_string(column.size()) +
                       " entries; expected " + std::to_string(n));
  }
}

void check_offsets(const std::vector<std::int64_t>& offsets, std::size_t rows, std::size_t values,
                   const char* name) {
  require_size(offsets, rows + 1, name);
  if (offsets.front() != 0 || static_cast<std::size_t>(offsets.back()) != values) {
    throw ProgramError(std::string("program.") + name + " must start at 0 and end at " +
                       std::to_string(values));
  }
  for (std::size_t i = 0; i < rows; ++i) {
    if (offsets[i + 1] < offsets[i]) {
      throw ProgramError(std::string("program.") + name + " must not decrease (at " +
                         std::to_string(i) + ")");
    }
  }
}

void check_columns(const Program& p) {
  const std::size_t n = p.num_ops();
  // Ops are numbered in int32 (deps, and the engine's dependents lists).
  if (n > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) {
    throw ProgramError("program has " + std::to_string(n) + " ops; at most 2147483647");
  }
  require_size(p.stream, n, "stream");
  require_size(p.kind, n, "kind");
  require_size(p.duration, n, "duration");
  require_size(p.bytes, n, "bytes");
  require_size(p.peer, n, "peer");
  require_size(p.collective, n, "collective");
  require_size(p.algorithm, n, "algorithm");
  require_size(p.repeat, n, "repeat");
  if (!p.message_bytes.empty()) require_size(p.message_bytes, n, "message_bytes");
  if (!p.fanout.empty()) require_size(p.fanout, n, "fanout");
  check_offsets(p.dep_offsets, n, p.dep_ops.size(), "dep_offsets");
  if (p.group_offsets.empty()) throw ProgramError("program.group_offsets must hold at least [0]");
  check_offsets(p.group_offsets, p.num_groups(), p.group_ranks.size(), "group_offsets");
}

// Group membership: key (group, rank) -> how many collectives the rank has run on it so far.
std::unordered_map<std::uint64_t, std::int32_t> check_groups(const Program& p, const Topology& t) {
  std::unordered_map<std::uint64_t, std::int32_t> members;
  for (std::size_t g = 0; g < p.num_groups(); ++g) {
    if (p.group_offsets[g + 1] == p.group_offsets[g]) {
      throw ProgramError("group " + std::to_string(g) + " has no members");
    }
    for (std::int64_t i = p.group_offsets[g]; i < p.group_offsets[g + 1]; ++i) {
      const std::int32_t r = p.group_ranks[i];
      if (r < 0 || r >= t.devices) {
        throw ProgramError("group " + std::to_string(g) + " has rank " + std::to_string(r) +
                           ", outside [0, " + std::to_string(t.devices) + ")");
      }
      if (!members.emplace(pair_key(static_cast<std::int64_t>(g), r), 0).second) {
        throw ProgramError("group " + std::to_string(g) + " lists rank " + std::to_string(r) +
                           " twice");
      }
    }
  }
  return members;
}

void check_op(const Program& p, const Topology& t, std::size_t i) {
  const auto op = static_cast<std::int64_t>(i);
  if (p.rank[i] < 0 || p.rank[i] >= t.devices) {
    fail(op, "rank = " + std::to_string(p.rank[i]) + " is outside [0, " +
                 std::to_string(t.devices) + ")");
  }
  if (p.stream[i] < 0 || p.stream[i] >= kMaxStreams) {
    fail(op, "stream = " + std::to_string(p.stream[i]) + " is outside [0, 64)");
  }
  if (p.kind[i] < 0 || p.kind[i] > static_cast<std::int8_t>(Kind::Wait)) {
    fail(op, "kind = " + std::to_string(p.kind[i]) + " is not a known op kind (0..4)");
  }
  const auto kind = static_cast<Kind>(p.kind[i]);
  if (kind == Kind::Compute && !(std::isfinite(p.duration[i]) && p.duration[i] >= 0)) {
    fail(op, "duration = " + short_number(p.duration[i]) + " s must be finite and >= 0");
  }
  if (kind != Kind::Compute && p.duration[i] != 0.0) {  // NaN included
    fail(op, "duration = " + short_number(p.duration[i]) + " s is not allowed: a " +
                 to_string(kind) + " op has no duration (0); only compute ops take time");
  }
  const bool comm = kind == Kind::Collective || kind == Kind::Send || kind == Kind::Recv;
  if (comm && !(std::isfinite(p.bytes[i]) && p.bytes[i] > 0)) {
    fail(op, "bytes = " + std::to_string(p.bytes[i]) + " must be finite and > 0");
  }
  const std::int32_t most = kind == Kind::Collective ? kMaxRepeat : 1;
  if (p.repeat[i] < 1 || p.repeat[i] > most) {
    fail(op, "repeat = " + std::to_string(p.repeat[i]) + " must be in [1, " + std::to_string(most) +
                 "]" + (most == 1 ? " (only collectives repeat)" : ""));
  }
  if (kind == Kind::Collective) {
    if (p.peer[i] < 0 || static_cast<std::size_t>(p.peer[i]) >= p.num_groups()) {
      fail(op, "group = " + std::to_string(p.peer[i]) + " is outside [0, " +
                   std::to_string(p.num_groups()) + ")");
    }
    if (p.collective[i] < 0 || p.collective[i] >= kCollectiveOps) {
      fail(op, "collective = " + std::to_string(p.collective[i]) + " is not known (0..5)");
    }
    if (p.algorithm[i] < 0 || p.algorithm[i] >= kAlgorithms) {
      fail(op, "algorithm = " + std::to_string(p.algorithm[i]) + " is not known (0..7)");
    }
  }
  if (!p.message_bytes.empty() && !(std::isfinite(p.message_bytes[i]) && p.message_bytes[i] >= 0 &&
                                    p.message_bytes[i] < 1e300)) {
    fail(op, "message_bytes = " + short_number(p.message_bytes[i]) +
                 " must be finite and >= 0 (0: one message per peer)");
  }
  if (!p.fanout.empty() && !(std::isfinite(p.fanout[i]) && p.fanout[i] >= 1)) {
    fail(op, "fanout = " + short_number(p.fanout[i]) + " must be finite and >= 1");
  }
  if ((kind == Kind::Send || kind == Kind::Recv) && p.collective[i] < -1) {
    fail(op, "tag = " + std::to_string(p.collective[i]) + " must be in [-1, 127]");
  }
  if ((kind == Kind::Send || kind == Kind::Recv) &&
      (p.peer[i] < 0 || p.peer[i] >= t.devices || p.peer[i] == p.rank[i])) {
    fail(op, "peer = " + std::to_string(p.peer[i]) + " must be another rank in [0, " +
                 std::to_string(t.devices) + ")");
  }
}

// Deps (same rank, earlier op) and stream order, as a dependents CSR.
void link_dependencies(const Program& p, ProgramIndex& index) {
  const std::size_t n = p.num_ops();
  std::vector<std::int64_t> successor(n, -1);
  std::int32_t streams = 1, ranks = 1;
  for (std::int32_t s : p.stream) streams = std::max(streams, s + 1);
  for (std::int32_t r : p.rank) ranks = std::max(ranks, r + 1);
  // The last op seen on each (rank, stream): a flat table over the ranks the program uses when
  // the program fills enough of it, else a hash map, so memory stays proportional to the
  // program (one op on rank 2^24 - 1, stream 63 must not allocate a 2^30-entry table).
  const std::size_t cells = static_cast<std::size_t>(ranks) * static_cast<std::size_t>(streams);
  const bool flat = cells <= 4 * n + 4096;
  std::vector<std::int64_t> last_on_stream(flat ? cells : 0, -1);
  std::unordered_map<std::size_t, std::int64_t> last_on_sparse;
  if (!flat) last_on_sparse.reserve(n);
  index.initial_pending.assign(n, 0);
  std::vector<std::int64_t> count(n + 1, 0);
  for (std::size_t i = 0; i < n; ++i) {
    const auto op = static_cast<std::int64_t>(i);
    for (std::int64_t d = p.dep_offsets[i]; d < p.dep_offsets[i + 1]; ++d) {
      const std::int32_t dep = p.dep_ops[d];
      if (dep < 0 || dep >= op || p.rank[dep] != p.rank[i]) {
        fail(op, "dep " + std::to_string(dep) + " must be an earlier op of the same rank");
      }
      ++index.initial_pending[i];
      ++count[dep + 1];
    }
    const std::size_t cell = static_cast<std::size_t>(p.rank[i]) * streams + p.stream[i];
    std::int64_t& last =
        flat ? last_on_stream[cell] : last_on_sparse.try_emplace(cell, -1).first->second;
    if (last >= 0) {
      successor[last] = op;
      ++count[last + 1];
      ++index.initial_pending[i];
    }
    last = op;
  }
  for (std::size_t i = 0; i < n; ++i) count[i + 1] += count[i];
  index.dependent_offsets = count;
  index.dependent_ops.assign(static_cast<std::size_t>(count[n]), 0);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::int64_t d = p.dep_offsets[i]; d < p.dep_offsets[i + 1]; ++d) {
      index.dependent_ops[count[p.dep_ops[d]]++] = static_cast<std::int32_t>(i);
    }
    if (successor[i] >= 0)
      index.dependent_ops[count[i]++] = static_cast<std::int32_t>(successor[i]);
  }
}

// The k-th collective of a rank on group g joins instance (g, k); members must agree.
void match_collectives(const Program& p, const Topology& t, ProgramIndex& index) {
  auto seen = check_groups(p, t);
  std::unordered_map<std::uint64_t, std::int32_t> instance_id;
  std::vector<std::int64_t> first_op;
  std::vector<std::int64_t> count;
  index.instance_of.assign(p.num_ops(), -1);
  for (std::size_t i = 0; i < p.num_ops(); ++i) {
    if (p.kind[i] != static_cast<std::int8_t>(Kind::Collective)) continue;
    const auto op = static_cast<std::int64_t>(i);
    auto member = seen.find(pair_key(p.peer[i], p.rank[i]));
    if (member == seen.end()) {
      fail(op, "rank " + std::to_string(p.rank[i]) + " is not a member of group " +
                   std::to_string(p.peer[i]));
    }
    const std::int32_t k = member->second++;
    auto [it, added] =
        instance_id.try_emplace(pair_key(p.peer[i], k), static_cast<std::int32_t>(first_op.size()));
    if (added) {
      first_op.push_back(op);
      count.push_back(0);
      index.instance_groups.push_back(p.peer[i]);
    }
    const std::int64_t first = first_op[it->second];
    const auto same = [&](const std::vector<double>& column) {
      return column.empty() || column[i] == column[first];
    };
    if (p.collective[i] != p.collective[first] || p.bytes[i] != p.bytes[first] ||
        p.algorithm[i] != p.algorithm[first] || p.repeat[i] != p.repeat[first] ||
        !same(p.message_bytes) || !same(p.fanout)) {
      fail(op, "collective #" + std::to_string(k) + " on group " + std::to_string(p.peer[i]) +
                   " does not match op " + std::to_string(first) +
                   " of another member (collective, bytes, algorithm, repeat, message_bytes and "
                   "fanout must agree)");
    }
    index.instance_of[i] = it->second;
    ++count[it->second];
  }
  index.instance_offsets.assign(count.size() + 1, 0);
  for (std::size_t k = 0; k < count.size(); ++k) {
    index.instance_offsets[k + 1] = index.instance_offsets[k] + count[k];
  }
  index.instance_members.assign(static_cast<std::size_t>(index.instance_offsets.back()), 0);
  std::vector<std::int64_t> fill(index.instance_offsets.begin(), index.instance_offsets.end() - 1);
  for (std::size_t i = 0; i < p.num_ops(); ++i) {
    if (index.instance_of[i] >= 0)
      index.instance_members[fill[index.instance_of[i]]++] = static_cast<std::int64_t>(i);
  }
}

// The k-th send from a to b matches the k-th recv on b from a.
// The k-th send from a to b with tag t matches the k-th recv on b from a with tag t (for sends
// and receives the `collective` column holds the tag; -1 is untagged): sort both sides by
// channel, then by op index, and pair them in order.
void match_transfers(const Program& p, ProgramIndex& index) {
  struct End {
    std::int32_t src, dst;
    std::int8_t tag;
    std::int64_t op;
    bool operator<(const End& o) const {
      return std::tie(src, dst, tag, op) < std::tie(o.src, o.dst, o.tag, o.op);
    }
    bool same_channel(const End& o) const { return src == o.src && dst == o.dst && tag == o.tag; }
  };
  std::vector<End> sends, recvs;
  for (std::size_t i = 0; i < p.num_ops(); ++i) {
    const auto kind = static_cast<Kind>(p.kind[i]);
    const auto op = static_cast<std::int64_t>(i);
    if (kind == Kind::Send) sends.push_back({p.rank[i], p.peer[i], p.collective[i], op});
    if (kind == Kind::Recv) recvs.push_back({p.peer[i], p.rank[i], p.collective[i], op});
  }
  std::sort(sends.begin(), sends.end());
  std::sort(recvs.begin(), recvs.end());
  index.partner.assign(p.num_ops(), -1);
  std::size_t a = 0, b = 0;
  while (a < sends.size() && b < recvs.size()) {
    if (!sends[a].same_channel(recvs[b])) {
      (sends[a] < recvs[b] ? a : b) += 1;  // a channel with only one side: no partner
      continue;
    }
    const std::int64_t send = sends[a++].op, recv = recvs[b++].op;
    if (p.bytes[send] != p.bytes[recv]) {
      fail(recv, "receives " + std::to_string(p.bytes[recv]) + " bytes but its send (op " +
                     std::to_string(send) + ") sends " + std::to_string(p.bytes[send]));
    }
    index.partner[send] = recv;
    index.partner[recv] = send;
  }
}

}  // namespace

ProgramIndex index_program(const Program& program, const Topology& topology) {
  check_columns(program);
  for (std::size_t i = 0; i < program.num_ops(); ++i) {
    if (i % (1 << 20) == 0) check_interrupt();
    check_op(program, topology, i);
  }
  ProgramIndex index;
  check_interrupt();
  link_dependencies(program, index);
  check_interrupt();
  match_collectives(program, topology, index);
  check_interrupt();
  match_transfers(program, index);
  check_interrupt();
  return index;
}

std::vector<std::int64_t> locality_order(const Program& p) {
  const std::size_t n = p.num_ops();
  std::int32_t ranks = 1;
  for (std::int32_t r : p.rank) ranks = std::max(ranks, r + 1);
  // The position of each op among its rank's ops, then a counting sort by it (stable).
  std::vector<std::int64_t> seen(static_cast<std::size_t>(ranks), 0);
  std::vector<std::int64_t> position(n);
  std::int64_t longest = 0;
  for (std::size_t i = 0; i < n; ++i) {
    position[i] = seen[static_cast<std::size_t>(p.rank[i])]++;
    longest = std::max(longest, position[i] + 1);
  }
  std::vector<std::int64_t> start(static_cast<std::size_t>(longest) + 1, 0);
  for (std::int64_t k : position) ++start[static_cast<std::size_t>(k) + 1];
  for (std::size_t k = 0; k + 1 < start.size(); ++k) start[k + 1] += start[k];
  std::vector<std::int64_t> order(n);
  for (std::size_t i = 0; i < n; ++i) {
    order[static_cast<std::size_t>(start[static_cast<std::size_t>(position[i])]++)] =
        static_cast<std::int64_t>(i);
  }
  return order;
}

namespace {

std::vector<std::int64_t> inverse(const std::vector<std::int64_t>& to_original) {
  std::vector<std::int64_t> to_internal(to_original.size());
  for (std::size_t x = 0; x < to_original.size(); ++x) {
    to_internal[static_cast<std::size_t>(to_original[x])] = static_cast<std::int64_t>(x);
  }
  return to_internal;
}

}  // namespace

ProgramIndex permute(const ProgramIndex& index, const std::vector<std::int64_t>& to_original) {
  const std::vector<std::int64_t> to_internal = inverse(to_original);
  const auto rename = [&](std::int64_t op) {
    return op < 0 ? op : to_internal[static_cast<std::size_t>(op)];
  };
  const std::size_t n = to_original.size();
  ProgramIndex out;
  out.initial_pending = gather(index.initial_pending, to_original);
  out.instance_of = gather(index.instance_of, to_original);
  out.partner = gather(index.partner, to_original);
  for (std::int64_t& op : out.partner) op = rename(op);
  // Dependents, scattered in program order: each op's list is read in place and its entries
  // (ops of the same rank, close by in program order) renamed with nearby reads, where reading
  // the lists in internal order would jump across the program for each op.
  out.dependent_offsets.assign(n + 1, 0);
  for (std::size_t i = 0; i < n; ++i) {
    out.dependent_offsets[static_cast<std::size_t>(to_internal[i]) + 1] =
        index.dependent_offsets[i + 1] - index.dependent_offsets[i];
  }
  for (std::size_t x = 0; x < n; ++x) out.dependent_offsets[x + 1] += out.dependent_offsets[x];
  out.dependent_ops.resize(index.dependent_ops.size());
  for (std::size_t i = 0; i < n; ++i) {
    auto at =
        static_cast<std::size_t>(out.dependent_offsets[static_cast<std::size_t>(to_internal[i])]);
    for (std::int64_t next : index.dependents(static_cast<std::int64_t>(i))) {
      out.dependent_ops[at++] = static_cast<std::int32_t>(rename(next));
    }
  }
  out.instance_groups = index.instance_groups;
  out.instance_offsets = index.instance_offsets;
  out.instance_members = index.instance_members;
  for (std::int64_t& op : out.instance_members) op = rename(op);
  return out;
}

std::string describe_deadlock(const Program& p, const ProgramIndex& index,
                              const std::vector<std::int32_t>& pending,
                              const std::vector<char>& ready, const std::vector<double>& end) {
  for (std::size_t i = 0; i < p.num_ops(); ++i) {
    if (!ready[i] || !std::isnan(end[i])) continue;
    std::string what = "deadlock: op " + std::to_string(i) + " (" +
                       to_string(static_cast<Kind>(p.kind[i])) + " on rank " +
                       std::to_string(p.rank[i]) + ") ";
    if (p.kind[i] == static_cast<std::int8_t>(Kind::Collective)) {
      const std::int32_t instance = index.instance_of[i];
      std::size_t arrived = 0;
      for (std::int64_t op : index.instance_ops(instance)) arrived += ready[op] ? 1 : 0;
      const std::int32_t g = p.peer[i];
      const auto size = p.group_offsets[g + 1] - p.group_offsets[g];
      return what + "waits in a collective on group " + std::to_string(g) + ": " +
             std::to_string(arrived) + " of " + std::to_string(size) +
             " members reached it; the others never do";
    }
    const std::int64_t partner = index.partner[i];
    const bool send = p.kind[i] == static_cast<std::int8_t>(Kind::Send);
    if (partner < 0) {
      return what + "has no matching " + (send ? "recv on rank " : "send from rank ") +
             std::to_string(p.peer[i]);
    }
    return what + "waits for op " + std::to_string(partner) + " on rank " +
           std::to_string(p.peer[i]) + ", which never becomes ready";
  }
  for (std::size_t i = 0; i < p.num_ops(); ++i) {
    if (std::isnan(end[i])) {
      return "deadlock: op " + std::to_string(i) + " never became ready (" +
             std::to_string(pending[i]) + " predecessors unfinished)";
    }
  }
  return "deadlock";
}

}  // namespace podsim
