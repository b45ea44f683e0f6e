// The long-run failure Monte Carlo: numpy arrays in, numpy arrays out.
#include "podsim/failures.hpp"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <string>
#include <vector>

#include "common.hpp"
#include "podsim/errors.hpp"
#include "register.hpp"

namespace py = pybind11;
using podsim::FailureModel;
using podsim::LongRuns;
using podsim::bindings::to_numpy;

namespace {

template <class T>
std::vector<T> vector_of(const py::array& array, const char* name) {
  if (array.ndim() != 1) {
    throw podsim::SpecError(std::string("failure model: ") + name + " must be a 1-D array");
  }
  const auto typed = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(array);
  if (!typed) throw podsim::SpecError(std::string("failure model: ") + name + " is not numeric");
  return {typed.data(), typed.data() + typed.size()};
}

py::dict long_runs(const py::array& class_rates_per_s, const py::array& class_spare_devices,
                   std::int64_t devices, std::int64_t links, double link_rate_per_s,
                   double useful_time_s, double max_wall_s, double checkpoint_interval_s,
                   double checkpoint_write_s, bool checkpoint_async, double checkpoint_snapshot_s,
                   double restart_s, std::int64_t spares, double replacement_s, std::uint64_t seed,
                   std::int64_t runs, int threads) {
  FailureModel m;
  m.devices = devices;
  m.links = links;
  m.class_rates_per_s = vector_of<double>(class_rates_per_s, "class_rates_per_s");
  m.class_spare_devices = vector_of<std::int64_t>(class_spare_devices, "class_spare_devices");
  m.link_rate_per_s = link_rate_per_s;
  m.useful_time_s = useful_time_s;
  m.max_wall_s = max_wall_s;
  m.checkpoint_interval_s = checkpoint_interval_s;
  m.checkpoint_write_s = checkpoint_write_s;
  m.checkpoint_async = checkpoint_async;
  m.checkpoint_snapshot_s = checkpoint_snapshot_s;
  m.restart_s = restart_s;
  m.spares = spares;
  m.replacement_s = replacement_s;
  m.seed = seed;
  m.runs = runs;
  m.validate();
  if (threads < 1) {
    throw podsim::SpecError("failure model: threads = " + std::to_string(threads) +
                            " is not allowed: an integer >= 1");
  }

  LongRuns out;
  out.resize(runs, static_cast<std::int64_t>(m.class_rates_per_s.size()));
  {
    // The GIL is released while the runs go on; the calling thread polls for Ctrl-C about
    // every 50 ms, even inside one long run, and a pending signal stops every worker.
    py::gil_scoped_release release;
    podsim::simulate_long_runs(m, 0, runs, threads, out, [] {
      py::gil_scoped_acquire gil;
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    });
  }

  const auto classes = static_cast<py::ssize_t>(m.class_rates_per_s.size()) + 1;
  py::array_t<std::int64_t> counts({static_cast<py::ssize_t>(runs), classes});
  std::copy(out.class_counts.begin(), out.class_counts.end(), counts.mutable_data());
  py::dict result;
  result["wall_s"] = to_numpy(out.wall_s);
  result["progress_s"] = to_numpy(out.progress_s);
  result["interruptions"] = to_numpy(out.interruptions);
  result["lost_s"] = to_numpy(out.lost_s);
  result["checkpoint_s"] = to_numpy(out.checkpoint_s);
  result["restart_s"] = to_numpy(out.restart_s);
  result["waiting_s"] = to_numpy(out.waiting_s);
  result["spares_used"] = to_numpy(out.spares_used);
  result["finished"] = to_numpy(out.finished).attr("astype")("bool");
  result["class_counts"] = counts;
  result["job_rate_per_s"] = m.job_rate_per_s();
  return result;
}

}  // namespace

void register_failures(py::module_& m) {
  m.def("long_runs", &long_runs, py::arg("class_rates_per_s"), py::arg("class_spare_devices"),
        py::arg("devices"), py::arg("links"), py::arg("link_rate_per_s"), py::arg("useful_time_s"),
        py::arg("max_wall_s"), py::arg("checkpoint_interval_s"), py::arg("checkpoint_write_s"),
        py::arg("checkpoint_async"), py::arg("checkpoint_snapshot_s"), py::arg("restart_s"),
        py::arg("spares"), py::arg("replacement_s"), py::arg("seed"), py::arg("runs"),
        py::arg("threads"),
        "Monte Carlo of `runs` independent long runs with failures, checkpoints and restarts: "
        "a dict of per-run numpy arrays (see podsim/failures.hpp). Same bits for any thread "
        "count.");
}
