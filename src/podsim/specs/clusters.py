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

from podsim.errors import SpecError, check, shown
from podsim.fields import (
    Boolean,
    Choice,
    Integer,
    IntList,
    Number,
    OneOf,
    Quantity,
    String,
    Table,
    check_all,
    fraction,
)
from podsim.specs.chips import (
    CHIP_FIELDS,
    MAX_BANDWIDTH,
    Chip,
    bandwidth,
    get_chip,
    latency,
    one_die,
)

# The engine numbers links with int32 ids, six per device at most: 357,913,941 devices keep
# every id in range for any pod size (the C++ topology refuses more, too).
MAX_DEVICES = 357_913_941
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
# In-switch reduction (NVLS, docs/engine.md "In-switch reduction"). FITTED on the nccl-tests
# all-reduce rows of one DGX H100 from 16 MiB up (tools/fit_nvls.py): the fraction of the
# nominal scale-up bandwidth an NVLS all-reduce moves its (n+1)/n S per link at, and its
# start-up time (NCCL's pipeline fill and multicast set-up; launch_latency comes on top).
DEFAULT_NVLS_EFFICIENCY = 0.672
DEFAULT_NVLS_LATENCY = 57.7e-6

# Checkpoint storage when a cluster gives no storage_bandwidth: 122 MB/s per device, Meta's
# Tectonic store for Llama 3 (2 TB/s sustained for 16,384 H100s; The Llama 3 Herd of Models,
# section 3.3.1). BLOOM-176B's 2.3 TB in 40 s on 384 A100s (57 GB/s, 150 MB/s per device;
# BigScience chronicles) agrees within 25%. An estimate for any other system.
DEFAULT_STORAGE_BANDWIDTH_PER_DEVICE = 2e12 / 16384

# Power and price (docs/training.md, "Energy and cost").
# ESTIMATE: all-in power per device = the chip's TDP times this factor (the device's share of
# host CPUs, memory, NICs, fans and power conversion), from NVIDIA's DGX system maxima: DGX
# H100 10.2 kW for 8x 700 W (1.82), DGX B200 14.3 kW for 8x 1,000 W (1.79), DGX A100 6.5 kW
# for 8x 400 W (2.03). A nameplate maximum, so an upper bound on the average draw; the
# scale-out switches are not included.
DEFAULT_SYSTEM_POWER_FACTOR = 1.8
# ESTIMATE: power usage effectiveness of the data centre (facility power / IT power). Google
# reports a fleet-wide trailing PUE of about 1.10, the Uptime Institute's global survey an
# average of about 1.56 (2024); 1.2 stands for a modern AI data centre between the two.
DEFAULT_PUE = 1.2
# ASSUMPTION: the price of one device-hour, in USD (any currency: costs are in its unit). About
# 2 USD/h is a typical rental price of an H100-class GPU in 2024-2025; set it per scenario.
DEFAULT_PRICE_PER_DEVICE_HOUR = 2.0

# Scenario files take bandwidths up to 1 PB/s; the Python API also takes an ideal network of
# up to 1e30 B/s (the closed-form tests use one), still finite and at least 1 B/s.
MAX_IDEAL_BANDWIDTH = 1e30


# How a scale-up domain is wired (docs/engine.md, "Scale-up topologies"), in the order of the
# engine's codes: one non-blocking switch, a link per pair of devices, a 3D wrap-around torus.
SCALE_UP_TOPOLOGIES = ("switch", "full_mesh", "torus")
# Protocols rings may run (docs/engine.md, "Protocols"); the index is the engines' code.
PROTOCOLS = ("auto", "ll", "ll128", "simple")
# The longest torus route the engine follows: the sum of floor(k / 2) over the dimensions.
MAX_TORUS_DIAMETER = 32


