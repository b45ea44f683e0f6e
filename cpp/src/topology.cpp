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

// Extra link ids: after the switch and pod links, per device its mesh or torus links.
std::int64_t extra_base(const Topology& t) { return 4 * t.devices + 2 * t.num_pods(); }

// Die-to-die link ids: after the mesh or torus links, per device one to each other die.
std::int64_t package_base(const Topology& t) {
  return extra_base(t) + t.extra_links_per_device() * t.devices;
}

void validate_packages(const Topology& t) {
  require(
      t.package_size >= 1 && t.domain_size % t.package_size == 0 && t.devices % t.package_size == 0,
      "package_size", static_cast<double>(t.package_size),
      "an integer >= 1 dividing domain_size and devices (whole packages in a domain)");
  if (t.package_size == 1) return;
  require(finite(t.package_bandwidth) && t.package_bandwidth > 0, "package_bandwidth",
          t.package_bandwidth, "a finite number > 0 (packages of several dies)");
  constexpr std::int64_t kMaxLinks = 2147483647;  // int32 link ids
  require(t.devices <= (kMaxLinks - 2 * t.num_pods()) /
                           (4 + t.extra_links_per_device() + t.package_size - 1),
          "devices", static_cast<double>(t.devices),
          "few enough that every link id fits in 32 bits");
}

void validate_scale_up(const Topology& t) {
  const auto kind = static_cast<int>(t.scale_up);
  require(kind >= 0 && kind < kScaleUpKinds, "scale_up_topology", kind,
          "0 (switch), 1 (full_mesh) or 2 (torus)");
  if (t.scale_up == ScaleUp::Switch) return;
  require(finite(t.link_bandwidth) && t.link_bandwidth > 0, "link_bandwidth", t.link_bandwidth,
          "a finite number > 0 (full_mesh and torus)");
  constexpr std::int64_t kMaxLinks = 2147483647;  // int32 link ids
  const std::int64_t extra = t.extra_links_per_device();
  require(t.devices <= (kMaxLinks - 2 * t.num_pods()) / (4 + extra), "devices",
          static_cast<double>(t.devices), "few enough that every link id fits in 32 bits");
  if (t.scale_up != ScaleUp::Torus) return;
  require(t.devices % t.domain_size == 0, "devices", static_cast<double>(t.devices),
          "whole tori: a multiple of domain_size");
  std::int64_t product = 1, diameter = 0;
  for (std::int64_t k : t.torus_dims) {
    require(k >= 1 && k <= t.domain_size, "torus_dims", static_cast<double>(k),
            "integers >= 1 whose product is domain_size");
    product *= k;
    diameter += k / 2;
  }
  require(product == t.domain_size, "torus_dims", static_cast<double>(product),
          "dimensions whose product is domain_size");
  require(diameter <= kMaxTorusDiameter, "torus_dims", static_cast<double>(diameter),
          "a torus whose diameter (sum of floor(k / 2)) is at most 32 hops");
}

// The hop of one torus dimension from coordinate a to b: +1, -1 or 0. Ties (k even, b half way
// round) go + from even coordinates and - from odd ones, so that both directions carry them.
int torus_step(std::int64_t a, std::int64_t b, std::int64_t k) {
  const std::int64_t ahead = ((b - a) % k + k) % k;
  if (ahead == 0) return 0;
  if (2 * ahead < k) return 1;
  if (2 * ahead > k) return -1;
  return a % 2 == 0 ? 1 : -1;
}

