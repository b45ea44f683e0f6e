"""podsim: simulate clusters of AI accelerators running collectives and training large models."""

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from podsim.chips import catalog, get_chip
from podsim.clusters import Cluster, make_cluster, preset_cluster, presets
from podsim.collectives import OPS, collective
from podsim.engine import NETWORK_MODES
from podsim.errors import PodsimError, SpecError
from podsim.front import builtin_scenarios, compare, resolve_scenario, training_step
from podsim.models import catalog as model_catalog
from podsim.noise import NoiseModel
from podsim.program import Algorithm
from podsim.sweep import scale_sweep
from podsim.trace import write_chrome_trace
from podsim.units import format_size, parse_size
from podsim.validation import case_names, mape, run_case
from podsim.version import __version__

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


def parse_scale(text: str) -> list[int]:
    """MIN:MAX device counts, doubling (MIN:MAX:FACTOR for another factor), or N1,N2,..."""
    try:
        if "," in text:
            return [int(part) for part in text.split(",")]
        parts = [int(float(part)) for part in text.split(":")]
    except ValueError:
        message = f"--scale = {text!r} is not allowed: MIN:MAX[:FACTOR] or N1,N2,..."
        raise SpecError(message) from None
    low, high = parts[0], parts[1] if len(parts) > 1 else parts[0]
    factor = parts[2] if len(parts) > 2 else 2
    if not (0 < low <= high) or factor < 2:
        raise SpecError(f"--scale = {text!r} is not allowed: need 0 < MIN <= MAX, FACTOR >= 2")
    sizes = [low]
    while sizes[-1] * factor <= high:
        sizes.append(sizes[-1] * factor)
    return sizes


def cmd_scale(args: argparse.Namespace, console: Console) -> None:
    sizes = parse_scale(args.scale)
    if args.json:
        print(
            json.dumps(
                {
                    "scenario": str(args.scenario),
                    "rows": scale_sweep(args.scenario, sizes, args.network),
                }
            )
        )
        return
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("cluster sizes", total=len(sizes))
        rows = scale_sweep(
            args.scenario, sizes, args.network, lambda done: bar.update(task, completed=done)
        )
    title = f"{args.scenario}: weak scaling ({args.network} network)"
    columns = [
        ("devices", "devices", "{:,}"),
        ("step time (s)", "step_time_s", "{:,.3f}"),
        ("MFU", "mfu", "{:.1%}"),
        ("time to train (days)", "time_to_train_s", "days"),
        ("p50 with failures (days)", "time_to_train_p50_s", "days"),
        ("p90 (days)", "time_to_train_p90_s", "days"),
        ("goodput", "goodput", "{:.1%}"),
        ("interruptions", "interruptions", "{:,.0f}"),
        ("checkpoint every (min)", "checkpoint_interval_s", "min"),
    ]
    console.print(_rows_table(title, columns, rows))


def _rows_table(title: str, columns: list[tuple[str, str, str]], rows: list[dict]) -> Table:
    """A table of result rows: (heading, key, format) per column; columns no row has are
    left out."""
    table = Table(title=title)
    shown = [c for c in columns if any(c[1] in row for row in rows)]
    for heading, _, _ in shown:
        table.add_column(heading, justify="right")
    for row in rows:
        table.add_row(*[_cell(row.get(key), fmt) for _, key, fmt in shown])
    return table


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    if fmt == "days":
        return f"{value / 86400:,.1f}"
    if fmt == "min":
        return f"{value / 60:,.1f}"
    if fmt == "gb":
        return f"{value / 1e9:,.1f}"
    return fmt.format(value)


