"""Chips: the catalog shipped with podsim (data/chips.toml, every value sourced) and user chips."""

import tomllib
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from podsim.errors import SpecError, shown
from podsim.fields import (
    REQUIRED,
    Integer,
    Number,
    Quantity,
    String,
    Table,
    TableOf,
    check_all,
    fraction,
    provenance_fields,
)

PRECISIONS = ("bf16", "fp16", "fp8", "int8", "fp32", "tf32", "fp4")
# Kernel classes, and FP8 GEMM entries that fall back to their class (costs/kernels.py).
KERNEL_CLASSES = ("gemm", "grouped_gemm", "attention", "memory", "gemm_fp8", "grouped_gemm_fp8")
MAX_DOMAIN = 2**31 - 1
MAX_DIES = 16

# Bounds shared by chips and clusters: a bandwidth in [1 B/s, 1 PB/s], a latency below 1 s.
MAX_BANDWIDTH = 1e15
MAX_LATENCY = 1.0


def bandwidth(name: str, doc: str, high: float = MAX_BANDWIDTH) -> Quantity:
    return Quantity(name, doc, low=1.0, high=high, kind="bandwidth")


def latency(name: str, doc: str, default: object = REQUIRED) -> Quantity:
    return Quantity(name, doc, default, low=0.0, high=MAX_LATENCY, high_open=True, kind="time")


CHIP_FIELDS = Table(
    "chip",
    "a user's own chip (every catalog field; SI numbers or unit strings)",
    fields=(
        String("id", "the chip's id", "custom", nonempty=True),
        String("name", "the chip's full name", nonempty=True),
        String("vendor", "the vendor (NVIDIA, Huawei, AMD, ...)", nonempty=True),
        TableOf(
            "peak_flops",
            "dense peak per precision (bf16 required)",
            value=Quantity("peak", "dense peak", low=1.0, high=1e18, kind="flops"),
            keys=PRECISIONS,
        ),
        Quantity("hbm_bytes", "HBM capacity", low=1.0, high=1e18, kind="size"),
        bandwidth("hbm_bandwidth", "HBM bandwidth"),
        bandwidth("scale_up_bandwidth", "scale-up bandwidth per device and direction"),
        latency("scale_up_latency", "scale-up hop latency"),
        Integer(
            "domain_size",
            "devices per scale-up domain of the standard system",
            low=1,
            high=MAX_DOMAIN,
        ),
        bandwidth("scale_out_bandwidth", "scale-out bandwidth per device and direction"),
        latency("scale_out_latency", "scale-out hop latency"),
        Number("tdp_watts", "thermal design power", low=0.0, high=1e6, low_open=True, unit="W"),
        TableOf(
            "kernel_efficiency",
            "fraction of the peak a large kernel of each class sustains",
            {},
            value=fraction("efficiency", "a fraction of the peak", low_open=True),
            keys=KERNEL_CLASSES,
        ),
        Integer(
            "compute_units",
            "SMs / CUs / cube cores, for wave quantization (0 = unknown)",
            0,
            low=0,
            high=1_000_000,
        ),
        Integer(
            "dies",
            "compute dies in the package that the software sees as devices (910C: 2)",
            1,
            low=1,
            high=MAX_DIES,
        ),
        Quantity(
            "die_link_bandwidth",
            "bandwidth between two dies of one package, per direction (multi-die chips)",
            None,
            low=1.0,
            high=MAX_BANDWIDTH,
            kind="bandwidth",
        ),
        *provenance_fields(),
    ),
)
_FIELDS = CHIP_FIELDS.keys
_QUANTITIES = (
    "hbm_bytes",
    "hbm_bandwidth",
    "scale_up_bandwidth",
    "scale_up_latency",
    "scale_out_bandwidth",
    "scale_out_latency",
)


