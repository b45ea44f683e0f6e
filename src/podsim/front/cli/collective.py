"""`podsim collective`: time, algbw and busbw of one collective, nccl-tests style."""

import argparse
import json
import re
from typing import Any

from rich.console import Console
from rich.table import Table

from podsim.errors import SpecError
from podsim.front.collective import collective
from podsim.specs.chips import get_chip
from podsim.specs.clusters import Cluster, make_cluster, preset_cluster
from podsim.units import format_size, parse_size

_NCCL_SIZE = re.compile(r"^(\d+)([KMGT])$")


def parse_cli_size(text: str) -> float:
    """A size as nccl-tests writes them ("8", "128K", "1G": binary) or with units ("1 GiB")."""
    match = _NCCL_SIZE.match(text.strip())
    if match:
        return float(int(match.group(1)) * 1024 ** ("KMGT".index(match.group(2)) + 1))
    return parse_size("--size", text)


def parse_sizes(text: str) -> list[float]:
    """One size, or MIN:MAX[:FACTOR] multiplying by FACTOR (default 2) as nccl-tests -b/-e/-f."""
    parts = text.split(":")
    if len(parts) == 1:
        return [parse_cli_size(text)]
    if len(parts) > 3:
        raise SpecError(f"--size = {text!r} is not allowed: SIZE or MIN:MAX[:FACTOR]")
    low, high = parse_cli_size(parts[0]), parse_cli_size(parts[1])
    factor = float(parts[2]) if len(parts) == 3 else 2.0
    if not (0 < low <= high) or factor <= 1:
        raise SpecError(f"--size = {text!r} is not allowed: need 0 < MIN <= MAX and FACTOR > 1")
    sizes = [low]
    while sizes[-1] * factor <= high * (1 + 1e-12):
        sizes.append(sizes[-1] * factor)
    return sizes


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
    cluster = _cluster(args)
    results = [
        collective(cluster, args.op, size, args.algorithm, args.network)
        for size in parse_sizes(args.size)
    ]
    if args.json:
        rows = [r.to_dict() for r in results]
        out = rows[0] if len(rows) == 1 else {**_header(rows[0]), "results": rows}
        print(json.dumps(out))
        return
    title = (
        f"{args.op} on {cluster.devices} x {cluster.chip.id}"
        f" ({cluster.name or 'custom'}, {args.network} network)"
    )
    table = Table(title=title)
    for column in ("size", "time (us)", "algbw (GB/s)", "busbw (GB/s)", "algorithm"):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(
            format_size(r.size_bytes),
            f"{r.time_s * 1e6:,.2f}",
            f"{r.algbw_bytes_per_s / 1e9:,.2f}",
            f"{r.busbw_bytes_per_s / 1e9:,.2f}",
            r.algorithm,
        )
    console.print(table)


def _header(row: dict[str, Any]) -> dict[str, Any]:
    return {key: row[key] for key in ("op", "devices", "network")}
