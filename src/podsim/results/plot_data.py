"""What a saved result's figure shows, read from the JSON podsim writes (no matplotlib here).

`result_kind` tells which verb wrote a JSON object; `figure_specs` turns it into figures made of
panels of series: plain numbers in the units their axis labels name, taken from the JSON and
only rescaled (s -> ms or days, B/s -> GB/s, fractions -> %), so tests can compare them with the
JSON. `podsim.results.plots` draws them.
"""

import json
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from podsim.errors import SpecError

# kind -> (file name suffix, what wrote it)
KINDS: dict[str, tuple[str, str]] = {
    "train": ("breakdown", "podsim train --json"),
    "scale": ("scale", "podsim train --scale A:B --json"),
    "compare": ("compare", "podsim compare --json"),
    "collective": ("busbw", "podsim collective --json"),
    "serve": ("decode", "podsim serve --json"),
    "sweep": ("sweep", "podsim sweep --json (or its --out FILE.json)"),
}

# Training step segments, in stacking order: (label, how to read it from a breakdown). They
# add up to the step time: compute (the optimizer update apart), exposed communication by the
# parallelism it serves, pipeline bubble and straggler wait (podsim.results.training).
COMM_KINDS = ("tp", "cp", "ep", "pp", "dp")
DAY_S = 86400.0


@dataclass(frozen=True)
class Series:
    label: str
    x: tuple[Any, ...]  # numbers, or names on a categorical axis
    y: tuple[float, ...]  # nan where a point has no value (an invalid sweep point)
    point_labels: tuple[str, ...] = ()  # text beside each point ("" for none)
    marker_only: bool = False


@dataclass(frozen=True)
class Panel:
    style: str  # "lines" | "stacked" (one stacked bar per x, one segment per series)
    title: str
    xlabel: str
    ylabel: str
    series: tuple[Series, ...]
    xlog: bool = False  # base 2
    vlines: tuple[tuple[float, str], ...] = ()  # (x, label)
    x_bytes: bool = False  # x ticks as sizes (8 B, 1 KiB, ...)


@dataclass(frozen=True)
class FigureSpec:
    what: str  # the file name suffix
    title: str
    panels: tuple[Panel, ...]


def number(value: Any) -> float:
    """A JSON number as a float; null (podsim's "not defined") and non-numbers as nan."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # numpy scalars too
        return math.nan
    return float(value)


def _kinds_text() -> str:
    return "; ".join(f"{kind} ({source})" for kind, (_, source) in KINDS.items())


def _unknown(why: str) -> SpecError:
    return SpecError(f"cannot plot this JSON: {why}; the kinds known are: {_kinds_text()}")


def _is_sweep(result: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> bool:
    if "grid" in result:
        return True
    return bool(rows) and bool(grid_keys(result))


def _rows_kind(result: Mapping[str, Any]) -> str:
    rows = result["rows"]
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise _unknown("'rows' is not a non-empty list of objects")
    if _is_sweep(result, rows):
        return "sweep"
    if all("chip" in r for r in rows):
        return "compare"
    if "max_global_batch" in result or all("devices" in r and "global_batch" in r for r in rows):
        return "scale"
    raise _unknown("its rows are none of a sweep's, a comparison's or a scale sweep's")


def result_kind(result: Any) -> str:
    """Which verb wrote `result` (a JSON object as loaded): one of KINDS, or SpecError."""
    if isinstance(result, list) and result and all(_is_collective(r) for r in result):
        return "collective"
    if not isinstance(result, dict):
        raise _unknown(f"a JSON {type(result).__name__} is no podsim result")
    if "rows" in result:
        return _rows_kind(result)
    if _is_collective(result):
        return "collective"
    breakdown = result.get("breakdown")
    if "step_time_s" in result and isinstance(breakdown, dict) and "bubble_s" in breakdown:
        return "train"
    if "phase" in result and "tpot_s" in result:
        return "serve"
    raise _unknown(f"an object with keys {', '.join(list(result)[:12])}")


def _is_collective(result: Any) -> bool:
    """A collective verb's JSON, or one collective's result (CollectiveResult.to_dict())."""
    if isinstance(result, dict) and "results" not in result:
        result = {"results": [result]}
    rows = result.get("results") if isinstance(result, dict) else None
    return (
        isinstance(rows, list)
        and bool(rows)
        and all(
            isinstance(r, dict) and "busbw_bytes_per_s" in r and "size_bytes" in r for r in rows
        )
    )


# --- training step breakdowns (train, compare) ---------------------------------------------


def train_segments(breakdown: Mapping[str, Any]) -> dict[str, float]:
    """A training step's parts in seconds, adding up to the step time."""
    optimizer = number(breakdown.get("optimizer_s", 0.0))
    parts = {"compute": number(breakdown.get("compute_s")) - optimizer, "optimizer": optimizer}
    by_kind = breakdown.get("exposed_comm_by_kind_s")
    if isinstance(by_kind, dict):
        for kind in COMM_KINDS:
            parts[f"exposed comm {kind}"] = number(by_kind.get(kind, 0.0))
    else:  # an older result: exposed communication as one part
        parts["exposed comm"] = number(breakdown.get("exposed_comm_s"))
    parts["pipeline bubble"] = number(breakdown.get("bubble_s"))
    parts["straggler wait"] = number(breakdown.get("straggler_s", 0.0))
    return parts


