// The cluster as the network sees it: scale-up domains, per-device NICs, pods (docs/engine.md).
#pragma once

#include <array>
#include <cstdint>

namespace podsim {

// How a scale-up domain is wired (docs/engine.md, "Scale-up topologies").
enum class ScaleUp : std::int8_t {
  Switch = 0,    // every device has one up and one down link to a non-blocking switch
  FullMesh = 1,  // one link per ordered pair of devices of the domain
  Torus = 2,  // a 3D torus (wrap-around in every dimension), one link per neighbour and direction
};
inline constexpr int kScaleUpKinds = 3;

// The protocols a ring may run (docs/engine.md, "Protocols"): NCCL's LL and LL128 (flagged
// lines: low latency, part of the bandwidth) and Simple (the plain alpha-beta model); Auto picks
// the fastest per call, as NCCL's tuner does.
enum class Protocol : std::int8_t { Auto = 0, LL = 1, LL128 = 2, Simple = 3 };
inline constexpr int kProtocols = 4;

// The most links a path the contention network follows may cross: 2 NIC links, 2 pod links,
// or a torus route of up to 8 hops (the diameter of a 4x4x8 torus; a 4x4x4 cube's is 6). Longer
// torus routes are priced (latency, bandwidth) but not followed link by link.
inline constexpr int kMaxPathLinks = 8;
// The largest torus diameter (sum of floor(k / 2)) a topology may have (16x16x24: 28).
inline constexpr std::int64_t kMaxTorusDiameter = 32;

struct Topology {
  std::int64_t devices = 1;
  std::int64_t domain_size = 1;
  std::int64_t pod_size = 1;
  double scale_up_bandwidth = 1.0;   // bytes/s per device per direction
  double scale_up_latency = 0.0;     // seconds per intra-domain path (per hop on a torus)
  double scale_out_bandwidth = 1.0;  // bytes/s per device per direction
  double scale_out_latency = 0.0;    // seconds per inter-domain path
  double oversubscription = 1.0;     // of each pod's uplink
  double launch_latency = 0.0;       // seconds, once per collective or transfer
  // All-to-all kernels (docs/engine.md, "All-to-all for expert parallelism"):
  double message_overhead = 0.0;    // seconds per message written over scale-up (low-latency)
  double nic_message_rate = 0.0;    // messages per second a NIC sends; 0: unlimited
  double forward_efficiency = 1.0;  // of scale-up bandwidth, node-forwarded kernels
  // Scale-up wiring: a switch (the default), a full mesh or a torus of domain_size devices.
  ScaleUp scale_up = ScaleUp::Switch;
  double link_bandwidth = 0.0;  // full mesh: per pair link; torus: per link (bytes/s, direction)
  std::array<std::int64_t, 3> torus_dims{1, 1, 1};  // x fastest; product = domain_size
  // Multi-die packages: `package_size` consecutive devices are the dies of one package (910C:
  // 2); two dies of a package talk over their die-to-die link of `package_bandwidth`.
  std::int64_t package_size = 1;
  double package_bandwidth = 0.0;  // bytes/s per direction
  // In-switch reduction (NVLS) of a switch domain: the bandwidth per device and direction an
  // NVLS all-reduce achieves (0: the switch does not reduce) and its fixed start-up time.
  double nvls_bandwidth = 0.0;  // bytes/s
  double nvls_latency = 0.0;    // seconds
  // The protocols rings run: Simple (one protocol) or Auto (the fastest of LL, LL128, Simple),
  // or one forced.
  Protocol protocol = Protocol::Simple;

  // Throws SpecError naming the first field that is out of range.
  void validate() const;

  std::int64_t domain(std::int64_t device) const { return device / domain_size; }
  std::int64_t pod(std::int64_t device) const { return device / pod_size; }
  std::int64_t num_pods() const { return (devices + pod_size - 1) / pod_size; }
  // Scale-up links a device owns beyond its switch links: g - 1 (mesh), 6 (torus), 0 (switch).
  std::int64_t extra_links_per_device() const;
  std::int64_t num_links() const {
    return 4 * devices + 2 * num_pods() + (extra_links_per_device() + package_size - 1) * devices;
  }
  std::int64_t package(std::int64_t device) const { return device / package_size; }
  double link_capacity(std::int32_t link) const;
  // The bandwidth one pair of devices of a domain gets alone (switch: scale_up_bandwidth).
  double pair_bandwidth() const {
    return scale_up == ScaleUp::Switch ? scale_up_bandwidth : link_bandwidth;
  }
  // A device's torus coordinates in its domain (x fastest).
  std::array<std::int64_t, 3> coords(std::int64_t device) const;
  // The device at `c` in `device`'s domain.
  std::int64_t at(std::int64_t device, const std::array<std::int64_t, 3>& c) const;
};

// The links a transfer from src to dst crosses, its latency and bandwidth.
struct Path {
  std::array<std::int32_t, kMaxPathLinks> links{};
  int size = 0;  // links listed: all of them unless hops > kMaxPathLinks
  int hops = 1;  // torus hops (latency is hops x scale_up_latency); 1 otherwise
  double latency = 0.0;
  double bandwidth = 0.0;  // of the slowest link
};

Path route(const Topology& topology, std::int32_t src, std::int32_t dst);

}  // namespace podsim