void torus_route(const Topology& t, std::int32_t src, std::int32_t dst, Path& path) {
  auto at = t.coords(src);
  const auto to = t.coords(dst);
  const std::int64_t base = extra_base(t);
  int hops = 0;
  for (std::size_t dim = 0; dim < 3; ++dim) {
    const std::int64_t k = t.torus_dims[dim];
    for (int step = torus_step(at[dim], to[dim], k); step != 0;
         step = torus_step(at[dim], to[dim], k)) {
      const std::int64_t here = t.at(src, at);
      const auto dir = static_cast<std::int64_t>(2 * dim + (step > 0 ? 0 : 1));
      if (hops < kMaxPathLinks) {
        path.links[static_cast<std::size_t>(hops)] =
            static_cast<std::int32_t>(base + 6 * here + dir);
      }
      ++hops;
      at[dim] = ((at[dim] + step) % k + k) % k;
    }
  }
  path.hops = hops;
  path.size = std::min(hops, kMaxPathLinks);
  path.latency = t.scale_up_latency * path.hops;
  path.bandwidth = t.link_bandwidth;
}

// The link src -> dst among `group` consecutive devices that each own a link to every other
// (a full-mesh domain, the dies of a package): ids from `base`, g - 1 per device, in the order of
// the peer's index in the group, skipping the device's own.
Path direct_link(const Topology& t, std::int64_t base, std::int64_t group, std::int32_t src,
                 std::int32_t dst, double bandwidth) {
  Path path;
  const std::int64_t to = dst % group, from = src % group;
  path.links[0] = static_cast<std::int32_t>(base + (group - 1) * src + to - (to > from));
  path.size = 1;
  path.latency = t.scale_up_latency;
  path.bandwidth = bandwidth;
  return path;
}

}  // namespace

std::int64_t Topology::extra_links_per_device() const {
  if (scale_up == ScaleUp::FullMesh) return domain_size - 1;
  return scale_up == ScaleUp::Torus ? 6 : 0;
}

std::array<std::int64_t, 3> Topology::coords(std::int64_t device) const {
  const std::int64_t local = device % domain_size;
  return {local % torus_dims[0], local / torus_dims[0] % torus_dims[1],
          local / (torus_dims[0] * torus_dims[1])};
}

std::int64_t Topology::at(std::int64_t device, const std::array<std::int64_t, 3>& c) const {
  return domain(device) * domain_size + c[0] + torus_dims[0] * (c[1] + torus_dims[1] * c[2]);
}

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
  require(finite(nvls_bandwidth) && nvls_bandwidth >= 0, "nvls_bandwidth", nvls_bandwidth,
          "a finite number >= 0 (0: no in-switch reduction)");
  require(finite(nvls_latency) && nvls_latency >= 0, "nvls_latency", nvls_latency,
          "a finite number >= 0");
  require(nvls_bandwidth == 0 || scale_up == ScaleUp::Switch, "nvls_bandwidth", nvls_bandwidth,
          "0 unless the scale-up domain is a switch (in-switch reduction)");
  const int code = static_cast<int>(protocol);
  require(code >= 0 && code < kProtocols, "protocol", code,
          "0 (auto), 1 (ll), 2 (ll128) or 3 (simple)");
  validate_scale_up(*this);
  validate_packages(*this);
}

double Topology::link_capacity(std::int32_t link) const {
  if (link >= package_base(*this)) return package_bandwidth;
  if (link >= extra_base(*this)) return link_bandwidth;
  if (link < 4 * devices) {
    return (link % 4) < 2 ? scale_up_bandwidth : scale_out_bandwidth;
  }
  return static_cast<double>(pod_size) * scale_out_bandwidth / oversubscription;
}

Path route(const Topology& topology, std::int32_t src, std::int32_t dst) {
  Path path;
  if (topology.package_size > 1 && src != dst && topology.package(src) == topology.package(dst)) {
    return direct_link(topology, package_base(topology), topology.package_size, src, dst,
                       topology.package_bandwidth);
  }
  const bool peers = src != dst && topology.domain(src) == topology.domain(dst);
  if (peers && topology.scale_up == ScaleUp::FullMesh) {
    return direct_link(topology, extra_base(topology), topology.domain_size, src, dst,
                       topology.link_bandwidth);
  }
  if (peers && topology.scale_up == ScaleUp::Torus) {
    torus_route(topology, src, dst, path);
    return path;
  }
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
