"""Chips: the catalog shipped with podsim (data/chips.toml, every value sourced) and user chips."""

import math
import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from podsim.errors import SpecError, check
from podsim.units import parse_bandwidth, parse_flops, parse_size, parse_time

PRECISIONS = ("bf16", "fp16", "fp8", "int8", "fp32", "tf32", "fp4")

# field -> parser; the order is the order of `podsim chips` columns.
_QUANTITIES = {
    "hbm_bytes": parse_size,
    "hbm_bandwidth": parse_bandwidth,
    "scale_up_bandwidth": parse_bandwidth,
    "scale_up_latency": parse_time,
    "scale_out_bandwidth": parse_bandwidth,
    "scale_out_latency": parse_time,
}


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
    sources: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    notes: str = ""

    def __post_init__(self) -> None:
        where = f"chip {self.id!r}"
        check(bool(self.id), f"{where}: id", self.id, "a non-empty string")
        check(
            "bf16" in self.peak_flops,
            f"{where}: peak_flops",
            dict(self.peak_flops),
            "must give at least bf16",
        )
        for precision, flops in self.peak_flops.items():
            check(
                precision in PRECISIONS,
                f"{where}: peak_flops precision",
                precision,
                "one of " + ", ".join(PRECISIONS),
            )
            _positive(f"{where}: peak_flops.{precision}", flops)
        for name in _QUANTITIES:
            _positive(f"{where}: {name}", getattr(self, name))
        check(
            isinstance(self.domain_size, int) and self.domain_size >= 1,
            f"{where}: domain_size",
            self.domain_size,
            "an integer >= 1",
        )
        _positive(f"{where}: tdp_watts", self.tdp_watts)
        check(
            isinstance(self.compute_units, int) and self.compute_units >= 0,
            f"{where}: compute_units",
            self.compute_units,
            "an integer >= 0 (0 = unknown)",
        )
        for kernel, value in self.kernel_efficiency.items():
            check(0 < value <= 1, f"{where}: kernel_efficiency.{kernel}", value, "0 < e <= 1")

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


def _positive(field_name: str, value: object) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    check(ok and math.isfinite(value) and value > 0, field_name, value, "a finite number > 0")


def chip_from_dict(chip_id: str, table: dict[str, Any]) -> Chip:
    """A chip from a TOML-style table (numbers in SI or unit strings); unknown keys are errors."""
    known = set(Chip.__dataclass_fields__) - {"id"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise SpecError(f"chip {chip_id!r}: unknown key(s) {unknown}; allowed: {sorted(known)}")
    optional = {"kernel_efficiency", "sources", "notes", "compute_units"}
    missing = sorted(known - set(table) - optional)
    if missing:
        raise SpecError(f"chip {chip_id!r}: missing key(s) {missing}")
    values = dict(table)
    for name, parse in _QUANTITIES.items():
        values[name] = parse(f"chip {chip_id!r}: {name}", values[name])
    values["peak_flops"] = MappingProxyType(
        {
            p: parse_flops(f"chip {chip_id!r}: peak_flops.{p}", v)
            for p, v in dict(values["peak_flops"]).items()
        }
    )
    for name in ("kernel_efficiency", "sources"):
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
        return chip_from_dict(str(table.pop("id", "custom")), table)
    if chip not in catalog():
        raise SpecError(f"chip = {chip!r} is not in the catalog; known: {', '.join(catalog())}")
    return catalog()[chip]
