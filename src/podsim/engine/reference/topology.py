"""The cluster network of docs/engine.md: devices, scale-up domains, pods and their links.

A link is named by a tuple (kind, index):

- ("up", d), ("down", d): device d to its domain switch and back (scale_up_bandwidth);
- ("nic_up", d), ("nic_down", d): device d's NIC (scale_out_bandwidth);
- ("pod_up", p), ("pod_down", p): pod p's uplink to the spine and back
  (pod_size * scale_out_bandwidth / oversubscription).
"""

from dataclasses import dataclass
from numbers import Integral
from typing import Any

from podsim.errors import check

Link = tuple[str, int]

# Path classes, from the cheapest to the most expensive path.
SAME_DOMAIN, SAME_POD, CROSS_POD = 0, 1, 2


@dataclass(frozen=True)
class Topology:
    """The numbers the engines take, in the order of `Cluster.topology()` (the last three,
    for all-to-all kernels, may be left out: docs/engine.md)."""

    devices: int
    domain_size: int
    pod_size: int
    scale_up_bandwidth: float
    scale_up_latency: float
    scale_out_bandwidth: float
    scale_out_latency: float
    oversubscription: float = 1.0
    launch_latency: float = 0.0
    message_overhead: float = 0.0  # s per message written over scale-up (low-latency)
    nic_message_rate: float = 0.0  # messages/s per NIC; 0: unlimited
    forward_efficiency: float = 1.0  # of scale-up bandwidth, node-forwarded kernels
    # Scale-up wiring (0 switch, 1 full mesh, 2 torus): this oracle models switches only.
    scale_up_topology: int = 0
    link_bandwidth: float = 0.0
    torus_dims: tuple = (1, 1, 1)
    package_size: int = 1  # dies per package (a die-to-die link): not in this oracle either
    package_bandwidth: float = 0.0
    nvls_bandwidth: float = 0.0  # in-switch reduction: NVLS all-reduce B/s per device; 0: none
    nvls_latency: float = 0.0  # its start-up time, s
    protocol: int = 3  # rings' protocol: 0 auto, 1 ll, 2 ll128, 3 simple (collectives.py)

    def __post_init__(self) -> None:
        check(
            self.scale_up_topology == 0,
            "topology.scale_up_topology",
            self.scale_up_topology,
            "0 (switch): the reference engine models switched domains only",
        )
        check(
            self.package_size == 1,
            "topology.package_size",
            self.package_size,
            "1: the reference engine models single-die devices only",
        )
        for name in ("devices", "domain_size", "pod_size"):
            value = getattr(self, name)
            check(
                isinstance(value, Integral) and value >= 1,
                f"topology.{name}",
                value,
                "an integer >= 1",
            )
        check(
            self.pod_size % self.domain_size == 0,
            "topology.pod_size",
            self.pod_size,
            f"a multiple of domain_size ({self.domain_size})",
        )
        for name in ("scale_up_bandwidth", "scale_out_bandwidth"):
            value = getattr(self, name)
            check(0 < value < float("inf"), f"topology.{name}", value, "a finite number > 0")
        for name in (
            "scale_up_latency",
            "scale_out_latency",
            "launch_latency",
            "message_overhead",
            "nic_message_rate",
        ):
            value = getattr(self, name)
            check(0 <= value < float("inf"), f"topology.{name}", value, "a finite number >= 0")
        check(
            self.protocol in (0, 1, 2, 3),
            "topology.protocol",
            self.protocol,
            "0 (auto), 1 (ll), 2 (ll128) or 3 (simple)",
        )
        check(
            0 < self.forward_efficiency <= 1,
            "topology.forward_efficiency",
            self.forward_efficiency,
            "a fraction in (0, 1]",
        )
        check(
            1 <= self.oversubscription < float("inf"),
            "topology.oversubscription",
            self.oversubscription,
            "a finite number >= 1",
        )

    @classmethod
    def from_cluster(cls, cluster: Any) -> "Topology":
        return cls(*cluster.topology())

    @classmethod
    def of(cls, value: "Topology | tuple | Any") -> "Topology":
        """A Topology from a Topology, a 9- to 20-tuple or anything with a `.topology()`."""
        if isinstance(value, Topology):
            return value
        if hasattr(value, "topology"):
            return cls.from_cluster(value)
        return cls(*value)

    def domain(self, device: int) -> int:
        return device // self.domain_size

    def pod(self, device: int) -> int:
        return device // self.pod_size

    def path_class(self, src: int, dst: int) -> int:
        if src == dst:
            raise ValueError(f"a path needs two distinct devices, got {src} -> {dst}")
        if self.domain(src) == self.domain(dst):
            return SAME_DOMAIN
        return SAME_POD if self.pod(src) == self.pod(dst) else CROSS_POD

    def latency(self, src: int, dst: int) -> float:
        if self.path_class(src, dst) == SAME_DOMAIN:
            return self.scale_up_latency
        return self.scale_out_latency

    def links(self, src: int, dst: int) -> list[Link]:
        """The links a flow from src to dst crosses, in order."""
        kind = self.path_class(src, dst)
        if kind == SAME_DOMAIN:
            return [("up", src), ("down", dst)]
        if kind == SAME_POD:
            return [("nic_up", src), ("nic_down", dst)]
        return [
            ("nic_up", src),
            ("pod_up", self.pod(src)),
            ("pod_down", self.pod(dst)),
            ("nic_down", dst),
        ]

    @property
    def pod_link_capacity(self) -> float:
        return self.pod_size * self.scale_out_bandwidth / self.oversubscription

    def capacity(self, link: Link) -> float:
        kind = link[0]
        if kind in ("up", "down"):
            return self.scale_up_bandwidth
        if kind in ("nic_up", "nic_down"):
            return self.scale_out_bandwidth
        if kind in ("pod_up", "pod_down"):
            return self.pod_link_capacity
        raise ValueError(f"unknown link {link!r}")

    def bandwidth(self, src: int, dst: int) -> float:
        """A path's bandwidth: that of its slowest link."""
        return min(self.capacity(link) for link in self.links(src, dst))
