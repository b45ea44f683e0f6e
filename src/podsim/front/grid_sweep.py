"""Grid sweeps (`podsim sweep`): a scenario run at every point of the Cartesian product of
some of its keys' values, one row per point.

Each point is the scenario with its values applied as `--set` applies them
(podsim.front.overrides) and is checked by the schema; it runs `train`, or `serve` for a
serving scenario (a [serve] table and no [train]). A row holds the swept keys (dotted, as
given), the result's top-level scalar keys and its breakdown flattened (`breakdown.compute_s`,
...). A point the schema or the run refuses (a SpecError) keeps its row, with `error` = the
message (so is any other podsim error of a run): it never stops the sweep.

Points run serially (jobs=1) or on a local process pool; rows come back in grid order (the
first key varies slowest), the same whatever `jobs`. Rows are cached in this process, keyed by
a hash of the point's resolved scenario (the edited document), the network model and podsim's
version, so a point seen before (in this sweep or an earlier one) is not run again.
"""

import copy
import csv
import hashlib
import io
import itertools
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from os import PathLike
from pathlib import Path
from typing import Any

from podsim.engine.core import NetworkMode
from podsim.errors import PodsimError, SpecError, shown
from podsim.front.api import serve, train
from podsim.front.overrides import (
    MAX_SETS,
    overridden,
    parse_set,
    parse_value,
    scenario_document,
)
from podsim.front.scenario import scenario_from_document
from podsim.version import __version__

MAX_POINTS = 10_000
MAX_KEYS = 32
OUT_SUFFIXES = (".csv", ".json")

# Rows already run in this process: hash of (resolved scenario, network, version) -> row.
_CACHE: dict[str, dict[str, Any]] = {}


def parse_grid(texts: Sequence[str]) -> dict[str, list[Any]]:
    """`--grid KEY=V1,V2,...` options as {key: [values]}: each value read as --set reads one
    (TOML, else a string). A value cannot itself contain a comma."""
    grid: dict[str, list[Any]] = {}
    for text in texts:
        key, sep, values = text.partition("=")
        key = key.strip()
        parts = [part.strip() for part in values.split(",")]
        if not sep or not key or not all(p.strip() for p in key.split(".")):
            raise SpecError(
                f"--grid = {shown(text)} is not allowed: KEY=V1,V2,... with a dotted key, "
                "e.g. --grid train.tp=4,8"
            )
        if not all(parts):
            raise SpecError(
                f"--grid = {shown(text)} is not allowed: an empty value; write KEY=V1,V2,... "
                "with no empty item, e.g. --grid train.tp=4,8"
            )
        if key in grid:
            raise SpecError(f"--grid = {shown(text)} is not allowed: {key} is given twice")
        grid[key] = [parse_value(part) for part in parts]
    return grid


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The Cartesian product of the grid, in order (the first key varies slowest)."""
    if not grid:
        raise SpecError("--grid is not given: a sweep needs at least one KEY=V1,V2,...")
    if len(grid) > MAX_KEYS:
        raise SpecError(f"--grid is given {len(grid)} keys; at most {MAX_KEYS}")
    count = 1
    for key, values in grid.items():
        if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
            raise SpecError(f"--grid {key}: needs a non-empty list of values, not {shown(values)}")
        count *= len(values)
    if count > MAX_POINTS:
        sizes = " x ".join(str(len(v)) for v in grid.values())
        raise SpecError(
            f"--grid gives {count:,} points ({sizes}); at most {MAX_POINTS:,}: sweep fewer values"
        )
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*grid.values())]


def _value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _scalars(result: dict[str, Any]) -> dict[str, Any]:
    """The result's top-level scalar keys, and its breakdown's flattened."""
    row: dict[str, Any] = {}
    for key, value in result.items():
        if isinstance(value, bool | int | float | str) or value is None:
            row[key] = value
        elif key == "breakdown" and isinstance(value, dict):
            for part, number in value.items():
                if isinstance(number, bool | int | float | str) or number is None:
                    row[f"breakdown.{part}"] = number
    return row


def _run_point(document: dict[str, Any], label: str, network: NetworkMode) -> dict[str, Any]:
    """One point's result keys, or {"error": message}; runs in a worker process too."""
    try:
        scenario = scenario_from_document(document, label)
        if scenario.serve is not None and scenario.train is None:
            return _scalars(serve(scenario).to_dict())
        return _scalars(train(scenario, network).to_dict())
    except PodsimError as error:  # refused by the schema or the run (e.g. a deadlock)
        return {"error": str(error)}


def _key(document: dict[str, Any], network: str) -> str:
    text = json.dumps(document, sort_keys=True, default=str)
    return hashlib.sha256(f"{text}\n{network}\n{__version__}".encode()).hexdigest()


