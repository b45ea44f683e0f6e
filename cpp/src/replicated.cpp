#include "replicated.hpp"

#include <algorithm>

namespace podsim {

double ReplicatedPlan::step(std::uint64_t iteration, std::vector<double>& ready,
                            std::vector<double>& ends, double* start, double* end) const {
  ready.assign(static_cast<std::size_t>(cells), 0.0);
  ends.resize(static_cast<std::size_t>(most_copies));
  double makespan = 0.0;
  const auto op_of = [&](std::size_t p, std::size_t c) {
    return static_cast<std::size_t>(first_op[p] + static_cast<std::int64_t>(c) * op_stride[p]);
  };
  // Every copy c of position p ends at ends[c]: the same copy of each dependent is ready no
  // earlier.
  const auto release = [&](std::size_t p) {
    const auto n = static_cast<std::size_t>(copies[p]);
    for (std::size_t c = 0; c < n; ++c) makespan = std::max(makespan, ends[c]);
    if (end != nullptr) {
      for (std::size_t c = 0; c < n; ++c) end[op_of(p, c)] = ends[c];
    }
    for (std::int64_t k = dependent_offsets[p]; k < dependent_offsets[p + 1]; ++k) {
      double* next = ready.data() + cell[static_cast<std::size_t>(dependents[k])];
      for (std::size_t c = 0; c < n; ++c) next[c] = std::max(next[c], ends[c]);
    }
  };
  const auto started = [&](std::size_t p, std::size_t c, double t) {
    if (start != nullptr) start[op_of(p, c)] = t;
  };
  for (const Item& item : items) {
    const auto p = static_cast<std::size_t>(item.position);
    const auto n = static_cast<std::size_t>(copies[p]);
    const double* at = ready.data() + cell[p];
    switch (item.kind) {
      case ItemKind::Op: {
        const std::int32_t* rank = copy_ranks.data() + ranks[p];
        for (std::size_t c = 0; c < n; ++c) {
          ends[c] = at[c] + draws.compute_time(duration[p], op_of(p, c), rank[c], iteration);
          started(p, c, at[c]);
        }
        release(p);
        break;
      }
      case ItemKind::Instance: {
        const Instance& in = instances[static_cast<std::size_t>(item.detail)];
        const auto size = static_cast<std::size_t>(in.group_size);
        for (std::size_t g = 0; g < n / size; ++g) {
          const std::int32_t* member = member_copies.data() + in.members + g * size;
          double t = at[member[0]];
          for (std::size_t j = 1; j < size; ++j) t = std::max(t, at[member[j]]);
          const auto id = static_cast<std::uint64_t>(instance_ids[in.ids + g]);
          const double done =
              t + draws.instance_time(in.time, in.latency, in.repeat,
                                      static_cast<double>(in.group_size), id, iteration);
          for (std::size_t j = 0; j < size; ++j) {
            ends[member[j]] = done;
            started(p, member[j], t);
          }
        }
        release(p);
        break;
      }
      case ItemKind::Transfer: {
        const Transfer& tr = transfers[static_cast<std::size_t>(item.detail)];
        const double* other = ready.data() + cell[p + 1];
        for (std::size_t c = 0; c < n; ++c) {
          const double t = std::max(at[c], other[c]);
          const std::size_t path = tr.same ? 0 : c;
          ends[c] = draws.transfer_end(t, launch_latency, latency[tr.paths + path],
                                       bandwidth_term[tr.paths + path], op_of(p, c), iteration);
          started(p, c, t);
          started(p + 1, c, t);
        }
        release(p);
        release(p + 1);
        break;
      }
    }
  }
  return makespan;
}

}  // namespace podsim
