// The request-level serving simulator: numpy columns in, numpy columns out; the step time is a
// Python callable, called (with the GIL) once per distinct (decode sequences, context bucket,
// prefill-token bucket).
#include "podsim/requests.hpp"

#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common.hpp"
#include "podsim/errors.hpp"
#include "register.hpp"

namespace py = pybind11;
using podsim::bindings::to_numpy;

namespace {

template <class T>
std::vector<T> requests_column(const py::array& array, const char* name) {
  if (array.ndim() != 1) {
    throw podsim::SpecError(std::string("requests: ") + name + " must be a 1-D array, got " +
                            std::to_string(array.ndim()) + " dimension(s)");
  }
  const auto typed = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(array);
  if (!typed) throw podsim::SpecError(std::string("requests: ") + name + " is not numeric");
  return {typed.data(), typed.data() + typed.size()};
}

py::dict simulate_requests(const py::array& arrival_s, const py::array& input_len,
                           const py::array& output_len, const py::array& cached,
                           double kv_capacity_tokens, std::int64_t max_batch, int scheduler,
                           std::int64_t budget, std::int64_t block, double gain,
                           const py::function& step_time) {
  podsim::RequestWorkload w;
  w.arrival_s = requests_column<double>(arrival_s, "arrival_s");
  w.input_len = requests_column<std::int64_t>(input_len, "input_len");
  w.output_len = requests_column<std::int64_t>(output_len, "output_len");
  w.cached = requests_column<std::int64_t>(cached, "cached");
  podsim::RequestConfig c;
  c.kv_capacity_tokens = kv_capacity_tokens;
  c.max_batch = max_batch;
  c.scheduler = podsim::bindings::enum_arg<podsim::Scheduler>(scheduler, 3, "requests: scheduler");
  c.budget = budget;
  c.block = block;
  c.gain = gain;

  const podsim::StepTimeFn step = [&step_time](std::int64_t seqs, double context, double tokens) {
    py::gil_scoped_acquire gil;
    return step_time(seqs, context, tokens).cast<double>();
  };
  podsim::RequestRun run;
  {
    // The GIL is released while the loop runs; Ctrl-C is checked every few thousand iterations.
    py::gil_scoped_release release;
    run = podsim::simulate_requests(w, c, step, [] {
      py::gil_scoped_acquire gil;
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    });
  }
  py::dict out;
  out["first_s"] = to_numpy(run.first_s);
  out["finish_s"] = to_numpy(run.finish_s);
  out["iterations"] = run.iterations;
  out["preemptions"] = run.preemptions;
  out["step_evaluations"] = run.step_evaluations;
  out["makespan_s"] = run.makespan_s;
  out["busy_s"] = run.busy_s;
  out["mean_in_system"] = run.mean_in_system;
  return out;
}

}  // namespace

void register_requests(py::module_& m) {
  m.def("simulate_requests", &simulate_requests, py::arg("arrival_s"), py::arg("input_len"),
        py::arg("output_len"), py::arg("cached"), py::arg("kv_capacity_tokens"),
        py::arg("max_batch"), py::arg("scheduler"), py::arg("budget"), py::arg("block"),
        py::arg("gain"), py::arg("step_time"),
        "The request-level simulator of one attention rank (see podsim/requests.hpp): a dict "
        "of per-request first_s and finish_s arrays and run totals.");
  m.def("step_bucket", &podsim::step_bucket, py::arg("x"),
        "x rounded up to the ladder of 8 steps per doubling (0 -> 0, (0, 1] -> 1).");
}