def cmd_train(args: argparse.Namespace, console: Console) -> None:
    if args.scale:
        cmd_scale(args, console)
        return
    scenario = resolve_scenario(args.scenario)
    steps = NoiseModel.from_table(scenario.noise).steps if scenario.noise is not None else 0
    if steps and not args.json:  # a Monte Carlo over steps: show its progress
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("simulating noisy steps", total=steps)
            run = training_step(
                scenario, args.network, args.strict, lambda done: bar.update(task, completed=done)
            )
    else:
        run = training_step(scenario, args.network, args.strict)
    r = run.result
    if args.trace:
        meta = {"scenario": str(args.scenario), "step_time_s": r.step_time_s}
        write_chrome_trace(args.trace, run.lowered.program, run.timeline, run.op_names(), meta)
    if args.json:
        print(json.dumps(r.to_dict()))
        return
    p = r.plan
    split = f"tp {p['tp']} pp {p['pp']} dp {p['dp']} ep {p['ep']} cp {p['cp']}"
    table = Table(
        title=f"{args.scenario}: one step on {r.devices} devices ({split}, "
        f"{p['schedule']} v={r.virtual_stages}, {r.network} network)"
    )
    table.add_column("quantity")
    table.add_column("value", justify="right")
    rows = [
        (
            "step time" + (f" (mean of {r.steps_simulated})" if steps else ""),
            f"{r.step_time_s:,.3f} s",
        ),
        *(
            [("step time p50 / p99", f"{r.step_time_p50_s:,.3f} / {r.step_time_p99_s:,.3f} s")]
            if steps
            else []
        ),
        ("tokens per second", f"{r.tokens_per_s:,.0f}"),
        ("MFU / HFU (dense BF16 peak)", f"{r.mfu:.1%} / {r.hfu:.1%}"),
        ("model TFLOP/s per device", f"{r.model_tflops_per_device:,.1f}"),
        (
            "memory per device",
            f"{r.memory_per_device_bytes / 1e9:,.1f} GB"
            + ("" if r.fits_in_memory else "  (does not fit)"),
        ),
    ]
    for name, value in vars(r.breakdown).items():
        rows.append(
            (
                name.removesuffix("_s").replace("_", " "),
                f"{value:,.3f} s  ({value / r.step_time_s:.0%})",
            )
        )
    if r.time_to_train_s:
        rows.append(("time to train (no failures)", f"{r.time_to_train_s / 86400:,.1f} days"))
        rows.append(("device-hours", f"{r.device_hours:,.0f}"))
    if r.long_run is not None:  # [failures]: the whole run
        lr = r.long_run
        rows += [
            ("goodput (useful / wall time)", f"{lr['goodput']:.1%}"),
            ("interruptions (mean)", f"{lr['interruptions']:,.1f}"),
            ("checkpoint every", f"{lr['checkpoint_interval_s'] / 60:,.1f} min"),
            (
                "time to train with failures p50 / p90",
                " / ".join(
                    _cell(lr.get(k), "days") for k in ("time_to_train_p50_s", "time_to_train_p90_s")
                )
                + " days",
            ),
        ]
        if "deadline_probability" in lr:
            rows.append(("P(finish by the deadline)", f"{lr['deadline_probability']:.1%}"))
    rows.append(("ops simulated", f"{r.ops:,}"))
    for row in rows:
        table.add_row(*row)
    console.print(table)


def cmd_models(args: argparse.Namespace, console: Console) -> None:
    models = model_catalog()
    if args.json:
        print(json.dumps({mid: m.to_dict() for mid, m in models.items()}))
        return
    table = Table(title="models")
    for column in (
        "id",
        "layers",
        "hidden",
        "heads / kv",
        "ffn",
        "experts (top-k)",
        "params (B)",
        "active (B)",
    ):
        table.add_column(column, justify="right")
    for mid, m in models.items():
        experts = f"{m.experts} ({m.top_k})" if m.experts else "-"
        table.add_row(
            mid,
            str(m.layers),
            str(m.hidden),
            f"{m.heads} / {m.kv_heads}",
            str(m.ffn_hidden),
            experts,
            f"{m.params() / 1e9:,.1f}",
            f"{m.active_params() / 1e9:,.1f}",
        )
    console.print(table)


