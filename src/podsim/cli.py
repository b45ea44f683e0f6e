"""The `podsim` command: one verb per question (docs: README.md, DESIGN's interface contract)."""

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from podsim import __version__
from podsim.chips import catalog, get_chip
from podsim.clusters import Cluster, make_cluster, preset_cluster, presets
from podsim.collectives import OPS, collective
from podsim.engine import NETWORK_MODES
from podsim.errors import PodsimError, SpecError
from podsim.program import Algorithm
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


def cmd_chips(args: argparse.Namespace, console: Console) -> None:
    chips = catalog()
    if args.json:
        print(json.dumps({cid: chip.to_dict() for cid, chip in chips.items()}))
        return
    table = Table(title="chips (dense peaks; bandwidths per direction)")
    for column in (
        "id",
        "bf16 TFLOP/s",
        "fp8 TFLOP/s",
        "HBM (GB)",
        "HBM (TB/s)",
        "scale-up (GB/s)",
        "domain",
        "scale-out (Gb/s)",
        "TDP (W)",
    ):
        table.add_column(column, justify="right")
    for cid, c in chips.items():
        fp8 = c.peak_flops.get("fp8")
        table.add_row(
            cid,
            f"{c.peak('bf16') / 1e12:,.0f}",
            f"{fp8 / 1e12:,.0f}" if fp8 else "-",
            f"{c.hbm_bytes / 1e9:,.0f}",
            f"{c.hbm_bandwidth / 1e12:.2f}",
            f"{c.scale_up_bandwidth / 1e9:,.0f}",
            str(c.domain_size),
            f"{c.scale_out_bandwidth * 8 / 1e9:,.0f}",
            f"{c.tdp_watts:,.0f}",
        )
    console.print(table)
    console.print("Sources: `podsim chips --json` lists the source of every value.")


def cmd_clusters(args: argparse.Namespace, console: Console) -> None:
    if args.json:
        print(
            json.dumps(
                {
                    pid: {**preset_cluster(pid).to_dict(), **dict(table)}
                    for pid, table in presets().items()
                }
            )
        )
        return
    table = Table(title="cluster presets")
    for column in ("id", "chip", "devices", "domain", "pod", "oversub.", "description"):
        table.add_column(column)
    for pid, raw in presets().items():
        c = preset_cluster(pid)
        table.add_row(
            pid,
            c.chip.id,
            str(c.devices),
            str(c.domain_size),
            str(c.pod_size),
            f"{c.oversubscription:g}",
            str(raw.get("description", "")),
        )
    console.print(table)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="podsim", description=__doc__)
    parser.add_argument("--version", action="version", version=f"podsim {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True)
    chips = verbs.add_parser("chips", help="the chip catalog, with sources")
    chips.add_argument("--json", action="store_true")
    chips.set_defaults(run=cmd_chips)
    clusters = verbs.add_parser("clusters", help="cluster presets")
    clusters.add_argument("--json", action="store_true")
    clusters.set_defaults(run=cmd_clusters)
    coll = verbs.add_parser("collective", help="time, algbw and busbw of one collective")
    coll.add_argument("--chip", help="catalog chip id (a single scale-up domain unless --devices)")
    coll.add_argument("--cluster", help="cluster preset id (`podsim clusters`)")
    coll.add_argument("--devices", type=int, help="number of devices (ranks)")
    coll.add_argument("--op", required=True, choices=OPS)
    coll.add_argument(
        "--size", required=True, help="bytes: 8, 128K, 1G (binary), '1 GiB', or MIN:MAX[:FACTOR]"
    )
    coll.add_argument("--algorithm", default="auto", choices=[a.label for a in Algorithm])
    coll.add_argument("--network", default="analytical", choices=NETWORK_MODES)
    coll.add_argument("--json", action="store_true", help="one JSON object on stdout (SI units)")
    coll.set_defaults(run=cmd_collective)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace, Console], None] = args.run
    try:
        # A pipe gets wide tables rather than rich's 80-column default.
        run(args, Console() if sys.stdout.isatty() else Console(width=140))
    except PodsimError as error:
        print(f"podsim: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
