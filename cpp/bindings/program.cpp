// Programs cross from Python as a dict of numpy columns (podsim.program.Program's fields).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "common.hpp"

namespace podsim::bindings {

Program make_program(const py::dict& c) {
  Program p;
  p.rank = column<std::int32_t>(c["rank"], "rank");
  p.stream = column<std::int32_t>(c["stream"], "stream");
  p.kind = column<std::int8_t>(c["kind"], "kind");
  p.duration = column<double>(c["duration"], "duration");
  p.bytes = column<double>(c["bytes"], "bytes");
  p.peer = column<std::int32_t>(c["peer"], "peer");
  p.collective = column<std::int8_t>(c["collective"], "collective");
  p.algorithm = column<std::int8_t>(c["algorithm"], "algorithm");
  p.repeat = column<std::int32_t>(c["repeat"], "repeat");
  // Optional all-to-all shape columns: absent or None means every op takes the default.
  for (auto [name, target] :
       {std::pair{"message_bytes", &p.message_bytes}, std::pair{"fanout", &p.fanout}}) {
    if (c.contains(name) && !c[name].is_none()) *target = column<double>(c[name], name);
  }
  p.dep_offsets = column<std::int64_t>(c["dep_offsets"], "dep_offsets");
  p.dep_ops = column<std::int32_t>(c["dep_ops"], "dep_ops");
  p.group_offsets = column<std::int64_t>(c["group_offsets"], "group_offsets");
  p.group_ranks = column<std::int32_t>(c["group_ranks"], "group_ranks");
  return p;
}

}  // namespace podsim::bindings
