"""`podsim compare`: the same training scenario on several chips, one row per chip."""

import argparse

from rich.console import Console

from podsim.errors import SpecError
from podsim.front.api import compare
from podsim.front.cli.output import print_json
from podsim.results.tables import rows_table


def cmd_compare(args: argparse.Namespace, console: Console) -> None:
    chips = [c.strip() for c in args.chips.split(",") if c.strip()]
    if not chips:
        raise SpecError("--chips is empty: give catalog ids, e.g. h800-sxm,ascend-910c")
    rows = compare(args.scenario, chips, args.network)
    if args.json:
        print_json({"scenario": str(args.scenario), "rows": rows})
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
    console.print(rows_table(title, columns, rows))
