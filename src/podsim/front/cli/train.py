"""`podsim train`: one training step of a scenario, or a sweep of cluster sizes."""

import argparse
import math

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from podsim.engine.noise import NoiseModel
from podsim.errors import SpecError
from podsim.front.api import resolve_scenario, training_step
from podsim.front.cli.output import print_json
from podsim.front.overrides import with_overrides
from podsim.front.scenario import Scenario
from podsim.front.sweep import scale_sweep
from podsim.lowering.autotune import virtual_stage_options
from podsim.lowering.training import LoweredStep, estimate_stage_ops
from podsim.plans.stack import stack_label
from podsim.results.tables import cell, rows_table
from podsim.results.trace import check_trace_events, check_trace_path, write_chrome_trace

# Cluster sizes of one --scale sweep (doubling from 1 to 2**31 devices is 32).
MAX_SCALE_POINTS = 64


def _device_count(text: str, whole: str) -> int:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 1 and value == int(value)):
        raise SpecError(
            f"--scale = {whole!r} is not allowed: {text.strip()!r} is not a device count "
            "(an integer >= 1); write MIN:MAX[:FACTOR] or N1,N2,..."
        )
    return int(value)


def parse_scale(text: str) -> list[int]:
    """MIN:MAX device counts, doubling (MIN:MAX:FACTOR for another factor), or N1,N2,..."""
    if "," in text:
        sizes = [_device_count(part, text) for part in text.split(",")]
    else:
        parts = [_device_count(part, text) for part in text.split(":")]
        if len(parts) > 3:
            raise SpecError(f"--scale = {text!r} is not allowed: MIN:MAX[:FACTOR] or N1,N2,...")
        low, high = parts[0], parts[1] if len(parts) > 1 else parts[0]
        factor = parts[2] if len(parts) > 2 else 2
        if not (0 < low <= high) or factor < 2:
            raise SpecError(f"--scale = {text!r} is not allowed: need 0 < MIN <= MAX, FACTOR >= 2")
        points = 1
        while low * factor**points <= high and points <= MAX_SCALE_POINTS:
            points += 1
        sizes = [low * factor**k for k in range(points)]
    if len(sizes) > MAX_SCALE_POINTS:
        raise SpecError(
            f"--scale = {text!r} gives {len(sizes) if ',' in text else 'over'} "
            f"{MAX_SCALE_POINTS} cluster sizes; at most {MAX_SCALE_POINTS}"
        )
    return sizes


def parse_trace_ranks(text: str, devices: int) -> range:
    """--trace-ranks A:B (ranks A to B - 1) or A (one rank)."""
    parts = text.split(":")
    try:
        bounds = [int(part) for part in parts]
    except ValueError:
        bounds = []
    if len(bounds) == 1:
        bounds.append(bounds[0] + 1)
    if len(bounds) != 2 or not (0 <= bounds[0] < bounds[1] <= devices):
        raise SpecError(
            f"--trace-ranks = {text!r} is not allowed: A:B with 0 <= A < B <= {devices:,} "
            "(the ranks A to B - 1), or one rank"
        )
    return range(bounds[0], bounds[1])


def cmd_scale(args: argparse.Namespace, console: Console) -> None:
    if args.trace is not None or args.trace_ranks is not None:
        raise SpecError(
            "--trace traces one step: it cannot be combined with --scale (run the scenario "
            "at one size, e.g. with cluster.devices set, to trace it)"
        )
    sizes = parse_scale(args.scale)
    scenario = chosen_scenario(args)
    cap = args.max_global_batch
    if args.json:
        rows = scale_sweep(scenario, sizes, args.network, strict=args.strict, max_global_batch=cap)
        print_json({"scenario": str(args.scenario), "max_global_batch": cap, "rows": rows})
        return
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("cluster sizes", total=len(sizes))
        rows = scale_sweep(
            scenario,
            sizes,
            args.network,
            lambda done: bar.update(task, completed=done),
            strict=args.strict,
            max_global_batch=cap,
        )
    how = "weak scaling"
    if cap is not None:
        how = f"weak scaling to a global batch of {cap:,}, then strong"
    title = f"{args.scenario}: {how} ({args.network} network)"
    for row in rows:
        row["fits"] = "yes" if row["fits_in_memory"] else "NO"
    columns = [
        ("devices", "devices", "{:,}"),
        ("global batch", "global_batch", "{:,}"),
        ("fits in memory", "fits", "{}"),
        ("step time (s)", "step_time_s", "{:,.3f}"),
        ("MFU (vs dense BF16 peak)", "mfu", "{:.1%}"),
        ("time to train (days)", "time_to_train_s", "days"),
        ("p50 with failures (days)", "time_to_train_p50_s", "days"),
        ("p90 (days)", "time_to_train_p90_s", "days"),
        ("goodput", "goodput", "{:.1%}"),
        ("energy to train (MWh)", "energy_to_train_mwh", "{:,.0f}"),
        ("cost to train (USD)", "cost_to_train_usd", "{:,.0f}"),
        ("interruptions", "interruptions", "{:,.0f}"),
        ("checkpoint every (min)", "checkpoint_interval_s", "min"),
    ]
    console.print(rows_table(title, columns, rows))


def _traced_ops(stage_ops: list[int], stage_size: int, ranks: range) -> int:
    """Ops of the ranks in `ranks` when stage s's ranks run stage_ops[s] ops each."""
    total = 0
    for stage, ops in enumerate(stage_ops):
        first, last = stage * stage_size, (stage + 1) * stage_size
        total += ops * max(0, min(last, ranks.stop) - max(first, ranks.start))
    return total


