// Programs cross from Python as a dict of numpy columns (podsim.program.Program's fields).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "common.hpp"

namespace podsim::bindings {

Program make_program(const py::dict& c, bool consume) {
  Program p;
  // With `consume`, each column leaves the dict once copied: where the dict held the only
  // reference, its array is freed before the next one is copied (a large program then never
  // exists twice in full).
  auto take = [&]<class T>(std::vector<T>& target, const char* name) {
    target = column<T>(c[name], name);
    if (consume) c.attr("pop")(name);
  };
  take(p.rank, "rank");
  take(p.stream, "stream");
  take(p.kind, "kind");
  take(p.duration, "duration");
  take(p.bytes, "bytes");
  take(p.peer, "peer");
  take(p.collective, "collective");
  take(p.algorithm, "algorithm");
  take(p.repeat, "repeat");
  // Optional all-to-all shape columns: absent or None means every op takes the default.
  for (auto [name, target] :
       {std::pair{"message_bytes", &p.message_bytes}, std::pair{"fanout", &p.fanout}}) {
    if (c.contains(name) && !c[name].is_none()) take(*target, name);
  }
  take(p.dep_offsets, "dep_offsets");
  take(p.dep_ops, "dep_ops");
  take(p.group_offsets, "group_offsets");
  take(p.group_ranks, "group_ranks");
  return p;
}

}  // namespace podsim::bindings
