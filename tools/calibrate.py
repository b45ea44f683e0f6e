"""Rerun a named calibration fit and, with --write, store its values where podsim reads them.

    PYTHONPATH=src python tools/calibrate.py a100|h800|serving|deepspeed-2021 [--write]

The fits, their declared calibration rows and what they write: podsim.front.calibration.
`podsim calibrate NAME [--json] [--write] [--out FILE]` runs the same fits from the CLI.
"""

import argparse

from podsim.front.calibration import FITS, get_fit, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=list(FITS))
    parser.add_argument("--write", action="store_true", help="store the fitted values")
    parser.add_argument("--jobs", type=int, default=None, help="local worker processes")
    args = parser.parse_args()
    fit = get_fit(args.name)
    print(f"{args.name}: declared rows: {fit.rows}")
    outcome = fit.run(print, None, args.jobs)
    report(outcome)
    if args.write:
        fit.write(outcome)
        print(f"written: {fit.target}")


if __name__ == "__main__":
    main()
