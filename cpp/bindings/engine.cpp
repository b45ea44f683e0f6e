// The event engine: a program and a topology in, per-op start and end times out.
#include "podsim/engine.hpp"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <utility>
#include <vector>

#include "common.hpp"
#include "register.hpp"

namespace py = pybind11;
using podsim::Engine;
using podsim::NetworkMode;
using podsim::Noise;
using podsim::Topology;
using podsim::bindings::enum_arg;
using podsim::bindings::make_program;
using podsim::bindings::to_numpy;

void register_engine(py::module_& m) {
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

  py::class_<Engine>(m, "Engine")
      .def(py::init([](const py::dict& columns, const Topology& topology, int mode,
                       const Noise& noise, bool symmetric) {
             auto program = make_program(columns);
             const auto network = enum_arg<NetworkMode>(mode, 2, "network mode");
             py::gil_scoped_release release;
             return Engine(std::move(program), topology, network, noise, symmetric);
           }),
           py::arg("columns"), py::arg("topology"), py::arg("mode"), py::arg("noise") = Noise{},
           py::arg("symmetric") = false)
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
}