def chosen_scenario(args: argparse.Namespace) -> Scenario:
    """The scenario named on the command line, with its --set overrides."""
    if args.sets:
        return with_overrides(args.scenario, args.sets)
    return resolve_scenario(args.scenario)


def cmd_train(args: argparse.Namespace, console: Console) -> None:
    if args.max_global_batch is not None and args.scale is None:
        raise SpecError(
            "--max-global-batch goes with --scale (set train.global_batch for one step)"
        )
    if args.scale is not None:
        cmd_scale(args, console)
        return
    if args.trace_ranks is not None and args.trace is None:
        raise SpecError("--trace-ranks needs --trace FILE")
    if args.trace is not None:
        check_trace_path(args.trace)  # before any work
    scenario = chosen_scenario(args)
    before_run = None
    if args.trace is not None and scenario.model is not None and scenario.train is not None:
        plan = scenario.train
        ranks = range(plan.devices)
        if args.trace_ranks is not None:
            ranks = parse_trace_ranks(args.trace_ranks, plan.devices)
        stage_size = plan.tp * plan.cp * plan.dp
        # Up front: the smallest of the candidate steps (a lower bound on what is traced).
        options = virtual_stage_options(scenario.model, plan)
        check_trace_events(
            min(_traced_ops(estimate_stage_ops(plan, v), stage_size, ranks) for v in options)
        )

        def before_run(lowered: LoweredStep) -> None:  # the step as lowered, not yet run
            lengths = [len(t.ops) for t in lowered.templates]
            check_trace_events(_traced_ops(lengths, lowered.layout.stage_size, ranks))

    steps = NoiseModel.from_table(scenario.noise).steps if scenario.noise is not None else 0
    simulation = "full" if args.trace else "auto"  # a trace shows every rank
    if steps and not args.json:  # a Monte Carlo over steps: show its progress
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("simulating noisy steps", total=steps)
            run = training_step(
                scenario,
                args.network,
                args.strict,
                lambda done: bar.update(task, completed=done),
                simulation,
                before_run=before_run,
            )
    else:
        run = training_step(
            scenario, args.network, args.strict, simulation=simulation, before_run=before_run
        )
    r = run.result
    if args.trace is not None:
        meta = {"scenario": str(args.scenario), "step_time_s": r.step_time_s}
        ranks = None if args.trace_ranks is None else parse_trace_ranks(args.trace_ranks, r.devices)
        write_chrome_trace(
            args.trace, run.lowered.program, run.timeline, run.op_names(), meta, ranks
        )
    if args.json:
        print_json(r.to_dict())
        return
    console.print(_step_table(args, r, steps))


def _step_table(args: argparse.Namespace, r, steps: int) -> Table:
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
        ("MFU / HFU (vs dense BF16 peak)", f"{r.mfu:.1%} / {r.hfu:.1%}"),
        ("software stack", stack_label(r.stack)),
    ]
    if r.gemm_precision != r.mfu_peak_precision:  # e.g. FP8 GEMMs
        name = r.gemm_precision.upper()
        rows.append(
            (
                f"MFU / HFU (vs dense {name} peak)",
                f"{r.mfu_precision_peak:.1%} / {r.hfu_precision_peak:.1%}",
            )
        )
    rows += [
        ("kernel efficiencies", r.efficiencies),
        ("model TFLOP/s per device", f"{r.model_tflops_per_device:,.1f}"),
        (
            "memory per device",
            f"{r.memory_per_device_bytes / 1e9:,.1f} GB"
            + ("" if r.fits_in_memory else "  (does not fit)"),
        ),
    ]
    parts = dict(vars(r.breakdown))
    by_kind = parts.pop("exposed_comm_by_kind_s", {})
    parts.update({f"  exposed {kind}_s": value for kind, value in by_kind.items() if value > 0})
    for name, value in parts.items():
        rows.append(
            (
                name.removesuffix("_s").replace("_", " "),
                f"{value:,.3f} s  ({value / r.step_time_s:.0%})",
            )
        )
    if r.time_to_train_s:
        rows.append(("time to train (no failures)", f"{r.time_to_train_s / 86400:,.1f} days"))
        rows.append(("device-hours", f"{r.device_hours:,.0f}"))
    rows.append(
        (
            "power per device (all-in) x PUE",
            f"{r.power_per_device_w:,.0f} W x {r.pue:g}",
        )
    )
    rows.append(("energy per step", f"{r.energy_per_step_j / 3.6e6:,.2f} kWh"))
    if r.energy_to_train_mwh is not None:
        rows.append(("energy to train", f"{r.energy_to_train_mwh:,.0f} MWh"))
        rows.append(
            (
                "cost to train",
                f"{r.cost_to_train_usd:,.0f} USD at {r.price_per_device_hour:g} USD/device-hour",
            )
        )
    if r.long_run is not None:  # [failures]: the whole run
        lr = r.long_run
        rows += [
            ("goodput (useful / wall time)", f"{lr['goodput']:.1%}"),
            ("interruptions (mean)", f"{lr['interruptions']:,.1f}"),
            ("checkpoint every", f"{lr['checkpoint_interval_s'] / 60:,.1f} min"),
            (
                "time to train with failures p50 / p90",
                " / ".join(
                    cell(lr.get(k), "days") for k in ("time_to_train_p50_s", "time_to_train_p90_s")
                )
                + " days",
            ),
        ]
        if "deadline_probability" in lr:
            rows.append(("P(finish by the deadline)", f"{lr['deadline_probability']:.1%}"))
    rows.append(("ops simulated", f"{r.ops:,}"))
    for row in rows:
        table.add_row(*row)
    return table
