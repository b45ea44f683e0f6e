"""`podsim compare`: the same training scenario on several chips, one row per chip; only what
the chip brings changes, and each row says what changed."""

import argparse

from rich.console import Console

from podsim.errors import SpecError
from podsim.front.api import compare, resolve_scenario
from podsim.front.cli.output import print_json
from podsim.front.cli.progress import progress_after
from podsim.front.cli.serve import with_kwh
from podsim.front.overrides import with_overrides
from podsim.plans.stack import stack_label
from podsim.results.tables import rows_table


def cmd_compare(args: argparse.Namespace, console: Console) -> None:
    chips = [c.strip() for c in args.chips.split(",") if c.strip()]
    if not chips:
        raise SpecError("--chips is empty: give catalog ids, e.g. h800-sxm,ascend-910c")
    scenario = (
        with_overrides(args.scenario, args.sets) if args.sets else resolve_scenario(args.scenario)
    )
    standard = args.standard_system
    if args.json:
        rows = compare(scenario, chips, args.network, standard_system=standard)
        print_json({"scenario": str(args.scenario), "rows": rows})
        return
    with progress_after(console, "chips", len(chips)) as advance:
        rows = compare(scenario, chips, args.network, standard_system=standard, progress=advance)
    system = "each chip's standard system" if standard else "the scenario's fabric"
    title = f"{args.scenario} on each chip ({system}, {args.network} network)"
    columns = [
        ("chip", "chip", "{}"),
        ("precision", "precision_shown", "{}"),
        ("step time (s)", "step_time_s", "{:,.3f}"),
        ("MFU", "mfu", "{:.1%}"),
        ("tokens/s", "tokens_per_s", "{:,.0f}"),
        ("memory (GB)", "memory_per_device_bytes", "gb"),
        ("fits", "fits", "{}"),
        ("exposed comm (s)", "exposed_comm_s", "{:,.3f}"),
        ("time to train (days)", "time_to_train_s", "days"),
        ("p50 with failures (days)", "time_to_train_p50_s", "days"),
        ("goodput", "goodput", "{:.1%}"),
        ("power/dev (W)", "power_per_device_w", "{:,.0f}"),
        ("energy to train (MWh)", "energy_to_train_mwh", "{:,.0f}"),
        ("cost to train (USD)", "cost_to_train_usd", "{:,.0f}"),
        ("kWh / M output tok", "energy_per_million_tokens_kwh", "{:,.3f}"),
        ("USD / M output tok", "cost_per_million_tokens_usd", "{:,.3f}"),
    ]
    for row in rows:
        with_kwh(row)
        row["exposed_comm_s"] = row["breakdown"]["exposed_comm_s"]
        row["fits"] = "yes" if row["fits_in_memory"] else "NO"
        mark = "*" if row["precision_fallback"] else ""
        row["precision_shown"] = f"{row['precision']}{mark}"
    console.print(rows_table(title, columns, rows))
    if any(row["precision_fallback"] for row in rows):
        console.print("* the chip has no dense peak at the scenario's precision: run at bf16")
    stacks = {stack_label(row["stack"]) for row in rows if "stack" in row}
    for label in sorted(stacks):
        console.print(f"software stack: {label}")
    for row in rows:
        changed = "; ".join(row["changes"]) or "nothing (the scenario's own chip)"
        console.print(f"{row['chip']}: {changed}")
    _print_efficiencies(console, rows)


def _print_efficiencies(console: Console, rows: list[dict]) -> None:
    """Where each row's kernel efficiencies come from: a default is not a measurement."""
    said = [row for row in rows if row.get("efficiencies")]
    if not said:
        return
    console.print("kernel efficiencies:")
    for row in said:
        console.print(f"  {row['chip']}: {row['efficiencies']}", markup=False, highlight=False)
    if any("default" in row["efficiencies"] for row in said):
        console.print(
            "  default = podsim's class defaults (podsim.costs.kernels), estimated for NVIDIA "
            "Hopper-class software, not measured on that chip; calibrated = fitted on "
            "published runs of the chip by a script in tools/"
        )
