"""Figures of saved results (PNG and SVG): the `podsim plot` verb and the API under it.

matplotlib is optional (`pip install 'podsim[plot]'`): it is imported only here, inside the
functions that draw, so podsim imports and every other verb runs without it. Figures are plain
`matplotlib.figure.Figure` objects drawn on the Agg canvas, never through pyplot, so plotting
neither needs a display nor changes the backend of a notebook that called it. Output is
deterministic: SVG with a fixed `svg.hashsalt` and no date, PNG with no time stamp, so the same
JSON gives byte-identical files.
"""

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from podsim.errors import DependencyError, SpecError, shown
from podsim.results.plot_data import FigureSpec, Panel, figure_specs
from podsim.units import format_size
from podsim.version import __version__

MISSING = "plots need matplotlib: pip install 'podsim[plot]'"
FORMATS = ("png", "svg")
DPI = 150
# Saving options per format: metadata without dates (and without matplotlib's version).
METADATA = {
    "png": {"Software": f"podsim {__version__}"},
    "svg": {"Date": None, "Creator": f"podsim {__version__}"},
}
RC = {"svg.hashsalt": "podsim", "svg.fonttype": "path", "font.size": 9.0}
SIZES = {1: ((1, 1), (7.5, 4.8)), 2: ((1, 2), (12.0, 4.8))}  # panels -> (grid, inches)


def _matplotlib() -> tuple[Any, Any, Any]:
    """(matplotlib, Figure, FigureCanvasAgg), or DependencyError naming the extra."""
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise DependencyError(MISSING) from error
    return matplotlib, Figure, FigureCanvasAgg


def figures_for(result: Any) -> dict[str, Any]:
    """The figures of a saved result (a JSON object as loaded), by file name suffix."""
    return {spec.what: draw(spec) for spec in figure_specs(result)}


def draw(spec: FigureSpec) -> Any:
    """A Figure (on the Agg canvas) of a figure spec: one axes per panel."""
    matplotlib, Figure, FigureCanvasAgg = _matplotlib()
    grid, inches = SIZES.get(len(spec.panels), ((2, 2), (12.0, 8.5)))
    with matplotlib.rc_context(RC):
        figure = Figure(figsize=inches, layout="constrained")
        FigureCanvasAgg(figure)
        figure.suptitle(spec.title, fontsize=11)
        for index, panel in enumerate(spec.panels):
            axes = figure.add_subplot(*grid, index + 1)
            (_stacked if panel.style == "stacked" else _lines)(axes, panel)
            axes.set_title(panel.title)
            axes.set_xlabel(panel.xlabel)
            axes.set_ylabel(panel.ylabel)
            axes.grid(True, axis="y" if panel.style == "stacked" else "both", alpha=0.3)
    return figure


def _categorical(axes: Any, x: Sequence[Any]) -> list[float]:
    """Positions of x on the axis: numbers as they are, names at 0, 1, ... with tick labels."""
    if all(isinstance(v, float | int) for v in x):
        return [float(v) for v in x]
    axes.set_xticks(range(len(x)), [str(v) for v in x])
    return [float(i) for i in range(len(x))]


def _lines(axes: Any, panel: Panel) -> None:
    for series in panel.series:
        x = _categorical(axes, series.x)
        if series.marker_only:
            axes.plot(x, series.y, linestyle="none", marker="*", markersize=13, label=series.label)
            continue
        axes.plot(x, series.y, marker="o", markersize=3.5, label=series.label)
        for xi, yi, text in zip(x, series.y, series.point_labels, strict=False):
            if text and not math.isnan(yi):
                axes.annotate(text, (xi, yi), textcoords="offset points", xytext=(3, 4), fontsize=7)
    for x, label in panel.vlines:
        axes.axvline(x, linestyle="--", color="grey", label=label)
    if panel.xlog:
        axes.set_xscale("log", base=2)
    if panel.x_bytes:
        axes.xaxis.set_major_formatter(lambda x, _: format_size(x))
    axes.legend(fontsize=8)


def _stacked(axes: Any, panel: Panel) -> None:
    labels = panel.series[0].x if panel.series else ()
    positions = list(range(len(labels)))
    bottom = [0.0] * len(labels)
    for series in panel.series:
        axes.bar(positions, series.y, bottom=bottom, label=series.label, width=0.6)
        bottom = [b + (0.0 if math.isnan(y) else y) for b, y in zip(bottom, series.y, strict=True)]
    for position, total in zip(positions, bottom, strict=True):
        axes.annotate(
            f"{total:,.3g} s", (position, total), textcoords="offset points", xytext=(0, 3),
            ha="center", fontsize=8,
        )  # fmt: skip
    axes.set_xticks(positions, [str(label) for label in labels])
    axes.set_xlim(-0.6, len(labels) - 0.4)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def check_formats(formats: Sequence[str]) -> list[str]:
    """The formats, lower case; SpecError naming the allowed ones otherwise."""
    if isinstance(formats, str) or not formats:
        raise SpecError(f"formats = {shown(formats)} is not allowed: a list of {FORMATS}")
    out = [str(f).strip().lower() for f in formats]
    for fmt in out:
        if fmt not in FORMATS:
            raise SpecError(f"format = {shown(fmt)} is not allowed: one of {', '.join(FORMATS)}")
    return list(dict.fromkeys(out))


def save(figure: Any, path: Path, fmt: str) -> Path:
    """Write `figure` to `path` in `fmt`, byte for byte the same for the same figure."""
    matplotlib, _, _ = _matplotlib()
    buffer = io.BytesIO()
    with matplotlib.rc_context(RC):
        figure.savefig(buffer, format=fmt, dpi=DPI, metadata=METADATA[fmt])
    path.write_bytes(buffer.getvalue())
    return path


def plot_result(
    result: dict, out_dir: Path, stem: str, formats: Sequence[str] = FORMATS
) -> list[Path]:
    """Recognise which verb wrote `result` (podsim.results.plot_data.KINDS), draw its figure and
    write it into `out_dir` (created if missing) as `<stem>-<what>.<fmt>` in every format.
    Returns the files written, in order."""
    formats = check_formats(formats)
    if not stem or "/" in stem or "\\" in stem or stem in (".", ".."):
        raise SpecError(f"stem = {shown(stem)} is not allowed: a file name without a folder")
    figures = figures_for(result)  # everything checked before any file is written
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for what, figure in figures.items():
        for fmt in formats:
            written.append(save(figure, out / f"{stem}-{what}.{fmt}", fmt))
    return written
