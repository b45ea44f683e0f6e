"""`podsim collective`: time, algbw and busbw of one collective, nccl-tests style."""

import argparse
import math
import re
from typing import Any

from rich.console import Console
from rich.table import Table

from podsim.errors import SpecError
from podsim.front.cli.output import print_json
from podsim.front.collective import collective
from podsim.specs.chips import get_chip
from podsim.specs.clusters import Cluster, make_cluster, preset_cluster
from podsim.units import format_size, parse_size

_NCCL_SIZE = re.compile(r"^(\d+)([KMGT])$")
# Points of a MIN:MAX:FACTOR range: nccl-tests' 8:8G:2 has 31; each point is a simulation.
MAX_SIZE_POINTS = 1000


def parse_cli_size(text: str) -> float:
    """A size as nccl-tests writes them ("8", "128K", "1G": binary) or with units ("1 GiB"):
    a whole number of bytes >= 1."""
    match = _NCCL_SIZE.match(text.strip())
    if match:
        size = float(int(match.group(1)) * 1024 ** ("KMGT".index(match.group(2)) + 1))
    else:
        size = parse_size("--size", text)
    if not (math.isfinite(size) and size >= 1 and size == int(size)):
        raise SpecError(f"--size = {text!r} is not allowed: a whole number of bytes >= 1")
    return size


def parse_sizes(text: str) -> list[float]:
    """One size, or MIN:MAX[:FACTOR] multiplying by FACTOR (default 2) as nccl-tests -b/-e/-f;
    each size rounded down to whole bytes (repeated sizes once)."""
    parts = text.split(":")
    if len(parts) == 1:
        return [parse_cli_size(text)]
    if len(parts) > 3:
        raise SpecError(f"--size = {text!r} is not allowed: SIZE or MIN:MAX[:FACTOR]")
    low, high = parse_cli_size(parts[0]), parse_cli_size(parts[1])
    try:
        factor = float(parts[2]) if len(parts) == 3 else 2.0
    except ValueError:
        factor = math.nan
    if not (math.isfinite(factor) and factor > 1):
        raise SpecError(
            f"--size = {text!r} is not allowed: FACTOR {parts[2].strip()!r} is not a number > 1"
        )
    if not low <= high:
        raise SpecError(f"--size = {text!r} is not allowed: need MIN <= MAX")
    # Count the points before making them: a factor of 1.0000001 would make millions.
    points = math.floor(math.log(high * (1 + 1e-12) / low) / math.log(factor)) + 1
    if points > MAX_SIZE_POINTS:
        raise SpecError(
            f"--size = {text!r} gives about {points:,} sizes; at most {MAX_SIZE_POINTS:,}: "
            "use a larger FACTOR"
        )
    sizes = [low]
    while sizes[-1] * factor <= high * (1 + 1e-12):
        sizes.append(sizes[-1] * factor)
    whole = [float(math.floor(s)) for s in sizes]
    return [s for i, s in enumerate(whole) if i == 0 or s != whole[i - 1]]


def _cluster(args: argparse.Namespace) -> Cluster:
    if args.cluster and args.chip:
        raise SpecError("give --chip or --cluster, not both")
    if args.cluster:
        return preset_cluster(args.cluster, args.devices)
    if not args.chip:
        raise SpecError("give --chip ID (`podsim chips`) or --cluster PRESET (`podsim clusters`)")
    chip = get_chip(args.chip)
    return make_cluster(chip, chip.domain_size if args.devices is None else args.devices)


def cmd_collective(args: argparse.Namespace, console: Console) -> None:
    sizes = parse_sizes(args.size)
    cluster = _cluster(args)
    if cluster.devices < 2:
        raise SpecError(
            f"--devices = {cluster.devices} is not allowed: a collective needs at least 2 "
            "devices (one device moves no data)"
        )
    results = [
        collective(cluster, args.op, size, args.algorithm, args.network, args.protocol)
        for size in sizes
    ]
    if args.json:
        where = {"chip": cluster.chip.id, "cluster": cluster.name or None}
        print_json({**collective_json([r.to_dict() for r in results]), **where})
        return
    title = (
        f"{args.op} on {cluster.devices} x {cluster.chip.id}"
        f" ({cluster.name or 'custom'}, {args.network} network)"
    )
    table = Table(title=title)
    for column in ("size", "time (us)", "algbw (GB/s)", "busbw (GB/s)", "algorithm", "protocol"):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(
            format_size(r.size_bytes),
            f"{r.time_s * 1e6:,.2f}",
            f"{r.algbw_bytes_per_s / 1e9:,.2f}",
            f"{r.busbw_bytes_per_s / 1e9:,.2f}",
            r.algorithm,
            r.protocol,
        )
    console.print(table)


def _header(row: dict[str, Any]) -> dict[str, Any]:
    return {key: row[key] for key in ("op", "devices", "network")}


def collective_json(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One shape for one size and for a range: "results" always lists one object per size,
    and op, devices and network are at the top level; for one size, every key of its result
    (the contract keys: size_bytes, algorithm, time_s, algbw_bytes_per_s, ...) is at the top
    level too, so `podsim collective ... --json | jq .time_s` keeps working. The verb adds
    `chip` and `cluster` (the preset's name, null for a custom one) at the top level."""
    top = rows[0] if len(rows) == 1 else _header(rows[0])
    return {**top, "results": rows}