def serve_segments(breakdown: Mapping[str, Any]) -> dict[str, float]:
    """A serving step's parts in seconds: compute and the communication left exposed."""
    return {
        "compute": number(breakdown.get("compute_s")),
        "exposed comm": number(breakdown.get("exposed_comm_s", 0.0)),
    }


def _stacked(labels: Sequence[str], parts: Sequence[Mapping[str, float]]) -> tuple[Series, ...]:
    """One series per segment (those zero or missing in every bar left out)."""
    names = list(dict.fromkeys(name for p in parts for name in p))
    series = []
    for name in names:
        values = tuple(p.get(name, 0.0) for p in parts)
        if any(v != 0 and not math.isnan(v) for v in values):
            series.append(Series(name, tuple(labels), values))
    return tuple(series)


def _cluster_text(result: Mapping[str, Any]) -> str:
    cluster = result.get("cluster") if isinstance(result.get("cluster"), dict) else {}
    chip = cluster.get("chip", "?")
    devices = result.get("devices", cluster.get("devices"))
    return f"{devices:,} x {chip}" if isinstance(devices, int) else str(chip)


def train_figure(result: Mapping[str, Any]) -> FigureSpec:
    step, mfu = number(result.get("step_time_s")), number(result.get("mfu"))
    label = _cluster_text(result)
    panel = Panel(
        "stacked",
        f"step {step:,.3f} s, MFU {100 * mfu:.1f}%",
        "",
        "time per step (s)",
        _stacked([label], [train_segments(result["breakdown"])]),
    )
    return FigureSpec(KINDS["train"][0], f"Training step time breakdown: {label}", (panel,))


def _chip_label(row: Mapping[str, Any]) -> str:
    precision = row.get("precision") or row.get("plan", {}).get("precision")
    label = str(row.get("chip", "?"))
    if precision:
        label += f"\n{precision}"
        if row.get("precision_fallback"):
            label += " (fallback)"
    return label


def compare_figure(result: Mapping[str, Any]) -> FigureSpec:
    rows = result["rows"]
    labels = [_chip_label(r) for r in rows]
    serving = all("phase" in r for r in rows)
    segments = serve_segments if serving else train_segments
    parts = [segments(r.get("breakdown") or {}) for r in rows]
    what = "decode step" if serving and rows[0].get("phase") == "decode" else "step"
    panel = Panel(
        "stacked",
        f"{what} time per chip (label: chip and the precision it ran)",
        "chip",
        f"time per {what} (s)",
        _stacked(labels, parts),
    )
    title = f"Compare: {result.get('scenario', '')}".rstrip(": ")
    return FigureSpec(KINDS["compare"][0], title, (panel,))


# --- lines: scale sweeps, collectives, serving curves, grid sweeps -------------------------


def _column(rows: Sequence[Mapping[str, Any]], key: str, scale: float = 1.0) -> tuple[float, ...]:
    return tuple(number(r.get(key)) * scale for r in rows)


def _present(rows: Sequence[Mapping[str, Any]], key: str) -> bool:
    return any(not math.isnan(number(r.get(key))) for r in rows)