def cmd_scenarios(args: argparse.Namespace, console: Console) -> None:
    table = Table(title="built-in scenarios (podsim train NAME)")
    table.add_column("name")
    table.add_column("what")
    for name, text in builtin_scenarios().items():
        table.add_row(name, text.splitlines()[0].lstrip("# "))
    console.print(table)


def cmd_validate(args: argparse.Namespace, console: Console) -> None:
    cases = []
    with console.status("simulating published runs...") if not args.json else nullcontext():
        cases = [run_case(name) for name in case_names()]
    if args.json:
        rows = [{**vars(c), "error": c.error} for c in cases]
        print(json.dumps({"cases": rows, "mape": mape(cases)}))
        return
    table = Table(title="published results against podsim")
    for column in ("case", "metric", "published", "predicted", "error"):
        table.add_column(column, justify="right")
    for c in cases:
        table.add_row(
            c.name, c.metric, f"{c.published:,.4g}", f"{c.predicted:,.4g}", f"{c.error:+.1%}"
        )
    console.print(table)
    console.print(f"mean absolute percentage error: {mape(cases):.1%} over {len(cases)} cases")


def cmd_compare(args: argparse.Namespace, console: Console) -> None:
    chips = [c.strip() for c in args.chips.split(",") if c.strip()]
    if not chips:
        raise SpecError("--chips is empty: give catalog ids, e.g. h800-sxm,ascend-910c")
    rows = compare(args.scenario, chips, args.network)
    if args.json:
        print(json.dumps({"scenario": str(args.scenario), "rows": rows}))
        return
    title = f"{args.scenario} on each chip ({args.network} network)"
    columns = [
        ("chip", "chip", "{}"),
        ("step time (s)", "step_time_s", "{:,.3f}"),
        ("MFU", "mfu", "{:.1%}"),
        ("tokens/s", "tokens_per_s", "{:,.0f}"),
        ("memory (GB)", "memory_per_device_bytes", "gb"),
        ("exposed comm (s)", "exposed_comm_s", "{:,.3f}"),
        ("time to train (days)", "time_to_train_s", "days"),
        ("p50 with failures (days)", "time_to_train_p50_s", "days"),
        ("goodput", "goodput", "{:.1%}"),
    ]
    for row in rows:
        row["exposed_comm_s"] = row["breakdown"]["exposed_comm_s"]
    console.print(_rows_table(title, columns, rows))


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
    train = verbs.add_parser("train", help="one training step of a scenario")
    train.add_argument("scenario", help="a scenario file, or a built-in name (podsim scenarios)")
    train.add_argument("--network", default="analytical", choices=NETWORK_MODES)
    train.add_argument("--strict", action="store_true", help="fail if it does not fit")
    train.add_argument("--trace", help="write a Chrome/Perfetto trace (.json or .json.gz)")
    train.add_argument("--json", action="store_true", help="one JSON object on stdout (SI units)")
    train.add_argument("--scale", help="sweep cluster sizes, e.g. 1024:65536 (weak scaling)")
    train.set_defaults(run=cmd_train)
    for verb, runner, text in (
        ("models", cmd_models, "the model catalog, with sources"),
        ("validate", cmd_validate, "published runs against podsim"),
    ):
        sub = verbs.add_parser(verb, help=text)
        sub.add_argument("--json", action="store_true")
        sub.set_defaults(run=runner)
    verbs.add_parser("scenarios", help="built-in scenarios").set_defaults(run=cmd_scenarios)
    comp = verbs.add_parser("compare", help="the same training scenario on several chips")
    comp.add_argument("scenario", help="a scenario file, or a built-in name")
    comp.add_argument("--chips", required=True, help="catalog ids, comma-separated")
    comp.add_argument("--network", default="analytical", choices=NETWORK_MODES)
    comp.add_argument("--json", action="store_true")
    comp.set_defaults(run=cmd_compare)
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
