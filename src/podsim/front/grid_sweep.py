"""Grid sweeps (`podsim sweep`): a scenario run at every point of the Cartesian product of
some of its keys' values, one row per point.

Each point is the scenario with its values applied as `--set` applies them
(podsim.front.overrides) and is checked by the schema; it runs `train`, or `serve` for a
serving scenario (a [serve] table and no [train]). A row holds the swept keys (dotted, as
given), the result's top-level scalar keys and its breakdown flattened (`breakdown.compute_s`,
...). A point the schema or the run refuses (a SpecError) keeps its row, with `error` = the
message (so is any other podsim error of a run): it never stops the sweep.

Points run serially, on a local process pool or on a dask.distributed cluster
(podsim.front.executors); rows come back in grid order (the first key varies slowest), the
same whatever runs them. Rows are cached in this process and, when a cache folder is given, on
disk, keyed by a hash of the point's resolved scenario (the edited document), the network model
and the podsim code (podsim.front.result_cache), so a point seen before (in this sweep, an
earlier one or, with a cache folder, another process) is not run again.
"""

import copy
import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from os import PathLike
from typing import Any

from podsim.engine.core import NetworkMode
from podsim.errors import PodsimError, SpecError, shown
from podsim.front.api import serve, train
from podsim.front.executors import check_executor, run_all
from podsim.front.overrides import (
    MAX_SETS,
    overridden,
    parse_set,
    parse_value,
    scenario_document,
)
from podsim.front.result_cache import ResultCache, result_key
from podsim.front.scenario import scenario_from_document
from podsim.front.sweep_output import rows_frame

MAX_POINTS = 10_000
MAX_KEYS = 32

# Rows already run in this process, by podsim.front.result_cache.result_key.
_CACHE = ResultCache()


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


def sweep(
    scenario: "str | PathLike[str]",
    grid: Mapping[str, Sequence[Any]],
    jobs: int | None = None,
    network: NetworkMode = "analytical",
    sets: Sequence[str] = (),
    progress: Callable[[int], None] | None = None,
    executor: Any = None,
    cache: "str | PathLike[str] | None" = None,
) -> list[dict[str, Any]]:
    """`podsim sweep`: one row per point of the grid's Cartesian product, in grid order.

    `scenario` is a file or built-in name; `grid` maps dotted keys to their values (a string
    value is read as --set reads it: "4" is 4, "1f1b" a string); `sets` are KEY=VALUE
    overrides applied to every point first. `executor` (podsim.front.executors.run_all):
    None (local processes, or serial when jobs is 1), "serial", "processes", "dask-local", a
    dask scheduler address or a distributed.Client; `jobs` caps local processes (default
    min(points, CPUs)). `cache`: a folder keeping every point's row on disk, so a repeated
    sweep, in any process, runs only new points. `progress` is called with the points run."""
    if len(sets) > MAX_SETS:
        raise SpecError(f"--set is given {len(sets)} times; at most {MAX_SETS}")
    points = grid_points(grid)
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise SpecError(f"--jobs = {shown(jobs)} is not allowed: a whole number >= 1")
    check_executor(executor)
    store = result_store(cache)
    base, source = scenario_document(scenario)
    if sets:  # checked once: a bad --set stops the sweep at once
        overridden(base, source, [(text, *parse_set(text)) for text in sets])
    return run_points(base, source, points, jobs, network, progress, executor=executor, store=store)


def run_points(
    base: dict[str, Any],
    source: str,
    points: Sequence[Mapping[str, Any]],
    jobs: int | None = None,
    network: NetworkMode = "analytical",
    progress: Callable[[int], None] | None = None,
    option: str = "--grid",
    executor: Any = None,
    store: ResultCache | None = None,
) -> list[dict[str, Any]]:
    """One row per point (dotted key -> value, applied to the scenario document `base` as
    --set applies them), in order: the point's keys and its result keys, or `error`. Points run
    on `executor` (podsim.front.executors.run_all; `jobs` caps local processes); rows are kept
    in `store` (default: this process's cache; see the module's doc). `option` names the points
    in labels and errors."""
    store = ResultCache(memory=_CACHE.memory) if store is None else store
    rows: list[dict[str, Any]] = []
    todo: dict[str, tuple[dict[str, Any], str, NetworkMode]] = {}  # key -> point, unrun
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
        key = result_key(document, network)
        keys.append(key)
        if key not in todo and store.get(key) is None:
            todo[key] = (document, label, network)
    results = run_all(_run_point, list(todo.values()), executor, jobs, progress)
    for key, result in zip(todo, results, strict=True):
        store.put(key, result)
    for row, key in zip(rows, keys, strict=True):
        if key is not None:
            result = store.get(key)
            store.put(key, result)  # a row from this process's memory reaches the folder too
            row.update(copy.deepcopy(result))
    return rows


def result_store(cache: "str | PathLike[str] | None" = None) -> ResultCache:
    """This process's rows, backed by the folder `cache` if one is given."""
    return ResultCache(cache, memory=_CACHE.memory)


def sweep_frame(*args: Any, **kwargs: Any) -> Any:
    """podsim.sweep's rows as a pandas DataFrame (columns: swept keys, then result keys)."""
    return rows_frame(sweep(*args, **kwargs))


def clear_cache() -> None:
    """Forget the rows cached in this process (a cache folder on disk is left as it is)."""
    _CACHE.memory.clear()
