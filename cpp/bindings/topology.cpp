// The cluster's topology, validated on construction.
#include "podsim/topology.hpp"

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <string>

#include "podsim/errors.hpp"
#include "register.hpp"

namespace py = pybind11;
using podsim::Protocol;
using podsim::ScaleUp;
using podsim::Topology;

namespace {

ScaleUp scale_up_arg(int kind) {
  if (kind < 0 || kind >= podsim::kScaleUpKinds) {
    throw podsim::SpecError("topology.scale_up_topology = " + std::to_string(kind) +
                            " is not allowed: 0 (switch), 1 (full_mesh) or 2 (torus)");
  }
  return static_cast<ScaleUp>(kind);
}

Protocol protocol_arg(int protocol) {
  if (protocol < 0 || protocol >= podsim::kProtocols) {
    throw podsim::SpecError("topology.protocol = " + std::to_string(protocol) +
                            " is not allowed: 0 (auto), 1 (ll), 2 (ll128) or 3 (simple)");
  }
  return static_cast<Protocol>(protocol);
}

}  // namespace

void register_topology(py::module_& m) {
  py::class_<Topology>(m, "Topology")
      .def(
          py::init([](std::int64_t devices, std::int64_t domain_size, std::int64_t pod_size,
                      double su_bw, double su_lat, double so_bw, double so_lat, double oversub,
                      double launch, double message_overhead, double nic_message_rate,
                      double forward_efficiency, int scale_up, double link_bandwidth,
                      const std::array<std::int64_t, 3>& torus_dims, std::int64_t package_size,
                      double package_bandwidth, double nvls_bw, double nvls_lat, int protocol) {
            // every field, in declaration order
            Topology t{devices,
                       domain_size,
                       pod_size,
                       su_bw,
                       su_lat,
                       so_bw,
                       so_lat,
                       oversub,
                       launch,
                       message_overhead,
                       nic_message_rate,
                       forward_efficiency,
                       scale_up_arg(scale_up),
                       link_bandwidth,
                       torus_dims,
                       package_size,
                       package_bandwidth,
                       nvls_bw,
                       nvls_lat,
                       protocol_arg(protocol)};
            t.validate();
            return t;
          }),
          py::arg("devices"), py::arg("domain_size"), py::arg("pod_size"),
          py::arg("scale_up_bandwidth"), py::arg("scale_up_latency"),
          py::arg("scale_out_bandwidth"), py::arg("scale_out_latency"), py::arg("oversubscription"),
          py::arg("launch_latency"), py::arg("message_overhead") = 0.0,
          py::arg("nic_message_rate") = 0.0, py::arg("forward_efficiency") = 1.0,
          py::arg("scale_up_topology") = 0, py::arg("link_bandwidth") = 0.0,
          py::arg("torus_dims") = std::array<std::int64_t, 3>{1, 1, 1}, py::arg("package_size") = 1,
          py::arg("package_bandwidth") = 0.0, py::arg("nvls_bandwidth") = 0.0,
          py::arg("nvls_latency") = 0.0, py::arg("protocol") = static_cast<int>(Protocol::Simple))
      .def_readonly("devices", &Topology::devices)
      .def_readonly("domain_size", &Topology::domain_size)
      .def_readonly("pod_size", &Topology::pod_size)
      .def_property_readonly("scale_up_topology",
                             [](const Topology& t) { return static_cast<int>(t.scale_up); })
      .def_readonly("link_bandwidth", &Topology::link_bandwidth)
      .def_readonly("torus_dims", &Topology::torus_dims)
      .def_readonly("package_size", &Topology::package_size)
      .def_readonly("nvls_bandwidth", &Topology::nvls_bandwidth)
      .def_readonly("nvls_latency", &Topology::nvls_latency)
      .def_property_readonly("protocol",
                             [](const Topology& t) { return static_cast<int>(t.protocol); });
}
