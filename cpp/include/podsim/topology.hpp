// The cluster as the network sees it: scale-up domains, per-device NICs, pods (docs/engine.md).
#pragma once

#include <array>
#include <cstdint>

namespace podsim {

struct Topology {
  std::int64_t devices = 1;
  std::int64_t domain_size = 1;
  std::int64_t pod_size = 1;
  double scale_up_bandwidth = 1.0;   // bytes/s per device per direction
  double scale_up_latency = 0.0;     // seconds per intra-domain path
  double scale_out_bandwidth = 1.0;  // bytes/s per device per direction
  double scale_out_latency = 0.0;    // seconds per inter-domain path
  double oversubscription = 1.0;     // of each pod's uplink
  double launch_latency = 0.0;       // seconds, once per collective or transfer
  // All-to-all kernels (docs/engine.md, "All-to-all for expert parallelism"):
  double message_overhead = 0.0;    // seconds per message written over scale-up (low-latency)
  double nic_message_rate = 0.0;    // messages per second a NIC sends; 0: unlimited
  double forward_efficiency = 1.0;  // of scale-up bandwidth, node-forwarded kernels

  // Throws SpecError naming the first field that is out of range.
  void validate() const;

  std::int64_t domain(std::int64_t device) const { return device / domain_size; }
  std::int64_t pod(std::int64_t device) const { return device / pod_size; }
  std::int64_t num_pods() const { return (devices + pod_size - 1) / pod_size; }
  std::int64_t num_links() const { return 4 * devices + 2 * num_pods(); }
  double link_capacity(std::int32_t link) const;
};

// The links a transfer from src to dst crosses (2 or 4), its latency and bandwidth.
struct Path {
  std::array<std::int32_t, 4> links{};
  int size = 0;
  double latency = 0.0;
  double bandwidth = 0.0;  // of the slowest link
};

Path route(const Topology& topology, std::int32_t src, std::int32_t dst);

}  // namespace podsim
