"""Clusters: N devices of one chip in scale-up domains, joined by a scale-out fabric.

Topology (docs/engine.md): devices 0..N-1; device d is in domain d // domain_size and in pod
d // pod_size. Inside a pod the scale-out fabric is non-blocking (rail-optimised fat tree);
each pod's uplink carries pod_size * scale_out_bandwidth / oversubscription.
"""

import tomllib
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from podsim.errors import SpecError, check
from podsim.specs.chips import Chip, get_chip
from podsim.units import parse_bandwidth, parse_time

MAX_DEVICES = 2**31 - 1
# Kernel launch plus protocol set-up paid once per collective or transfer. An estimate: NCCL's
# own tuner adds a few microseconds of base latency per collective (src/graph/tuning.cc).
DEFAULT_LAUNCH_LATENCY = 5e-6
# The fraction of a link's nominal bandwidth that collectives achieve. DeepSeek plans with
# 160 of 200 GB/s on H800 NVLink and 40 of 50 GB/s on 400 Gb/s InfiniBand (Insights into
# DeepSeek-V3, ISCA'25, section 4.1): 0.8 on both. Set 1 for nominal bandwidths.
DEFAULT_LINK_EFFICIENCY = 0.8
# Expert-parallel all-to-all kernels (docs/engine.md, "All-to-all for expert parallelism").
# FITTED on DeepEP's low-latency rows (H800, docs/validation.md; podsim.front.deepep): the
# fixed cost of one message (a token) written over NVLink by the low-latency kernel's warps.
DEFAULT_MESSAGE_OVERHEAD = 29.5e-9
# ESTIMATE, not verified against a datasheet: NVIDIA quotes ConnectX-7 message rates of a few
# hundred million per second; DeepEP's rows do not constrain it (7 KB messages are
# bandwidth-bound at any rate above 6 M/s per NIC).
DEFAULT_NIC_MESSAGE_RATE = 330e6
# FITTED on DeepEP's normal-kernel rows (H800): node-forwarding kernels, run on a few SMs,
# reach this fraction of the achievable scale-up bandwidth.
DEFAULT_FORWARD_EFFICIENCY = 0.815

_OVERRIDES = {
    "scale_up_bandwidth": parse_bandwidth,
    "scale_up_latency": parse_time,
    "scale_out_bandwidth": parse_bandwidth,
    "scale_out_latency": parse_time,
    "launch_latency": parse_time,
    "scale_up_efficiency": lambda field, value: _fraction(field, value),
    "scale_out_efficiency": lambda field, value: _fraction(field, value),
    "message_overhead": parse_time,
    "nic_message_rate": lambda field, value: _rate(field, value),
    "forward_efficiency": lambda field, value: _fraction(field, value),
}


def _rate(field: str, value: object) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    check(ok and 0 <= value < float("inf"), field, value, "a finite number >= 0 (0: unlimited)")
    return float(value)


def _fraction(field: str, value: object) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= 1
    check(ok, field, value, "a fraction in (0, 1]")
    return float(value)


@dataclass(frozen=True)
class Cluster:
    """A cluster with every field resolved (SI units, bandwidths per device per direction)."""

    chip: Chip
    devices: int
    domain_size: int
    pod_size: int
    scale_up_bandwidth: float
    scale_up_latency: float
    scale_out_bandwidth: float
    scale_out_latency: float
    oversubscription: float = 1.0
    launch_latency: float = DEFAULT_LAUNCH_LATENCY
    scale_up_efficiency: float = DEFAULT_LINK_EFFICIENCY
    scale_out_efficiency: float = DEFAULT_LINK_EFFICIENCY
    message_overhead: float = DEFAULT_MESSAGE_OVERHEAD
    nic_message_rate: float = DEFAULT_NIC_MESSAGE_RATE
    forward_efficiency: float = DEFAULT_FORWARD_EFFICIENCY
    name: str = ""

    def __post_init__(self) -> None:
        _integer("cluster.devices", self.devices, 1, MAX_DEVICES)
        _integer("cluster.domain_size", self.domain_size, 1, MAX_DEVICES)
        _integer("cluster.pod_size", self.pod_size, 1, MAX_DEVICES)
        check(
            self.pod_size % self.domain_size == 0,
            "cluster.pod_size",
            self.pod_size,
            f"a multiple of domain_size ({self.domain_size})",
        )
        for name in ("scale_up_bandwidth", "scale_out_bandwidth"):
            _number(f"cluster.{name}", getattr(self, name), 0.0, strict=True)
        for name in (
            "scale_up_latency",
            "scale_out_latency",
            "launch_latency",
            "message_overhead",
            "nic_message_rate",
        ):
            _number(f"cluster.{name}", getattr(self, name), 0.0, strict=False)
        _number("cluster.oversubscription", self.oversubscription, 1.0, strict=False)
        for name in ("scale_up_efficiency", "scale_out_efficiency", "forward_efficiency"):
            value = getattr(self, name)
            _number(f"cluster.{name}", value, 0.0, strict=True)
            check(value <= 1, f"cluster.{name}", value, "a fraction in (0, 1]")

    @property
    def domains(self) -> int:
        return -(-self.devices // self.domain_size)

    def topology(self) -> tuple:
        """The parameters the engines take, in the order of podsim._core.Topology: bandwidths
        are the achieved ones (nominal x efficiency)."""
        return (
            self.devices,
            self.domain_size,
            self.pod_size,
            self.scale_up_bandwidth * self.scale_up_efficiency,
            self.scale_up_latency,
            self.scale_out_bandwidth * self.scale_out_efficiency,
            self.scale_out_latency,
            self.oversubscription,
            self.launch_latency,
            self.message_overhead,
            self.nic_message_rate,
            self.forward_efficiency,
        )

    def with_devices(self, devices: int) -> "Cluster":
        """The same cluster resized: a fabric of several pods keeps its pod size (and its
        oversubscription above it); a single non-blocking fabric grows with the cluster."""
        single = self.pod_size >= _default_pod(self, self.devices)
        pod = _default_pod(self, devices) if single else self.pod_size
        return replace(self, devices=devices, pod_size=pod)

    def to_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        out["chip"] = self.chip.id
        return out


def _integer(field: str, value: object, low: int, high: int) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool)
    check(ok and low <= value <= high, field, value, f"an integer in [{low}, {high}]")


