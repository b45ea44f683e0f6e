// The cluster's topology, validated on construction.
#include "podsim/topology.hpp"

#include <pybind11/pybind11.h>

#include "register.hpp"

namespace py = pybind11;
using podsim::Topology;

void register_topology(py::module_& m) {
  py::class_<Topology>(m, "Topology")
      .def(py::init([](std::int64_t devices, std::int64_t domain_size, std::int64_t pod_size,
                       double su_bw, double su_lat, double so_bw, double so_lat, double oversub,
                       double launch, double message_overhead, double nic_message_rate,
                       double forward_efficiency) {
             Topology t{devices,          domain_size,
                        pod_size,         su_bw,
                        su_lat,           so_bw,
                        so_lat,           oversub,
                        launch,           message_overhead,
                        nic_message_rate, forward_efficiency};
             t.validate();
             return t;
           }),
           py::arg("devices"), py::arg("domain_size"), py::arg("pod_size"),
           py::arg("scale_up_bandwidth"), py::arg("scale_up_latency"),
           py::arg("scale_out_bandwidth"), py::arg("scale_out_latency"),
           py::arg("oversubscription"), py::arg("launch_latency"),
           py::arg("message_overhead") = 0.0, py::arg("nic_message_rate") = 0.0,
           py::arg("forward_efficiency") = 1.0)
      .def_readonly("devices", &Topology::devices)
      .def_readonly("domain_size", &Topology::domain_size)
      .def_readonly("pod_size", &Topology::pod_size);
}
