"""`podsim calibrate`: rerun a named fit (podsim.front.calibration.FITS) on its declared
calibration rows, show every row's in-sample error before and after, and store the values:
--write in the package's own files (a source checkout only), --out FILE as scenario tables."""

import argparse
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from podsim.errors import SpecError
from podsim.front.calibration import (
    FITS,
    check_writable,
    fit_toml,
    get_fit,
    outcome_dict,
    report,
)
from podsim.front.cli.output import check_new_file, print_json


def add_parser(verb, json_help: str) -> None:
    cal = verb(
        "calibrate",
        "rerun a named fit of efficiencies on its declared calibration rows: parameters before "
        "and after, each row's in-sample error; --write or --out FILE stores the values",
    )
    cal.add_argument("name", nargs="?", metavar="NAME", help=f"the fit: {', '.join(FITS)}")
    cal.add_argument("--list", action="store_true", help="list the fits and their rows")
    cal.add_argument(
        "--write",
        action="store_true",
        help="store the fitted values where podsim reads them (chips.toml or a plan default: "
        "a source checkout only)",
    )
    cal.add_argument(
        "--out",
        metavar="FILE",
        help="write the fitted values, with their provenance, as TOML scenario tables "
        "([stack] or [serve]) to pass back in a scenario",
    )
    cal.add_argument("--force", action="store_true", help="with --out: overwrite FILE")
    cal.add_argument(
        "--jobs", type=int, metavar="N", help="local processes for the a100 fit (minutes)"
    )
    cal.add_argument("--json", action="store_true", help=json_help)
    cal.set_defaults(run=cmd_calibrate)


def cmd_calibrate(args: argparse.Namespace, console: Console) -> None:
    if args.list:
        if args.name or args.write or args.out:
            raise SpecError("calibrate --list takes no NAME, --write or --out")
        _list(args.json, console)
        return
    if not args.name:
        raise SpecError(f"calibrate: give a fit NAME (one of {', '.join(FITS)}) or --list")
    if args.jobs is not None and args.jobs < 1:
        raise SpecError(f"calibrate --jobs = {args.jobs} is not allowed: 1 or more")
    fit = get_fit(args.name)
    # Refuse before a fit that may take minutes, not after it.
    if args.write:
        check_writable(args.name)
    out = Path(args.out) if args.out else None
    if out is not None:
        check_new_file("--out", out, args.force)
    elif args.force:
        raise SpecError("--force goes with --out FILE")

    def log(line: str) -> None:
        if not args.json:
            console.print(line, markup=False, highlight=False, soft_wrap=True)

    log(f"{args.name}: declared calibration rows (in sample): {fit.rows}")
    outcome = fit.run(log, None, args.jobs)
    report(outcome, log)
    if args.write:
        fit.write(outcome)
        log(f"written: {fit.target}")
    if out is not None:
        out.write_text(fit_toml(args.name, outcome), encoding="utf-8")
        log(f"wrote {out}")
    if args.json:
        written = {"written": fit.target if args.write else None, "out": args.out}
        print_json(outcome_dict(args.name, outcome) | written)


def _list(as_json: bool, console: Console) -> None:
    if as_json:
        print_json({name: {"rows": fit.rows, "target": fit.target} for name, fit in FITS.items()})
        return
    table = Table(title="calibration fits (`podsim calibrate NAME`)")
    for column in ("fit", "declared calibration rows", "--write stores in"):
        table.add_column(column)
    for name, fit in FITS.items():
        table.add_row(name, escape(fit.rows), escape(fit.target))
    console.print(table)