def sweep(
    scenario: "str | PathLike[str]",
    grid: Mapping[str, Sequence[Any]],
    jobs: int | None = None,
    network: NetworkMode = "analytical",
    sets: Sequence[str] = (),
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """`podsim sweep`: one row per point of the grid's Cartesian product, in grid order.

    `scenario` is a file or built-in name; `grid` maps dotted keys to their values (a string
    value is read as --set reads it: "4" is 4, "1f1b" a string); `sets` are KEY=VALUE
    overrides applied to every point first. jobs: 1 runs serially, more on that many local
    processes; default min(points, CPUs). `progress` is called with the points done."""
    if len(sets) > MAX_SETS:
        raise SpecError(f"--set is given {len(sets)} times; at most {MAX_SETS}")
    points = grid_points(grid)
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise SpecError(f"--jobs = {shown(jobs)} is not allowed: a whole number >= 1")
    base, source = scenario_document(scenario)
    if sets:  # checked once: a bad --set stops the sweep at once
        overridden(base, source, [(text, *parse_set(text)) for text in sets])
    return run_points(base, source, points, jobs, network, progress)


def run_points(
    base: dict[str, Any],
    source: str,
    points: Sequence[Mapping[str, Any]],
    jobs: int | None = None,
    network: NetworkMode = "analytical",
    progress: Callable[[int], None] | None = None,
    option: str = "--grid",
) -> list[dict[str, Any]]:
    """One row per point (dotted key -> value, applied to the scenario document `base` as
    --set applies them), in order: the point's keys and its result keys, or `error`. Points run
    serially (jobs=1) or on a local process pool (default min(points, CPUs)); rows are cached
    in this process (see the module's doc). `option` names the points in labels and errors."""
    rows: list[dict[str, Any]] = []
    todo: dict[str, tuple[dict[str, Any], str]] = {}  # key -> (document, label), unrun
    keys: list[str | None] = []
    for point in points:
        rows.append(dict(point))
        parsed = []
        for key, value in point.items():
            value = parse_value(value) if isinstance(value, str) else value
            parsed.append((f"{key}={_value_text(value)}", key.split("."), value))
        document = copy.deepcopy(base)
        try:
            label = f"{source} with {option} " + ", ".join(text for text, _, _ in parsed)
            overridden(document, source, parsed, option)
        except SpecError as error:
            rows[-1]["error"] = str(error)
            keys.append(None)
            continue
        key = _key(document, network)
        keys.append(key)
        if key not in _CACHE and key not in todo:
            todo[key] = (document, label)
    workers = min(len(todo), os.cpu_count() or 1) if jobs is None else jobs
    done = 0

    def finished(key: str, result: dict[str, Any]) -> None:
        nonlocal done
        _CACHE[key] = result
        done += 1
        if progress is not None:
            progress(done)

    if workers <= 1 or len(todo) <= 1:
        for key, (document, label) in todo.items():
            finished(key, _run_point(document, label, network))
    else:
        pool = ProcessPoolExecutor(max_workers=min(workers, len(todo)))
        try:
            futures = {
                key: pool.submit(_run_point, document, label, network)
                for key, (document, label) in todo.items()
            }
            for key, future in futures.items():
                finished(key, future.result())
        except BaseException:  # Ctrl-C: stop the workers now rather than wait for their points
            _stop(pool)
            raise
        pool.shutdown()
    for row, key in zip(rows, keys, strict=True):
        if key is not None:
            row.update(copy.deepcopy(_CACHE[key]))
    return rows


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the worker processes (the executor has no public
    way to end running work; its `_processes` map holds them)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()


def clear_cache() -> None:
    """Forget the rows cached in this process."""
    _CACHE.clear()


def check_out_path(path: "str | PathLike[str]") -> None:
    """--out must end in .csv or .json, in a folder that exists (checked before any work)."""
    target = Path(path)
    if target.suffix.lower() not in OUT_SUFFIXES:
        raise SpecError(f"--out = {shown(str(path))} is not allowed: FILE.csv or FILE.json")
    if not target.parent.is_dir():
        raise SpecError(f"--out = {shown(str(path))}: folder {target.parent} does not exist")


def rows_text(rows: list[dict[str, Any]], suffix: str, document: dict[str, Any]) -> str:
    """The rows as CSV (columns: every key, in order of first appearance) or as the JSON
    document given (strict JSON: a non-finite number is null)."""
    if suffix == ".json":
        from podsim.front.cli.output import dumps  # strict JSON, one encoder for every verb

        return dumps(document) + "\n"
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buffer.getvalue()


def write_rows(
    path: "str | PathLike[str]", rows: list[dict[str, Any]], document: dict[str, Any]
) -> None:
    """Write the rows to `path` (.csv or .json, by its suffix) atomically: a temporary file in
    the same folder, then os.replace."""
    check_out_path(path)
    target = Path(path)
    text = rows_text(rows, target.suffix.lower(), document)
    handle, temporary = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
