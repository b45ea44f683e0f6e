// The event engine: a program and a topology in, per-op start and end times out.
#include "podsim/engine.hpp"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <type_traits>
#include <utility>
#include <vector>

#include "common.hpp"
#include "podsim/interrupt.hpp"
#include "register.hpp"

namespace py = pybind11;
using podsim::Engine;
using podsim::NetworkMode;
using podsim::Noise;
using podsim::Topology;
using podsim::bindings::enum_arg;
using podsim::bindings::make_program;
using podsim::bindings::to_numpy;

namespace {

// Polled during set-up with the GIL released: a pending signal (Ctrl-C) raises its exception.
void check_signals() {
  const py::gil_scoped_acquire gil;
  if (PyErr_CheckSignals() != 0) throw py::error_already_set();
}

// What a symmetric program's groups and ranks stand for: a dict of the four CSR columns of
// podsim::Copies by name, any of them left out (None: no copies).
podsim::Copies make_copies(const py::object& columns) {
  podsim::Copies copies;
  if (columns.is_none()) return copies;
  const auto c = columns.cast<py::dict>();
  const auto take = [&](const char* name, auto& target) {
    using T = typename std::decay_t<decltype(target)>::value_type;
    if (c.contains(name)) target = podsim::bindings::column<T>(c[name], name, "copies.");
  };
  take("group_offsets", copies.group_offsets);
  take("group_ranks", copies.group_ranks);
  take("rank_offsets", copies.rank_offsets);
  take("ranks", copies.ranks);
  return copies;
}

}  // namespace

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
                       const Noise& noise, bool symmetric, const py::object& copy_columns,
                       bool consume, bool record) {
             auto program = make_program(columns, consume);
             auto copies = make_copies(copy_columns);
             const auto network = enum_arg<NetworkMode>(mode, 2, "network mode");
             py::gil_scoped_release release;
             // Indexing millions of ops takes seconds: let Ctrl-C stop it.
             const podsim::InterruptScope interrupt(&check_signals);
             return Engine(std::move(program), topology, network, noise, symmetric,
                           std::move(copies), record);
           }),
           py::arg("columns"), py::arg("topology"), py::arg("mode"), py::arg("noise") = Noise{},
           py::arg("symmetric") = false, py::arg("copies") = py::none(), py::arg("consume") = false,
           py::arg("record") = true)
      .def("restart", &Engine::restart, py::arg("iteration"),
           py::call_guard<py::gil_scoped_release>(),
           "Run the step again as iteration `iteration` (fresh noise draws).")
      .def("advance", &Engine::advance, py::arg("max_events"),
           py::call_guard<py::gil_scoped_release>(),
           "Process up to max_events events; True once the run is complete.")
      .def("replicate", &Engine::replicate, py::arg("noise"),
           py::call_guard<py::gil_scoped_release>(),
           "After a complete symmetric analytical run with copies: prepare runs of every rank "
           "with `noise` (docs/engine.md, \"Replicated runs\").")
      .def("replicated_makespans", &Engine::replicated_makespans, py::arg("first"),
           py::arg("count"), py::arg("threads") = 1, py::call_guard<py::gil_scoped_release>(),
           "Makespans of steps first .. first + count - 1 of every rank, on `threads` threads.")
      .def(
          "replicated_times",
          [](const Engine& e, std::uint64_t iteration) {
            const auto n = static_cast<py::ssize_t>(e.replicated_ops());
            py::array_t<double> start(n), end(n);
            double* s = start.mutable_data();
            double* t = end.mutable_data();
            double makespan = 0.0;
            {
              py::gil_scoped_release release;
              makespan = e.replicated_times(iteration, s, t);
            }
            return py::make_tuple(start, end, makespan);
          },
          py::arg("iteration"),
          "(start, end, makespan) of step `iteration` of every rank, in the every-rank program's "
          "op order.")
      .def_property_readonly("replicated_ops", &Engine::replicated_ops)
      .def_property_readonly("done", &Engine::done)
      .def_property_readonly("swept", &Engine::swept)
      .def_property_readonly("start", [](const Engine& e) { return to_numpy(e.start()); })
      .def_property_readonly("end", [](const Engine& e) { return to_numpy(e.end()); })
      .def_property_readonly("resolved_algorithm",
                             [](const Engine& e) { return to_numpy(e.resolved_algorithm()); })
      .def_property_readonly("events_processed", &Engine::events_processed)
      .def_property_readonly("makespan", &Engine::makespan)
      .def_property_readonly("symmetry_note", &Engine::symmetry_note);
}
