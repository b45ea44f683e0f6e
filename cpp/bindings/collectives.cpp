// Closed-form collective times and the phases the contention network runs, one collective at a
// time (for tests and tools).
#include "podsim/collectives.hpp"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <utility>
#include <vector>

#include "common.hpp"
#include "podsim/errors.hpp"
#include "register.hpp"

namespace py = pybind11;
using namespace podsim;
using podsim::bindings::column;
using podsim::bindings::enum_arg;

namespace {

std::vector<std::int32_t> members_of(const py::array& ranks, const Topology& topology) {
  auto members = column<std::int32_t>(ranks, "group_ranks");
  for (std::int32_t r : members) {
    if (r < 0 || r >= topology.devices) {
      throw ProgramError("group rank " + std::to_string(r) + " is outside [0, " +
                         std::to_string(topology.devices) + ")");
    }
  }
  return members;
}

void check_bytes(double bytes) {
  if (!(bytes > 0 && bytes < 1e300)) {
    throw ProgramError("bytes = " + std::to_string(bytes) + " must be finite and > 0");
  }
}

// One collective's arguments, checked, with the algorithm resolved (Auto -> the fastest).
struct CollectiveArgs {
  std::vector<std::int32_t> members;
  CollectiveOp op;
  Algorithm algorithm;
};

Shape shape_arg(double message_bytes, double fanout) {
  if (!(message_bytes >= 0 && message_bytes < 1e300)) {
    throw ProgramError("message_bytes = " + std::to_string(message_bytes) +
                       " must be finite and >= 0");
  }
  if (!(fanout >= 1 && fanout < 1e300)) {
    throw ProgramError("fanout = " + std::to_string(fanout) + " must be finite and >= 1");
  }
  return {message_bytes, fanout};
}

CollectiveArgs collective_args(const Topology& topology, int op, int algorithm,
                               const py::array& ranks, double bytes, Shape shape) {
  topology.validate();
  auto members = members_of(ranks, topology);
  check_bytes(bytes);
  const auto c = enum_arg<CollectiveOp>(op, kCollectiveOps, "op");
  const auto requested = enum_arg<Algorithm>(algorithm, kAlgorithms, "algorithm");
  const auto a = resolve_algorithm(topology, c, requested, members, bytes, shape);
  return {std::move(members), c, a};
}

py::tuple collective_time_py(const Topology& topology, int op, int algorithm,
                             const py::array& ranks, double bytes, double message_bytes,
                             double fanout) {
  const Shape shape = shape_arg(message_bytes, fanout);
  const auto args = collective_args(topology, op, algorithm, ranks, bytes, shape);
  return py::make_tuple(
      static_cast<int>(args.algorithm),
      analytical_time(topology, args.op, args.algorithm, args.members, bytes, shape));
}

// The protocol depends on no all-to-all shape: only rings of the other collectives run one.
int collective_protocol_py(const Topology& topology, int op, int algorithm, const py::array& ranks,
                           double bytes) {
  const auto args = collective_args(topology, op, algorithm, ranks, bytes, {});
  return static_cast<int>(resolve_protocol(topology, args.op, args.algorithm, args.members, bytes));
}

py::list collective_phases_py(const Topology& topology, int op, int algorithm,
                              const py::array& ranks, double bytes, double message_bytes,
                              double fanout) {
  const Shape shape = shape_arg(message_bytes, fanout);
  const auto args = collective_args(topology, op, algorithm, ranks, bytes, shape);
  py::list out;
  for (const Phase& phase :
       collective_phases(topology, args.op, args.algorithm, args.members, bytes, shape)) {
    py::list flows;
    for (const Flow& f : phase.flows) {  // merged flows listed one by one, as specified
      for (std::int32_t i = 0; i < f.count; ++i)
        flows.append(py::make_tuple(f.src, f.dst, f.bytes));
    }
    for (const FlowBlock& b : phase.blocks) {  // and blocks pair by pair
      for (std::int32_t src : b.srcs) {
        for (std::int32_t dst : b.dsts) {
          if (block_pair(topology, b.exclude, src, dst))
            flows.append(py::make_tuple(src, dst, b.bytes));
        }
      }
    }
    out.append(py::make_tuple(phase.latency, flows));
  }
  return out;
}

}  // namespace

void register_collectives(py::module_& m) {
  m.def("collective_time", &collective_time_py, py::arg("topology"), py::arg("op"),
        py::arg("algorithm"), py::arg("ranks"), py::arg("bytes"), py::arg("message_bytes") = 0.0,
        py::arg("fanout") = 1.0,
        "(resolved algorithm, seconds) of one collective without contention.");
  m.def("collective_protocol", &collective_protocol_py, py::arg("topology"), py::arg("op"),
        py::arg("algorithm"), py::arg("ranks"), py::arg("bytes"),
        "The protocol (0 auto, 1 ll, 2 ll128, 3 simple) the collective runs: never 0.");
  m.def("collective_phases", &collective_phases_py, py::arg("topology"), py::arg("op"),
        py::arg("algorithm"), py::arg("ranks"), py::arg("bytes"), py::arg("message_bytes") = 0.0,
        py::arg("fanout") = 1.0,
        "The phases [(latency_s, [(src, dst, bytes), ...]), ...] of the contention network.");
}
