"""Quantities as numbers (SI base units) or unit strings: "2 us", "80 GB", "400 Gb/s".

Decimal prefixes are powers of 1000, binary prefixes (KiB, MiB, ...) powers of 1024.
Bandwidths in bit/s ("Gb/s", "Gbit/s") are divided by 8 to give bytes/s.
"""

import math
import re

from podsim.errors import SpecError, shown

_TIME = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # U+00B5 MICRO SIGN
    "μs": 1e-6,  # U+03BC GREEK SMALL LETTER MU: the same prefix, as many keyboards type it
    "ms": 1e-3,
    "s": 1.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_DECIMAL = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_BINARY = {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50}
_PREFIXES = {**_DECIMAL, **_BINARY}
_NUMBER = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")


def _split(field: str, text: str) -> tuple[float, str]:
    match = _NUMBER.match(text)
    if not match:
        raise SpecError(f"{field} = {shown(text)} is not a number with a unit")
    return float(match.group(1)), match.group(2)


def _with_prefix(field: str, text: str, unit: str, base: dict[str, float], kind: str) -> float:
    number, suffix = _split(field, text)
    if not suffix:
        return number
    for name, factor in base.items():
        if suffix.endswith(name) and suffix[: -len(name)] in _PREFIXES:
            return number * _PREFIXES[suffix[: -len(name)]] * factor
    raise SpecError(f"{field} = {shown(text)}: unknown {kind} unit {shown(suffix)}; use {unit}")


def _parse(field: str, value: object, parse_text, allowed: str) -> float:
    if isinstance(value, bool):
        raise SpecError(f"{field} = {shown(value)} is not a quantity; {allowed}")
    if isinstance(value, int | float):
        try:
            result = float(value)
        except OverflowError:  # an integer beyond float range
            result = math.inf
    elif isinstance(value, str):
        result = parse_text(field, value)
    else:
        raise SpecError(f"{field} = {shown(value)} is not a quantity; {allowed}")
    if not math.isfinite(result):
        raise SpecError(f"{field} = {shown(value)} is not finite")
    return result


def _time_text(field: str, text: str) -> float:
    number, suffix = _split(field, text)
    suffix = suffix or "s"
    if suffix not in _TIME:
        raise SpecError(
            f"{field} = {shown(text)}: unknown time unit {shown(suffix)}; use one of "
            + ", ".join(_TIME)
        )
    return number * _TIME[suffix]


def _size_text(field: str, text: str) -> float:
    return _with_prefix(field, text, "B, kB, MB, GB, TB or KiB, MiB, GiB, TiB", {"B": 1.0}, "size")


def _bandwidth_text(field: str, text: str) -> float:
    units = {"B/s": 1.0, "bit/s": 0.125, "b/s": 0.125, "bps": 0.125}
    return _with_prefix(field, text, "B/s or bit/s with a prefix (GB/s, Gb/s)", units, "bandwidth")


def _flops_text(field: str, text: str) -> float:
    return _with_prefix(
        field,
        text,
        "FLOP/s with a prefix (TFLOP/s)",
        {"FLOP/s": 1.0, "FLOPS": 1.0, "OP/s": 1.0, "OPS": 1.0},
        "compute",
    )


def parse_time(field: str, value: object) -> float:
    """Seconds from a number (s) or a string such as "2 us", "10 min", "50000 h"."""
    return _parse(field, value, _time_text, "give seconds or a string like '2 us'")


def parse_size(field: str, value: object) -> float:
    """Bytes from a number (B) or a string such as "80 GB", "1 GiB"."""
    return _parse(field, value, _size_text, "give bytes or a string like '80 GB'")


def parse_bandwidth(field: str, value: object) -> float:
    """Bytes per second from a number (B/s) or a string such as "400 GB/s", "400 Gb/s"."""
    return _parse(field, value, _bandwidth_text, "give B/s or a string like '400 Gb/s'")


def parse_flops(field: str, value: object) -> float:
    """FLOP per second from a number or a string such as "989 TFLOP/s"."""
    return _parse(field, value, _flops_text, "give FLOP/s or a string like '989 TFLOP/s'")


def format_size(nbytes: float) -> str:
    """A short binary-prefixed size, as nccl-tests prints them: 8 B, 1 KiB, 1 GiB."""
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= factor:
            return f"{nbytes / factor:g} {unit}"
    return f"{nbytes:g} B"