# (title, y label, [(series label, key, factor)]) of the scale figure's panels
SCALE_PANELS = (
    ("Goodput", "goodput (useful / wall time)", [("goodput", "goodput", 1.0)]),
    (
        "Time to train",
        "time to train (days)",
        [
            ("no failures", "time_to_train_s", 1 / DAY_S),
            ("with failures, p50", "time_to_train_p50_s", 1 / DAY_S),
            ("with failures, p90", "time_to_train_p90_s", 1 / DAY_S),
        ],
    ),
    ("Step time", "step time (s)", [("step time", "step_time_s", 1.0)]),
    ("MFU", "MFU (% of dense BF16 peak)", [("MFU", "mfu", 100.0)]),
)


def scale_figure(result: Mapping[str, Any]) -> FigureSpec:
    rows = result["rows"]
    devices = _column(rows, "devices")
    panels = []
    for title, ylabel, columns in SCALE_PANELS:
        series = tuple(
            Series(label, devices, _column(rows, key, factor))
            for label, key, factor in columns
            if _present(rows, key)
        )
        if series:
            panels.append(Panel("lines", title, "cluster size (devices)", ylabel, series, True))
    if not panels:
        raise _unknown("a scale sweep whose rows hold none of goodput, time to train, step time")
    title = f"Scaling {result.get('scenario', '')}".rstrip()
    return FigureSpec(KINDS["scale"][0], title, tuple(panels))


def _collective_rows(result: Any) -> list[dict[str, Any]]:
    documents = result if isinstance(result, list) else [result]
    rows = []
    for document in documents:
        header = {k: document.get(k) for k in ("chip", "cluster")}
        rows += [{**header, **row} for row in document.get("results", [document])]
    return rows


def _collective_label(row: Mapping[str, Any]) -> str:
    where = f"{row.get('devices', '?')} x {row.get('chip') or 'devices'}"
    if row.get("cluster"):
        where += f" ({row['cluster']})"
    return f"{row.get('op', '?')}, {where}, {row.get('network', '?')}"


def collective_figure(result: Any) -> FigureSpec:
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in _collective_rows(result):
        groups.setdefault(_collective_label(row), []).append(row)
    series = []
    for label, rows in groups.items():
        rows = sorted(rows, key=lambda r: number(r["size_bytes"]))
        series.append(
            Series(label, _column(rows, "size_bytes"), _column(rows, "busbw_bytes_per_s", 1e-9))
        )
    panel = Panel(
        "lines",
        "",
        "message size per rank buffer (bytes)",
        "bus bandwidth (GB/s)",
        tuple(series),
        xlog=True,
        x_bytes=True,
    )
    title = "Collective bus bandwidth (nccl-tests convention)"
    return FigureSpec(KINDS["collective"][0], title, (panel,))


def _batch_labels(batches: Sequence[int]) -> tuple[str, ...]:
    """Label the powers of two and the last batch: enough to read the curve, not crowded."""
    last = len(batches) - 1
    return tuple(f"{b}" if (b & (b - 1) == 0) or i == last else "" for i, b in enumerate(batches))


def _answer_label(result: Mapping[str, Any]) -> str:
    """The answer's point: on the curve for decode and prefill runs, off it where the answer
    is per device of two pools (disaggregated) or at the offered load (request-level)."""
    phase, batch = result.get("phase"), result.get("batch")
    if phase == "disaggregated":
        return f"deployment: batch {batch}, per device of both pools"
    if phase == "both":
        return "request-level run at its arrival rate"
    return f"chosen: batch {batch}"


def serve_figure(result: Mapping[str, Any]) -> FigureSpec:
    decode = bool(result.get("curve"))
    curve = result.get("curve") if decode else result.get("prefill_curve")
    if not curve:
        raise _unknown(
            f"this serve result (phase {result.get('phase')!r}) carries no batch curve "
            "('curve' or 'prefill_curve'; podsim serve writes one since version 0.1)"
        )
    x_key, y_key, slo_key, name = (
        ("tpot_s", "decode_tokens_per_s_per_device", "tpot_slo", "TPOT")
        if decode
        else ("ttft_s", "prefill_tokens_per_s_per_device", "ttft_slo", "TTFT")
    )
    batches = [int(p["batch"]) for p in curve]
    x_ms = _column(curve, x_key, 1e3)
    label = "batches that fit (label: batch per attention rank)"
    series = [Series(label, x_ms, _column(curve, y_key), _batch_labels(batches))]
    chosen = Series(
        _answer_label(result),
        (number(result.get(x_key)) * 1e3,),
        (number(result.get(y_key)),),
        marker_only=True,
    )
    slo = number((result.get("plan") or {}).get(slo_key))
    vlines = () if math.isnan(slo) else ((slo * 1e3, f"{name} SLO"),)
    what = "decode" if decode else "prefill"
    panel = Panel(
        "lines",
        f"{result.get('model', '')} on {_cluster_text(result)}".strip(),
        f"{name} (ms)",
        f"{what} tokens/s per device",
        (*series, chosen),
        vlines=vlines,
    )
    # A prefill run's figure is named for what it shows: NAME-prefill rather than NAME-decode.
    return FigureSpec(what, f"Serving: {what} throughput against {name}", (panel,))


