"""`podsim validate`: published runs against podsim, with the error of each."""

import argparse

from rich.console import Console
from rich.table import Table

from podsim.front.cli.output import print_json
from podsim.front.cli.progress import progress_after
from podsim.front.validation import case_names, mape, run_case


def cmd_validate(args: argparse.Namespace, console: Console) -> None:
    names = case_names()
    if args.json:
        cases = [run_case(name) for name in names]
    else:
        with progress_after(console, "simulating published runs", len(names)) as advance:
            cases = []
            for name in names:
                cases.append(run_case(name))
                advance(len(cases))
    if args.json:
        rows = [{**vars(c), "error": c.error} for c in cases]
        print_json({"cases": rows, "mape": mape(cases)})
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