def _number(field: str, value: object, low: float, strict: bool) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    ok = ok and value == value and value != float("inf")
    ok = ok and (value > low if strict else value >= low)
    check(ok, field, value, f"a finite number {'>' if strict else '>='} {low:g}")


def _default_pod(cluster: "Cluster | None", devices: int, domain: int = 0) -> int:
    domain = domain or cluster.domain_size
    return max(domain, -(-devices // domain) * domain)


def make_cluster(chip: "str | Chip | dict", devices: int, **overrides: Any) -> Cluster:
    """A cluster of `devices` chips; fabric fields default to the chip's standard system.

    overrides: domain_size, pod_size, oversubscription, name, and any bandwidth or latency
    (numbers in SI or unit strings such as "400 Gb/s", "2 us"). Unknown keys are errors.
    """
    chip = get_chip(chip)
    allowed = {"domain_size", "pod_size", "oversubscription", "name", *_OVERRIDES}
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise SpecError(f"cluster: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    values: dict[str, Any] = {
        "scale_up_bandwidth": chip.scale_up_bandwidth,
        "scale_up_latency": chip.scale_up_latency,
        "scale_out_bandwidth": chip.scale_out_bandwidth,
        "scale_out_latency": chip.scale_out_latency,
        "domain_size": chip.domain_size,
    }
    for name, value in overrides.items():
        values[name] = _OVERRIDES[name](f"cluster.{name}", value) if name in _OVERRIDES else value
    _integer("cluster.devices", devices, 1, MAX_DEVICES)
    _integer("cluster.domain_size", values["domain_size"], 1, MAX_DEVICES)
    values.setdefault("pod_size", _default_pod(None, devices, values["domain_size"]))
    return Cluster(chip=chip, devices=devices, **values)


@cache
def presets() -> MappingProxyType:
    """Cluster presets shipped with podsim (data/clusters.toml), by id, as raw tables."""
    text = resources.files("podsim").joinpath("data/clusters.toml").read_text(encoding="utf-8")
    return MappingProxyType(tomllib.loads(text))


def preset_cluster(preset: str, devices: int | None = None, **overrides: Any) -> Cluster:
    """A cluster from a preset (`podsim clusters`), optionally resized or overridden."""
    if preset not in presets():
        raise SpecError(f"cluster preset = {preset!r} is not known; known: " + ", ".join(presets()))
    table = {
        k: v
        for k, v in presets()[preset].items()
        if k not in ("description", "sources", "devices", "chip")
    }
    table.update(overrides)
    table.setdefault("name", preset)
    size = presets()[preset]["devices"] if devices is None else devices
    return make_cluster(presets()[preset]["chip"], size, **table)


def cluster_from_table(table: dict[str, Any]) -> Cluster:
    """A cluster from a scenario's [cluster] table: `devices` and either `preset` or `chip`
    (a catalog id, or a [cluster.chip] table of a user's own chip), plus any override of
    make_cluster (domain_size, pod_size, bandwidths, latencies, ...). Unknown keys are errors.
    """
    values = dict(table)
    if "devices" not in values:
        raise SpecError("cluster.devices is missing: give the number of devices")
    devices, preset, chip = (
        values.pop("devices"),
        values.pop("preset", None),
        values.pop("chip", None),
    )
    if preset is not None and chip is not None:
        raise SpecError("cluster: give chip or preset, not both")
    if preset is not None:
        return preset_cluster(preset, devices, **values)
    if chip is None:
        raise SpecError("cluster.chip is missing: a catalog id (`podsim chips`) or a table")
    return make_cluster(chip, devices, **values)
