"""`podsim showcase`: could DeepSeek train its next model on Huawei Ascend, and why does it serve
there instead? Tables, a reading of the numbers, and a report folder (docs/showcase.md)."""

import argparse

from rich.console import Console

from podsim.front.cli.output import print_json
from podsim.front.showcase import showcase
from podsim.front.showcase.rows import SCALE_COLUMNS, SERVE_COLUMNS, TRAIN_COLUMNS, scale_rows
from podsim.results.tables import rows_table


def add_parser(verb) -> None:
    """The verb's options (`verb(name, text)` makes the subparser)."""
    sub = verb(
        "showcase",
        "the DeepSeek story in numbers: DeepSeek-V3 and an R2-class model trained on equal "
        "budgets of H800, H20, Ascend 910B and 910C clusters, with and without instability, and "
        "DeepSeek-R1 served on the same chips; tables, a reading and a report folder",
    )
    sub.add_argument(
        "--out",
        default="podsim-showcase",
        metavar="DIR",
        help="report folder: scenario files (TOML), per-run JSON, showcase.json, README.md",
    )
    sub.add_argument(
        "--quick",
        action="store_true",
        help="reduced size: the R2-class model only (not DeepSeek-V3) and one scale-sweep point "
        "(2x each fleet, not 2x, 4x and 8x)",
    )
    sub.add_argument(
        "--budget-basis",
        default="power",
        choices=("power", "spend"),
        help="what is equal across chips: all-in IT power (W) or spend (USD per hour at each "
        "chip's assumed price per device-hour)",
    )
    sub.add_argument(
        "--budget",
        type=float,
        metavar="AMOUNT",
        help="the budget in W (power) or USD per hour (spend); default: what DeepSeek-V3's "
        "2,048 H800s draw (2.58 MW) or cost",
    )
    sub.add_argument(
        "--ascend-failure-multiple",
        type=float,
        default=3.0,
        metavar="X",
        help="Ascend failures per device-day as a multiple of Llama 3's H100 rate (4.74e-4); an "
        "ASSUMPTION: no public Ascend failure rate exists",
    )
    sub.add_argument(
        "--json", action="store_true", help="print the report (every number) as one JSON object"
    )
    sub.set_defaults(run=cmd_showcase)


def cmd_showcase(args: argparse.Namespace, console: Console) -> None:
    def say(message: str) -> None:
        if not args.json:
            console.print(message, style="dim", markup=False)

    report = showcase(
        args.out,
        quick=args.quick,
        budget_basis=args.budget_basis,
        budget=args.budget,
        ascend_failure_multiple=args.ascend_failure_multiple,
        progress=say,
    )
    if args.json:
        print_json(report)
        return
    for model in dict.fromkeys(row["model"] for row in report["training"]):
        rows = [row for row in report["training"] if row["model"] == model]
        title = f"Training {model}, {report['budget']['basis']} budget"
        console.print(rows_table(title, TRAIN_COLUMNS, rows))
    console.print("* no FP8 on the chip: trains in BF16")
    scale = scale_rows(report["scale"])
    console.print(rows_table("R2-class with instability on larger clusters", SCALE_COLUMNS, scale))
    console.print(rows_table("Serving DeepSeek-R1", SERVE_COLUMNS, report["serving"]))
    for line in report["reading"]:
        console.print(f"- {line}", markup=False)
    if "skipped" in report["plots"]:
        console.print(f"no figures: {report['plots']['skipped']}", markup=False)
    where = f"report: {args.out}/README.md (every number in {args.out}/showcase.json)"
    console.print(where, markup=False)
