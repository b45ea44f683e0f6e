#include "podsim/topology.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "podsim/errors.hpp"

namespace podsim {
namespace {

void require(bool ok, const char* field, double value, const char* allowed) {
  if (!ok) {
    throw SpecError(std::string("topology.") + field + " = " + std::to_string(value) +
                    " is not allowed: " + allowed);
  }
}

bool finite(double x) { return std::isfinite(x); }

// Link ids: per device up, down (scale-up), nic_up, nic_down; then per pod up, down.
std::int32_t device_link(std::int64_t device, int which) {
  return static_cast<std::int32_t>(4 * device + which);
}

}  // namespace

void Topology::validate() const {
  // Link ids are int32: 4 per device, then 2 per pod, so at most 6 x devices of them. This bound
  // keeps every id in range for any pod size (num_links() <= 2147483646).
  constexpr std::int64_t kMaxDevices = 357913941;  // floor((2^31 - 1) / 6)
  require(devices >= 1 && devices <= kMaxDevices, "devices", static_cast<double>(devices),
          "an integer in [1, 357913941] (link ids must fit in 32 bits)");
  require(domain_size >= 1, "domain_size", static_cast<double>(domain_size), "an integer >= 1");
  require(pod_size >= domain_size && pod_size % domain_size == 0, "pod_size",
          static_cast<double>(pod_size), "a multiple of domain_size");
  require(finite(scale_up_bandwidth) && scale_up_bandwidth > 0, "scale_up_bandwidth",
          scale_up_bandwidth, "a finite number > 0");
  require(finite(scale_out_bandwidth) && scale_out_bandwidth > 0, "scale_out_bandwidth",
          scale_out_bandwidth, "a finite number > 0");
  require(finite(scale_up_latency) && scale_up_latency >= 0, "scale_up_latency", scale_up_latency,
          "a finite number >= 0");
  require(finite(scale_out_latency) && scale_out_latency >= 0, "scale_out_latency",
          scale_out_latency, "a finite number >= 0");
  require(finite(launch_latency) && launch_latency >= 0, "launch_latency", launch_latency,
          "a finite number >= 0");
  require(finite(message_overhead) && message_overhead >= 0, "message_overhead", message_overhead,
          "a finite number >= 0");
  require(finite(nic_message_rate) && nic_message_rate >= 0, "nic_message_rate", nic_message_rate,
          "a finite number >= 0 (0: unlimited)");
  require(finite(forward_efficiency) && forward_efficiency > 0 && forward_efficiency <= 1,
          "forward_efficiency", forward_efficiency, "a fraction in (0, 1]");
  require(finite(oversubscription) && oversubscription >= 1, "oversubscription", oversubscription,
          "a finite number >= 1");
}

double Topology::link_capacity(std::int32_t link) const {
  if (link < 4 * devices) {
    return (link % 4) < 2 ? scale_up_bandwidth : scale_out_bandwidth;
  }
  return static_cast<double>(pod_size) * scale_out_bandwidth / oversubscription;
}

Path route(const Topology& topology, std::int32_t src, std::int32_t dst) {
  Path path;
  if (topology.domain(src) == topology.domain(dst)) {
    path.links = {device_link(src, 0), device_link(dst, 1), 0, 0};
    path.size = 2;
    path.latency = topology.scale_up_latency;
    path.bandwidth = topology.scale_up_bandwidth;
    return path;
  }
  path.latency = topology.scale_out_latency;
  path.bandwidth = topology.scale_out_bandwidth;
  const std::int64_t src_pod = topology.pod(src);
  const std::int64_t dst_pod = topology.pod(dst);
  if (src_pod == dst_pod) {
    path.links = {device_link(src, 2), device_link(dst, 3), 0, 0};
    path.size = 2;
    return path;
  }
  const std::int64_t pods_base = 4 * topology.devices;
  path.links = {device_link(src, 2), static_cast<std::int32_t>(pods_base + 2 * src_pod),
                static_cast<std::int32_t>(pods_base + 2 * dst_pod + 1), device_link(dst, 3)};
  path.size = 4;
  path.bandwidth = std::min(path.bandwidth, topology.link_capacity(path.links[1]));
  return path;
}

}  // namespace podsim