def _overrides(high: float) -> tuple:
    """The keys make_cluster takes as overrides (fields not given come from the chip)."""
    return (
        String("name", "a name for the cluster", ""),
        Integer(
            "domain_size",
            "devices per scale-up domain (default: the chip's)",
            low=1,
            high=MAX_DEVICES,
        ),
        Integer(
            "pod_size",
            "devices per non-blocking scale-out pod, a multiple of domain_size "
            "(default: the whole cluster)",
            low=1,
            high=MAX_DEVICES,
        ),
        Number("oversubscription", "oversubscription of each pod's uplink", 1.0, low=1.0, high=1e6),
        bandwidth("scale_up_bandwidth", "scale-up bandwidth per device and direction", high),
        latency("scale_up_latency", "scale-up hop latency (per hop on a torus)"),
        Choice(
            "scale_up_topology",
            "how a scale-up domain is wired: 'switch' (one non-blocking switch), 'full_mesh' "
            "(a link per pair of devices) or 'torus' (3D, wrap-around, torus_dims)",
            "switch",
            choices=SCALE_UP_TOPOLOGIES,
        ),
        Quantity(
            "scale_up_link_bandwidth",
            "full_mesh: bandwidth of each pair link; torus: of each link (per direction; "
            "default: scale_up_bandwidth over the device's domain_size - 1 or 6 links)",
            None,
            low=1.0,
            high=high,
            kind="bandwidth",
        ),
        Boolean(
            "per_die",
            "a multi-die chip (910C) as one rank per die, as the software sees it: devices, "
            "domain_size and pod_size count dies, per-device figures are per die",
            False,
        ),
        Quantity(
            "die_link_bandwidth",
            "per_die: bandwidth between the two dies of a package, per direction (default: "
            "the chip's)",
            None,
            low=1.0,
            high=high,
            kind="bandwidth",
        ),
        IntList(
            "torus_dims",
            "torus: the domain's 3 dimensions (x fastest), whose product is domain_size",
            None,
            low=1,
            high=MAX_DEVICES,
            max_length=3,
        ),
        bandwidth("scale_out_bandwidth", "scale-out bandwidth per device and direction", high),
        latency("scale_out_latency", "scale-out hop latency"),
        latency("launch_latency", "launch and protocol set-up per collective or transfer"),
        fraction(
            "scale_up_efficiency",
            "fraction of the scale-up bandwidth collectives achieve",
            DEFAULT_LINK_EFFICIENCY,
            low_open=True,
        ),
        Boolean(
            "in_network_reduction",
            "the scale-up switch reduces in the network (NVLink SHARP on NVSwitch gen3 and "
            "later): all-reduce in one domain may run the nvls algorithm",
            False,
        ),
        fraction(
            "nvls_efficiency",
            "fraction of the nominal scale-up bandwidth an nvls all-reduce achieves (fitted "
            "on nccl-tests, DGX H100)",
            DEFAULT_NVLS_EFFICIENCY,
            low_open=True,
        ),
        latency(
            "nvls_latency",
            "start-up time of an nvls all-reduce (fitted on nccl-tests, DGX H100)",
            DEFAULT_NVLS_LATENCY,
        ),
        Choice(
            "protocol",
            "the protocol rings of all-reduce, all-gather and reduce-scatter (and nccl-tree) "
            "run: 'auto' (NCCL's choice per size among LL, LL128 and Simple, as on the NVIDIA "
            "presets), 'll', 'll128', or 'simple' (the plain alpha-beta model, for libraries "
            "without NCCL's low-latency protocols)",
            "simple",
            choices=PROTOCOLS,
        ),
        fraction(
            "scale_out_efficiency",
            "fraction of the scale-out bandwidth collectives achieve",
            DEFAULT_LINK_EFFICIENCY,
            low_open=True,
        ),
        latency(
            "message_overhead",
            "fixed cost per message of an all-to-all that writes every peer at once",
            DEFAULT_MESSAGE_OVERHEAD,
        ),
        Number(
            "nic_message_rate",
            "messages per second one NIC issues (0: unlimited)",
            DEFAULT_NIC_MESSAGE_RATE,
            low=0.0,
            high=1e12,
        ),
        fraction(
            "forward_efficiency",
            "fraction of the achievable scale-up bandwidth node-forwarding kernels reach",
            DEFAULT_FORWARD_EFFICIENCY,
            low_open=True,
        ),
        Quantity(
            "storage_bandwidth",
            "aggregate write bandwidth of the checkpoint storage (default: 122 MB/s per "
            "device, Llama 3's 2 TB/s Tectonic store for 16,384 GPUs)",
            None,
            low=1.0,
            high=high,
            kind="bandwidth",
        ),
        Number(
            "power_per_device_w",
            "all-in power per device: the chip and its share of the host, NICs and switches "
            f"(default: the chip's TDP x {DEFAULT_SYSTEM_POWER_FACTOR}, an estimate; presets "
            "with a published system figure give it)",
            None,
            low=0.0,
            high=1e6,
            low_open=True,
            unit="W",
        ),
        Number(
            "pue",
            "power usage effectiveness of the data centre (facility / IT power; an estimate)",
            DEFAULT_PUE,
            low=1.0,
            high=10.0,
        ),
        Number(
            "price_per_device_hour",
            "price of one device-hour in USD (an assumption; any currency, costs are in it)",
            DEFAULT_PRICE_PER_DEVICE_HOUR,
            low=0.0,
            high=1e6,
            unit="USD/h",
        ),
    )


