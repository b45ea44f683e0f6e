"""The report's figures: `podsim.plot_result` on the per-chip comparisons the showcase wrote
(training with instability, serving; PNG and SVG in plots/). The other runs' JSON plot the same
way (`podsim plot runs/*.json --out plots`); they are left out of the default run to keep it
under a minute (a scale sweep's figure takes about 1.7 s of CPU). Without matplotlib the report
says how to install it and keeps its tables and JSON."""

import json
from collections.abc import Callable
from typing import Any

from podsim.errors import DependencyError
from podsim.front.showcase.folder import Report
from podsim.results.plots import plot_result

PLOTTED = ("runs/compare-train-", "runs/compare-serve-")  # the figures that tell the story


def write_figures(report: Report, say: Callable[[str], None]) -> dict[str, Any]:
    """{"files": the figures written (relative paths)} or, without matplotlib,
    {"files": [], "skipped": how to install it}."""
    runs = [f for f in report.files if f.startswith(PLOTTED) and not f.endswith("-stable.json")]
    say(f"plotting {len(runs)} results")
    files: list[str] = []
    try:
        for relative in runs:
            result = json.loads((report.root / relative).read_text(encoding="utf-8"))
            stem = relative.removeprefix("runs/").removesuffix(".json")
            for path in plot_result(result, report.root / "plots", stem):
                files.append(str(path.relative_to(report.root)))
    except DependencyError as error:
        return {"files": [], "skipped": str(error)}
    report.files += files
    return {"files": files}
