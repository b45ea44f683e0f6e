// Order statistics of normals, for the noise model's latency tails.
#include "podsim/random.hpp"

#include <pybind11/pybind11.h>

#include "register.hpp"

namespace py = pybind11;

void register_random(py::module_& m) {
  m.def("max_of_normals", &podsim::random::max_of_normals, py::arg("n"), py::arg("u"),
        "The largest of n standard normals at probability u (order statistic).");
  m.def("normal_quantile", &podsim::random::normal_quantile, py::arg("p"));
}
