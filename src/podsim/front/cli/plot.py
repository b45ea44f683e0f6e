"""`podsim plot`: figures (PNG, SVG) of results saved with --json."""

import argparse
import json
from pathlib import Path

from rich.console import Console

from podsim.errors import SpecError
from podsim.results.plots import check_formats, plot_result


def read_result(path: Path) -> object:
    """A saved result: one JSON object from a file (OSError when it cannot be read)."""
    text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise SpecError(f"{path}: not JSON ({error}); give a file written by --json") from error


def cmd_plot(args: argparse.Namespace, console: Console) -> None:
    formats = check_formats(args.format.split(","))
    # Read and check every file first: one bad file writes nothing.
    results = [(Path(name), read_result(Path(name))) for name in args.results]
    for path, result in results:
        stem = path.name.removesuffix(".json") or "result"
        try:
            written = plot_result(result, Path(args.out), stem, formats)
        except SpecError as error:
            raise SpecError(f"{path}: {error}") from error
        for file in written:
            console.print(str(file), markup=False, highlight=False, soft_wrap=True)