OVERRIDE_FIELDS = Table(
    "cluster", "make_cluster's overrides", fields=_overrides(MAX_IDEAL_BANDWIDTH)
)
_OVERRIDES = OVERRIDE_FIELDS.keys
DEVICES = Integer("devices", "number of devices", low=1, high=MAX_DEVICES)

# A scenario's [cluster] table: devices, a preset or a chip, and any override.
CLUSTER_FIELDS = Table(
    "cluster",
    "the cluster: devices of one chip in scale-up domains, joined by a scale-out fabric",
    fields=(
        DEVICES,
        String("preset", "a cluster preset id (`podsim clusters`)", None, nonempty=True),
        OneOf(
            "chip",
            "a catalog chip id (`podsim chips`), or a [cluster.chip] table of a user's own chip",
            None,
            options=(String("chip", "a catalog id", nonempty=True), CHIP_FIELDS),
        ),
        *_overrides(MAX_BANDWIDTH),
    ),
)


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
    storage_bandwidth: float | None = None  # checkpoint storage, B/s; None: per-device default
    power_per_device_w: float | None = None  # all-in W per device; None: TDP x system factor
    pue: float = DEFAULT_PUE
    price_per_device_hour: float = DEFAULT_PRICE_PER_DEVICE_HOUR  # USD
    scale_up_topology: str = "switch"  # "switch" | "full_mesh" | "torus"
    scale_up_link_bandwidth: float | None = None  # per link and direction; None: the default
    torus_dims: tuple[int, ...] | None = None  # torus only: 3 dimensions, x fastest
    per_die: bool = False  # ranks are the dies of a multi-die chip (chip is one_die's)
    die_link_bandwidth: float | None = None  # per_die: B/s per direction; None: the chip's
    in_network_reduction: bool = False  # the switch reduces (NVLS): nvls all-reduce applies
    nvls_efficiency: float = DEFAULT_NVLS_EFFICIENCY
    nvls_latency: float = DEFAULT_NVLS_LATENCY
    protocol: str = "simple"  # rings' protocol: one of PROTOCOLS

    @property
    def device_power_w(self) -> float:
        """All-in power per device (W, before PUE): power_per_device_w, or the chip's TDP
        times DEFAULT_SYSTEM_POWER_FACTOR."""
        if self.power_per_device_w is not None:
            return self.power_per_device_w
        return self.chip.tdp_watts * DEFAULT_SYSTEM_POWER_FACTOR

    def __post_init__(self) -> None:
        DEVICES.check(self.devices, "cluster.devices")
        names = [f.name for f in OVERRIDE_FIELDS.fields if f.name != "name"]
        values = {name: getattr(self, name) for name in names}
        check_all({k: v for k, v in values.items() if v is not None}, _OVERRIDES, "cluster")
        check(
            self.pod_size % self.domain_size == 0,
            "cluster.pod_size",
            self.pod_size,
            f"a multiple of domain_size ({self.domain_size})",
        )
        _check_scale_up(self)
        _check_dies(self)

    @property
    def link_bandwidth(self) -> float:
        """Nominal bandwidth of one scale-up link per direction (B/s): a full mesh's pair link
        or a torus link; scale_up_link_bandwidth, or scale_up_bandwidth over the device's links.
        A switch's device link is scale_up_bandwidth itself."""
        if self.scale_up_link_bandwidth is not None:
            return self.scale_up_link_bandwidth
        links = {"switch": 1, "full_mesh": max(1, self.domain_size - 1), "torus": 6}
        return self.scale_up_bandwidth / links[self.scale_up_topology]

    @property
    def package_size(self) -> int:
        """Ranks per package: the chip's dies when per_die, else 1."""
        return self.chip.dies if self.per_die else 1

    @property
    def die_link(self) -> float:
        """Nominal die-to-die bandwidth per direction (B/s) of a per_die cluster."""
        if self.die_link_bandwidth is not None:
            return self.die_link_bandwidth
        return self.chip.die_link_bandwidth or 0.0

    @property
    def domains(self) -> int:
        return -(-self.devices // self.domain_size)

    @property
    def checkpoint_bandwidth(self) -> float:
        """Aggregate checkpoint write bandwidth (B/s): storage_bandwidth, or the default per
        device times the devices."""
        if self.storage_bandwidth is not None:
            return self.storage_bandwidth
        return DEFAULT_STORAGE_BANDWIDTH_PER_DEVICE * self.devices

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
            SCALE_UP_TOPOLOGIES.index(self.scale_up_topology),
            0.0
            if self.scale_up_topology == "switch"
            else self.link_bandwidth * self.scale_up_efficiency,
            self.torus_dims or (1, 1, 1),
            self.package_size,
            self.die_link * self.scale_up_efficiency if self.per_die else 0.0,
            self.scale_up_bandwidth * self.nvls_efficiency if self.nvls_enabled else 0.0,
            self.nvls_latency if self.nvls_enabled else 0.0,
            PROTOCOLS.index(self.protocol),
        )

    @property
    def nvls_enabled(self) -> bool:
        """Whether all-reduce may reduce in the switch: a switch domain that reduces."""
        return self.in_network_reduction and self.scale_up_topology == "switch"

    def with_devices(self, devices: int) -> "Cluster":
        """The same cluster resized: a fabric of several pods keeps its pod size (and its
        oversubscription above it); a single non-blocking fabric grows with the cluster."""
        DEVICES.check(devices, "devices")
        single = self.pod_size >= _default_pod(self, self.devices)
        pod = _default_pod(self, devices) if single else self.pod_size
        check(
            pod <= MAX_DEVICES,
            "devices",
            devices,
            f"at most {MAX_DEVICES // self.domain_size * self.domain_size:_} "
            f"(whole domains of {self.domain_size} devices)",
        )
        return replace(self, devices=devices, pod_size=pod)

    def to_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        out["chip"] = self.chip.id
        return out


