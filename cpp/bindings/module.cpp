// podsim._core: a thin layer over the engine. The only file that includes pybind11.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "podsim/collectives.hpp"
#include "podsim/engine.hpp"
#include "podsim/errors.hpp"
#include "podsim/random.hpp"
#include "register.hpp"

namespace py = pybind11;
using namespace podsim;

namespace {

void raise(const char* name, const char* message) {
  const py::object cls = py::module_::import("podsim.errors").attr(name);
  PyErr_SetString(cls.ptr(), message);
}

// Copies a 1-D numpy column of exactly dtype T; anything else is a ProgramError naming it.
template <class T>
std::vector<T> column(const py::array& array, const char* name) {
  if (!array.dtype().is(py::dtype::of<T>()) || array.ndim() != 1) {
    throw ProgramError(std::string("program.") + name + " must be a 1-D array of " +
                       std::string(py::str(py::dtype::of<T>())) + ", got " +
                       std::string(py::str(array.dtype())) + " with " +
                       std::to_string(array.ndim()) + " dimension(s)");
  }
  const auto typed = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(array);
  return {typed.data(), typed.data() + typed.size()};
}

template <class T>
py::array_t<T> to_numpy(const std::vector<T>& values) {
  return py::array_t<T>(static_cast<py::ssize_t>(values.size()), values.data());
}

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
  p.dep_offsets = column<std::int64_t>(c["dep_offsets"], "dep_offsets");
  p.dep_ops = column<std::int32_t>(c["dep_ops"], "dep_ops");
  p.group_offsets = column<std::int64_t>(c["group_offsets"], "group_offsets");
  p.group_ranks = column<std::int32_t>(c["group_ranks"], "group_ranks");
  return p;
}

template <class E>
E enum_arg(int value, int count, const char* name) {
  if (value < 0 || value >= count) {
    throw SpecError(std::string(name) + " = " + std::to_string(value) + " is outside [0, " +
                    std::to_string(count) + ")");
  }
  return static_cast<E>(value);
}

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

CollectiveArgs collective_args(const Topology& topology, int op, int algorithm,
                               const py::array& ranks, double bytes) {
  topology.validate();
  auto members = members_of(ranks, topology);
  check_bytes(bytes);
  const auto c = enum_arg<CollectiveOp>(op, kCollectiveOps, "op");
  const auto requested = enum_arg<Algorithm>(algorithm, kAlgorithms, "algorithm");
  const auto a = resolve_algorithm(topology, c, requested, members, bytes);
  return {std::move(members), c, a};
}

py::tuple collective_time_py(const Topology& topology, int op, int algorithm,
                             const py::array& ranks, double bytes) {
  const auto args = collective_args(topology, op, algorithm, ranks, bytes);
  return py::make_tuple(static_cast<int>(args.algorithm),
                        collective_time(topology, args.op, args.algorithm, args.members, bytes));
}

py::list collective_phases_py(const Topology& topology, int op, int algorithm,
                              const py::array& ranks, double bytes) {
  const auto args = collective_args(topology, op, algorithm, ranks, bytes);
  py::list out;
  for (const Phase& phase :
       collective_phases(topology, args.op, args.algorithm, args.members, bytes)) {
    py::list flows;
    for (const Flow& f : phase.flows) {  // merged flows listed one by one, as specified
      for (std::int32_t i = 0; i < f.count; ++i)
        flows.append(py::make_tuple(f.src, f.dst, f.bytes));
    }
    out.append(py::make_tuple(phase.latency, flows));
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "podsim's C++ engine (private: use the podsim package)";

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const SpecError& e) {
      raise("SpecError", e.what());
    } catch (const ProgramError& e) {
      raise("ProgramError", e.what());
    } catch (const DeadlockError& e) {
      raise("DeadlockError", e.what());
    }
  });

  py::class_<Topology>(m, "Topology")
      .def(py::init([](std::int64_t devices, std::int64_t domain_size, std::int64_t pod_size,
                       double su_bw, double su_lat, double so_bw, double so_lat, double oversub,
                       double launch) {
             Topology t{devices, domain_size, pod_size, su_bw, su_lat,
                        so_bw,   so_lat,      oversub,  launch};
             t.validate();
             return t;
           }),
           py::arg("devices"), py::arg("domain_size"), py::arg("pod_size"),
           py::arg("scale_up_bandwidth"), py::arg("scale_up_latency"),
           py::arg("scale_out_bandwidth"), py::arg("scale_out_latency"),
           py::arg("oversubscription"), py::arg("launch_latency"))
      .def_readonly("devices", &Topology::devices)
      .def_readonly("domain_size", &Topology::domain_size)
      .def_readonly("pod_size", &Topology::pod_size);

  py::class_<Noise>(m, "Noise")
      .def(py::init([](std::uint64_t seed, double compute_cv, double latency_sigma,
                       double straggler_fraction, std::vector<std::int32_t> straggler_ranks,
                       double straggler_slowdown, double straggler_probability) {
             return Noise{seed,
                          compute_cv,
                          latency_sigma,
                          straggler_fraction,
                          std::move(straggler_ranks),
                          straggler_slowdown,
                          straggler_probability};
           }),
           py::arg("seed") = 0, py::arg("compute_cv") = 0.0, py::arg("latency_sigma") = 0.0,
           py::arg("straggler_fraction") = 0.0,
           py::arg("straggler_ranks") = std::vector<std::int32_t>{},
           py::arg("straggler_slowdown") = 1.0, py::arg("straggler_probability") = 1.0);

  m.def("max_of_normals", &random::max_of_normals, py::arg("n"), py::arg("u"),
        "The largest of n standard normals at probability u (order statistic).");
  m.def("normal_quantile", &random::normal_quantile, py::arg("p"));

  py::class_<Engine>(m, "Engine")
      .def(py::init(
               [](const py::dict& columns, const Topology& topology, int mode, const Noise& noise) {
                 auto program = make_program(columns);
                 const auto network = enum_arg<NetworkMode>(mode, 2, "network mode");
                 py::gil_scoped_release release;
                 return Engine(std::move(program), topology, network, noise);
               }),
           py::arg("columns"), py::arg("topology"), py::arg("mode"), py::arg("noise") = Noise{})
      .def("restart", &Engine::restart, py::arg("iteration"),
           py::call_guard<py::gil_scoped_release>(),
           "Run the step again as iteration `iteration` (fresh noise draws).")
      .def("advance", &Engine::advance, py::arg("max_events"),
           py::call_guard<py::gil_scoped_release>(),
           "Process up to max_events events; True once the run is complete.")
      .def_property_readonly("done", &Engine::done)
      .def_property_readonly("start", [](const Engine& e) { return to_numpy(e.start()); })
      .def_property_readonly("end", [](const Engine& e) { return to_numpy(e.end()); })
      .def_property_readonly("resolved_algorithm",
                             [](const Engine& e) { return to_numpy(e.resolved_algorithm()); })
      .def_property_readonly("events_processed", &Engine::events_processed)
      .def_property_readonly("makespan", &Engine::makespan);

  register_failures(m);

  m.def("collective_time", &collective_time_py, py::arg("topology"), py::arg("op"),
        py::arg("algorithm"), py::arg("ranks"), py::arg("bytes"),
        "(resolved algorithm, seconds) of one collective without contention.");
  m.def("collective_phases", &collective_phases_py, py::arg("topology"), py::arg("op"),
        py::arg("algorithm"), py::arg("ranks"), py::arg("bytes"),
        "The phases [(latency_s, [(src, dst, bytes), ...]), ...] of the contention network.");
}
