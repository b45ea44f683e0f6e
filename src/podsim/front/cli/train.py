"""`podsim train`: one training step of a scenario, or a sweep of cluster sizes."""

import argparse
import json

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from podsim.engine.noise import NoiseModel
from podsim.errors import SpecError
from podsim.front.api import resolve_scenario, training_step
from podsim.front.sweep import scale_sweep
from podsim.results.tables import cell, rows_table
from podsim.results.trace import write_chrome_trace


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
    console.print(rows_table(title, columns, rows))


def cmd_train(args: argparse.Namespace, console: Console) -> None:
    if args.scale:
        cmd_scale(args, console)
        return
    scenario = resolve_scenario(args.scenario)
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
            )
    else:
        run = training_step(scenario, args.network, args.strict, simulation=simulation)
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
    console.print(table)