def _check_dies(cluster: Cluster) -> None:
    """A per-die cluster holds whole packages, in whole domains, with a die-to-die link."""
    if not cluster.per_die:
        return
    check(
        bool(cluster.chip.package),
        "cluster.per_die",
        True,
        f"a chip of several dies seen as one die each (chip {cluster.chip.id!r} is not)",
    )
    dies = cluster.chip.dies
    for name in ("devices", "domain_size"):
        value = getattr(cluster, name)
        check(value % dies == 0, f"cluster.{name}", value, f"whole packages: a multiple of {dies}")
    check(
        cluster.die_link > 0,
        "cluster.die_link_bandwidth",
        cluster.die_link_bandwidth,
        "a bandwidth > 0 (the chip gives none)",
    )


def _check_scale_up(cluster: Cluster) -> None:
    """A full mesh or a torus is wired inside each domain; a torus needs its dimensions."""
    kind, dims = cluster.scale_up_topology, cluster.torus_dims
    check(
        not cluster.in_network_reduction or kind == "switch",
        "cluster.in_network_reduction",
        cluster.in_network_reduction,
        "false unless scale_up_topology = 'switch' (the switch reduces)",
    )
    if kind != "torus":
        check(
            dims is None, "cluster.torus_dims", dims, "left out unless scale_up_topology = 'torus'"
        )
        return
    check(
        dims is not None and len(dims) == 3,
        "cluster.torus_dims",
        dims,
        "3 integers whose product is domain_size (scale_up_topology = 'torus')",
    )
    check(
        dims[0] * dims[1] * dims[2] == cluster.domain_size,
        "cluster.torus_dims",
        list(dims),
        f"3 integers whose product is domain_size ({cluster.domain_size})",
    )
    check(
        sum(k // 2 for k in dims) <= MAX_TORUS_DIAMETER,
        "cluster.torus_dims",
        list(dims),
        f"a torus whose diameter (sum of k // 2) is at most {MAX_TORUS_DIAMETER} hops",
    )
    check(
        cluster.devices % cluster.domain_size == 0,
        "cluster.devices",
        cluster.devices,
        f"whole tori: a multiple of domain_size ({cluster.domain_size})",
    )


def _default_pod(cluster: "Cluster | None", devices: int, domain: int = 0) -> int:
    domain = domain or cluster.domain_size
    return max(domain, -(-devices // domain) * domain)


def make_cluster(chip: "str | Chip | dict", devices: int, **overrides: Any) -> Cluster:
    """A cluster of `devices` chips; fabric fields default to the chip's standard system.

    overrides: domain_size, pod_size, oversubscription, name, and any bandwidth or latency
    (numbers in SI or unit strings such as "400 Gb/s", "2 us"). Unknown keys are errors.
    """
    chip = get_chip(chip)
    if overrides.get("per_die") is True:  # every default below is then one die's
        chip = one_die(chip)
    values: dict[str, Any] = {
        "scale_up_bandwidth": chip.scale_up_bandwidth,
        "scale_up_latency": chip.scale_up_latency,
        "scale_out_bandwidth": chip.scale_out_bandwidth,
        "scale_out_latency": chip.scale_out_latency,
        "domain_size": chip.domain_size,
    }
    values.update(OVERRIDE_FIELDS.check(overrides, "cluster"))
    DEVICES.check(devices, "cluster.devices")
    if "pod_size" not in values:  # one pod of whole domains: it must stay a device count
        domain = values["domain_size"]
        pod = _default_pod(None, devices, domain)
        check(
            pod <= MAX_DEVICES,
            "cluster.devices",
            devices,
            f"at most {MAX_DEVICES // domain * domain:_} (whole domains of {domain} devices)",
        )
        values["pod_size"] = pod
    return Cluster(chip=chip, devices=devices, **values)


@cache
def presets() -> MappingProxyType:
    """Cluster presets shipped with podsim (data/clusters.toml), by id, as raw tables."""
    text = resources.files("podsim").joinpath("data/clusters.toml").read_text(encoding="utf-8")
    return MappingProxyType(tomllib.loads(text))


def preset_cluster(preset: str, devices: int | None = None, **overrides: Any) -> Cluster:
    """A cluster from a preset (`podsim clusters`), optionally resized or overridden."""
    if not isinstance(preset, str) or preset not in presets():
        known = ", ".join(presets())
        raise SpecError(f"cluster.preset = {shown(preset)} is not known; known: {known}")
    table = {
        k: v
        for k, v in presets()[preset].items()
        if k not in ("description", "sources", "devices", "chip")
    }
    size = presets()[preset]["devices"]
    if overrides.get("per_die") is True:  # the preset's figures are per package
        dies = get_chip(presets()[preset]["chip"]).dies
        table, size = _per_die_table(table, dies), size * dies
    table.update(overrides)
    table.setdefault("name", preset)
    return make_cluster(presets()[preset]["chip"], size if devices is None else devices, **table)


# A preset's per-device figures, which describe a package, and its counts of packages.
_PER_PACKAGE = ("scale_up_bandwidth", "scale_out_bandwidth", "power_per_device_w")
_PACKAGE_COUNTS = ("domain_size", "pod_size")


def _per_die_table(table: dict[str, Any], dies: int) -> dict[str, Any]:
    """A preset's overrides for one rank per die: per-package figures split over the dies,
    package counts multiplied by them."""
    out = dict(table)
    for name in _PER_PACKAGE + _PACKAGE_COUNTS:
        if name in out:
            value = OVERRIDE_FIELDS.check({name: out[name]}, "cluster")[name]
            out[name] = value / dies if name in _PER_PACKAGE else value * dies
    return out


def cluster_from_table(table: dict[str, Any]) -> Cluster:
    """A cluster from a scenario's [cluster] table: `devices` and either `preset` or `chip`
    (a catalog id, or a [cluster.chip] table of a user's own chip), plus any override of
    make_cluster (domain_size, pod_size, bandwidths, latencies, ...). Unknown keys are errors.
    """
    values = CLUSTER_FIELDS.check(table, "cluster")
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