@dataclass(frozen=True)
class Chip:
    """One accelerator. SI units: FLOP/s, bytes, bytes/s (per direction), seconds, watts.

    scale_up_bandwidth and scale_out_bandwidth are per device and per direction.
    domain_size is the scale-up domain of the standard system built from the chip.
    """

    id: str
    name: str
    vendor: str
    peak_flops: MappingProxyType  # precision -> dense FLOP/s (no 2:4 sparsity)
    hbm_bytes: float
    hbm_bandwidth: float
    scale_up_bandwidth: float
    scale_up_latency: float
    domain_size: int
    scale_out_bandwidth: float
    scale_out_latency: float
    tdp_watts: float
    kernel_efficiency: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    compute_units: int = 0  # SMs / CUs / cube cores, for wave quantization; 0 = unknown
    dies: int = 1  # compute dies per package that the software sees as devices
    die_link_bandwidth: float | None = None  # B/s per direction between two dies of a package
    sources: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    notes: str = ""
    package: str = ""  # one die of this package chip (one_die); "" for a whole package

    def __post_init__(self) -> None:
        where = f"chip {self.id!r}: "
        _FIELDS["id"].check(self.id, f"{where}id")
        values = {name: getattr(self, name) for name in _FIELDS if name != "id"}
        check_all({k: v for k, v in values.items() if v is not None}, _FIELDS, where)
        if "bf16" not in self.peak_flops:
            raise SpecError(f"{where}peak_flops must give at least bf16")

    def peak(self, precision: str) -> float:
        """Dense peak FLOP/s at this precision; a clear error if the chip lacks it."""
        if precision not in self.peak_flops:
            have = ", ".join(self.peak_flops)
            raise SpecError(f"chip {self.id!r} has no {precision} peak; it has: {have}")
        return self.peak_flops[precision]

    def to_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        for name in ("peak_flops", "kernel_efficiency", "sources"):
            out[name] = dict(out[name])
        return out


def chip_from_dict(chip_id: str, table: dict[str, Any]) -> Chip:
    """A chip from a TOML-style table (numbers in SI or unit strings); unknown keys are errors."""
    where = f"chip {shown(chip_id)}: "
    _FIELDS["id"].check(chip_id, f"{where}id")
    values = CHIP_FIELDS.check({k: v for k, v in table.items()}, where)
    values.pop("id", None)
    optional = {"kernel_efficiency", "sources", "notes", "compute_units", "dies"}
    optional |= {"die_link_bandwidth"}
    missing = sorted(set(_FIELDS) - {"id"} - set(values) - optional)
    if missing:
        raise SpecError(f"chip {chip_id!r}: missing key(s) {missing}")
    for name in ("peak_flops", "kernel_efficiency", "sources"):
        values[name] = MappingProxyType(dict(values.get(name, {})))
    return Chip(id=chip_id, **values)


@cache
def catalog() -> MappingProxyType:
    """The chips shipped with podsim, by id."""
    text = resources.files("podsim").joinpath("data/chips.toml").read_text(encoding="utf-8")
    return MappingProxyType({cid: chip_from_dict(cid, t) for cid, t in tomllib.loads(text).items()})


def get_chip(chip: "str | Chip | dict") -> Chip:
    """A chip by catalog id, or a Chip, or an explicit table with an `id` key."""
    if isinstance(chip, Chip):
        return chip
    if isinstance(chip, dict):
        table = dict(chip)
        return chip_from_dict(table.pop("id", "custom"), table)
    if not isinstance(chip, str) or chip not in catalog():
        raise SpecError(
            f"chip = {shown(chip)} is not in the catalog; known: {', '.join(catalog())}"
        )
    return catalog()[chip]


def one_die(chip: Chip) -> Chip:
    """One die of a multi-die chip as the software sees it (docs/engine.md, "Multi-die chips"):
    the package's peaks, memory, bandwidths, compute units and power split evenly over its dies,
    and a domain of as many dies as the package's domain holds. An even split is an assumption:
    the dies of the chips in the catalog are identical."""
    if chip.package:
        return chip
    d = chip.dies
    if d < 2:
        raise SpecError(f"chip {chip.id!r} has one die: per_die needs a multi-die chip (dies >= 2)")
    return replace(
        chip,
        id=f"{chip.id}-die",
        name=f"{chip.name}, one of its {d} dies",
        peak_flops=MappingProxyType({k: v / d for k, v in chip.peak_flops.items()}),
        hbm_bytes=chip.hbm_bytes / d,
        hbm_bandwidth=chip.hbm_bandwidth / d,
        scale_up_bandwidth=chip.scale_up_bandwidth / d,
        scale_out_bandwidth=chip.scale_out_bandwidth / d,
        domain_size=min(MAX_DOMAIN, chip.domain_size * d),
        tdp_watts=chip.tdp_watts / d,
        compute_units=chip.compute_units // d,
        package=chip.id,
    )