def grid_keys(result: Mapping[str, Any]) -> list[str]:
    """The swept keys: the document's `grid`, else the dotted keys the first row starts with
    (a sweep row lists its swept keys first; `breakdown.*` are results)."""
    grid = result.get("grid")
    if isinstance(grid, dict) and grid:
        return list(grid)
    keys = []
    rows = result.get("rows") or [{}]
    for key in rows[0] if isinstance(rows[0], dict) else []:
        if "." not in key or key.startswith("breakdown."):
            break
        keys.append(key)
    return keys


# (title, y label, key, factor) of a grid sweep's panels, training then serving
SWEEP_COLUMNS = {
    "train": (
        ("Step time", "step time (s)", "step_time_s", 1.0),
        ("MFU", "MFU (% of dense BF16 peak)", "mfu", 100.0),
    ),
    "serve": (
        ("Decode throughput", "decode tokens/s per device", "decode_tokens_per_s_per_device", 1.0),
        ("TPOT", "TPOT (ms)", "tpot_s", 1e3),
    ),
}


def _cell(value: Any) -> Any:
    """A grid value as a dictionary key (a list or table value as its JSON text)."""
    return value if isinstance(value, str | int | float | bool | None) else json.dumps(value)


def _axis_values(values: Sequence[Any]) -> tuple[Any, ...]:
    """Numbers stay numbers; anything else is shown as text on a categorical axis."""
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return tuple(float(v) for v in values)
    return tuple(v if isinstance(v, str) else str(v) for v in values)


def sweep_figure(result: Mapping[str, Any]) -> FigureSpec:
    rows, keys = result["rows"], grid_keys(result)
    if not keys:
        raise _unknown("a sweep without grid keys")
    first, others = keys[0], keys[1:]
    xs = list(dict.fromkeys(_cell(r.get(first)) for r in rows))
    lines: dict[tuple, dict[Any, Mapping[str, Any]]] = {}
    for row in rows:
        combo = tuple(_cell(row.get(k)) for k in others)
        lines.setdefault(combo, {})[_cell(row.get(first))] = row
    serving = any("decode_tokens_per_s_per_device" in r for r in rows)
    numeric = all(isinstance(x, float) for x in _axis_values(xs))
    xlabel = f"{first} (quantities in SI units: s, B, B/s)" if numeric else first
    panels = []
    for title, ylabel, key, factor in SWEEP_COLUMNS["serve" if serving else "train"]:
        series = tuple(
            Series(
                ", ".join(f"{k}={v}" for k, v in zip(others, combo, strict=True)) or key,
                _axis_values(xs),
                tuple(number(line.get(x, {}).get(key)) * factor for x in xs),
            )
            for combo, line in lines.items()
        )
        panels.append(Panel("lines", title, xlabel, ylabel, series))
    invalid = sum("error" in r for r in rows)
    title = f"Sweep of {result.get('scenario', '')}: {len(rows)} points"
    if invalid:
        title += f" ({invalid} invalid, not drawn)"
    return FigureSpec(KINDS["sweep"][0], title, tuple(panels))


BUILDERS: dict[str, Callable[[Any], FigureSpec]] = {
    "train": train_figure,
    "scale": scale_figure,
    "compare": compare_figure,
    "collective": collective_figure,
    "serve": serve_figure,
    "sweep": sweep_figure,
}


def figure_specs(result: Any) -> list[FigureSpec]:
    """The figures of a saved result (one per kind; see KINDS)."""
    return [BUILDERS[result_kind(result)](result)]
