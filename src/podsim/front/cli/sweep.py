"""`podsim sweep`: a scenario at every point of a grid of key values, one row per point."""

import argparse
from pathlib import Path

from rich.console import Console

from podsim.front.cli.executor_options import executor_of
from podsim.front.cli.output import print_json
from podsim.front.cli.progress import progress_after
from podsim.front.grid_sweep import grid_points, parse_grid, sweep
from podsim.front.sweep_output import check_out_path, write_rows
from podsim.results.tables import rows_table

# Result columns of the table (those no row has are left out); the swept keys come first.
RESULT_COLUMNS = [
    ("step time (s)", "step_time_s", "{:,.3f}"),
    ("MFU", "mfu", "{:.1%}"),
    ("tokens/s", "tokens_per_s", "{:,.0f}"),
    ("memory (GB)", "memory_per_device_bytes", "gb"),
    ("fits", "fits", "{}"),
    ("exposed comm (s)", "breakdown.exposed_comm_s", "{:,.3f}"),
    ("bubble (s)", "breakdown.bubble_s", "{:,.3f}"),
    ("time to train (days)", "time_to_train_s", "days"),
    ("TTFT (s)", "ttft_s", "{:,.3f}"),
    ("TPOT (s)", "tpot_s", "{:,.4f}"),
    ("decode tok/s/dev", "decode_tokens_per_s_per_device", "{:,.0f}"),
    ("max batch", "max_batch", "{:,}"),
    ("USD / M tok", "cost_per_million_tokens_usd", "{:,.3f}"),
    ("invalid", "error_note", "{}"),
]


def cmd_sweep(args: argparse.Namespace, console: Console) -> None:
    grid = parse_grid(args.grid)
    total = len(grid_points(grid))  # bounds checked before any work
    if args.out is not None:
        check_out_path(args.out)
    kwargs = {
        "jobs": args.jobs,
        "network": args.network,
        "sets": args.sets,
        "executor": executor_of(args),
        "cache": args.cache,
    }
    if args.json:
        rows = sweep(args.scenario, grid, **kwargs)
    else:
        with progress_after(console, "grid points", total) as advance:
            rows = sweep(args.scenario, grid, progress=advance, **kwargs)
    document = {"scenario": str(args.scenario), "network": args.network, "grid": grid, "rows": rows}
    if args.out is not None:
        write_rows(Path(args.out), rows, document)
    if args.json:
        print_json(document)
        return
    notes = []
    for row in rows:
        if "fits_in_memory" in row:
            row["fits"] = "yes" if row["fits_in_memory"] else "NO"
        if "error" in row:
            notes.append(row["error"])
            row["error_note"] = f"[{len(notes)}]"
    swept = [(key, key, "{}") for key in grid]
    failed = len(notes)
    title = f"{args.scenario}: {len(rows):,} grid points ({args.network} network)"
    if failed:
        title += f", {failed:,} invalid"
    console.print(rows_table(title, swept + RESULT_COLUMNS, rows))
    for number, note in enumerate(notes, start=1):
        console.print(f"[{number}] {note}", markup=False, highlight=False)
    if args.out is not None:
        console.print(f"rows written to {args.out}")
