"""`podsim validate`: published runs against podsim, with the error of each: in sample (the
calibration rows `podsim calibrate` fits on), held out of the fit, out of sample, and other
software stacks, each with its own mean absolute percentage error."""

import argparse

from rich.console import Console
from rich.table import Table

from podsim.front.cli.output import print_json
from podsim.front.cli.progress import progress_after
from podsim.front.validation import (
    OUT_OF_SAMPLE,
    SOFTWARE_STACKS,
    Case,
    case_names,
    in_sample,
    mape,
    run_case,
)


def cmd_validate(args: argparse.Namespace, console: Console) -> None:
    runs = [(name, "") for name in case_names()]
    runs += [(name, OUT_OF_SAMPLE) for name in case_names(OUT_OF_SAMPLE)]
    runs += [(name, SOFTWARE_STACKS) for name in case_names(SOFTWARE_STACKS)]
    if args.json:
        done = [run_case(name, folder) for name, folder in runs]
    else:
        with progress_after(console, "simulating published runs", len(runs)) as advance:
            done = []
            for name, folder in runs:
                done.append(run_case(name, folder))
                advance(len(done))
    by_folder: dict[str, list[Case]] = {}
    for case, (_, folder) in zip(done, runs, strict=True):
        by_folder.setdefault(folder, []).append(case)
    cases, outside = by_folder.get("", []), by_folder.get(OUT_OF_SAMPLE, [])
    stacks = by_folder.get(SOFTWARE_STACKS, [])
    fitted = [c for c in cases if in_sample(c)]
    held = [c for c in cases if not in_sample(c)]
    if args.json:
        rows = [{**vars(c), "error": c.error, "in_sample": in_sample(c)} for c in cases]
        out = [{**vars(c), "error": c.error} for c in outside]
        stack_rows = [{**vars(c), "error": c.error} for c in stacks]
        out_json = {"cases": rows, "mape": mape(cases), "out_of_sample": out}
        out_json["in_sample_mape"] = _mape(fitted)
        out_json["held_out_mape"] = _mape(held)
        out_json["out_of_sample_mape"] = _mape(outside)
        print_json(out_json | {"software_stacks": stack_rows})
        return
    _print(console, fitted, "in sample: the calibration rows (`podsim calibrate` fits on them)")
    if held:
        _print(console, held, "held out: the calibrated chips' rows the fit never saw")
    if outside:
        _print(console, outside, "out of sample (nothing fitted on these)")
    if stacks:
        _print(console, stacks, "other software stacks, out of sample ([stack] in each scenario)")


def _print(console: Console, cases: list[Case], title: str) -> None:
    table = Table(title=title)
    for column in ("case", "metric", "published", "predicted", "error"):
        table.add_column(column, justify="right")
    for c in cases:
        table.add_row(
            c.name, c.metric, f"{c.published:,.4g}", f"{c.predicted:,.4g}", f"{c.error:+.1%}"
        )
    console.print(table)
    console.print(f"mean absolute percentage error: {mape(cases):.1%} over {len(cases)} cases")


def _mape(cases: list[Case]) -> float | None:
    return mape(cases) if cases else None
