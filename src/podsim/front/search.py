"""Plan search (`podsim search`): the best training plans for a scenario's model on its cluster
(same devices, same global batch), by MFU or by time to train.

1. Enumerate the space (podsim.front.plan_space) and prune what cannot run: divisibility and
   the plan checker, schedules that cannot apply, steps too large to simulate, and plans that
   do not fit in device memory (the memory model), each counted by reason.
2. Screen every survivor with a closed-form estimate of its step time
   (podsim.front.plan_screen), and order them by it.
3. Simulate them in that order with the engine (noise-free, so symmetric where exact) on the
   grid sweep's process pool, a batch at a time, until the next estimate, lowered by a margin
   for the estimate's error, cannot beat the N-th best simulated plan (or max_simulations).
4. Rank the simulated plans by the objective; MFU is the model's FLOPs over the step time, so
   at a fixed model, batch and cluster the highest MFU is the shortest step.

The scenario's own plan is simulated too, as the reference the best plans are compared with.
"""

import copy
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from typing import Any

from podsim.engine.core import NetworkMode
from podsim.errors import SpecError, shown
from podsim.front.executors import check_executor
from podsim.front.grid_sweep import result_store, run_points
from podsim.front.overrides import MAX_SETS, overridden, parse_set, scenario_document
from podsim.front.plan_screen import Estimate, Screener
from podsim.front.plan_space import Pruned, candidates, count, reason_of, search_space
from podsim.front.result_cache import ResultCache
from podsim.front.scenario import scenario_from_document
from podsim.front.training import check_step_cost
from podsim.plans.training import Plan

OBJECTIVES = ("mfu", "time-to-train")
PLAN_KEYS = (
    "tp",
    "pp",
    "dp",
    "cp",
    "ep",
    "etp",
    "virtual_stages",
    "micro_batch",
    "zero",
    "recompute",
    "schedule",
)
# The estimate's error on the plans of tests/test_search.py and benchmarks/test_bench_search.py
# is -10% to +10.5% (docs/search.md: the largest over-estimate is DualPipe with ZeRO-3); plans
# estimated more than this fraction slower than the N-th best simulated one are skipped.
DEFAULT_MARGIN = 0.15
DEFAULT_MAX_SIMULATIONS = 48
MAX_TOP = 100
# Progress: the search counts screening and simulation as one total.
Progress = Callable[[int, int], None]


@dataclass
class SearchResult:
    """What a search found: the top plans, ranked, the scenario's own plan, and the space."""

    scenario: str
    objective: str
    network: str
    space: dict[str, list[Any]]
    candidates: int
    pruned: dict[str, int]
    refused: dict[str, int]  # simulated plans the run refused, by reason
    screened: int
    simulated: int
    stopped: str
    plans: list[dict[str, Any]]
    scenario_plan: dict[str, Any] | None
    screening_s: float
    simulation_s: float
    notes: list[str] = field(default_factory=list)

    @property
    def best(self) -> dict[str, Any] | None:
        return self.plans[0] if self.plans else None

    def to_dict(self) -> dict[str, Any]:
        per_plan = self.screening_s / self.candidates if self.candidates else 0.0
        return {
            "scenario": self.scenario,
            "objective": self.objective,
            "network": self.network,
            "space": self.space,
            "candidates": self.candidates,
            "pruned": self.pruned,
            "pruned_total": sum(self.pruned.values()),
            "refused": self.refused,
            "screened": self.screened,
            "simulated": self.simulated,
            "stopped": self.stopped,
            "screening_s": self.screening_s,
            "screening_s_per_plan": per_plan,
            "simulation_s": self.simulation_s,
            "plans": self.plans,
            "scenario_plan": self.scenario_plan,
            "notes": self.notes,
        }


def _check_options(top: int, objective: str, margin: float, max_simulations: int) -> None:
    def whole(value: Any, low: int, high: int) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high

    if not whole(top, 1, MAX_TOP):
        raise SpecError(f"--top = {shown(top)} is not allowed: a whole number in [1, {MAX_TOP}]")
    if objective not in OBJECTIVES:
        allowed = ", ".join(OBJECTIVES)
        raise SpecError(f"--objective = {shown(objective)} is not allowed: one of {allowed}")
    if not (isinstance(margin, int | float) and not isinstance(margin, bool) and 0 <= margin < 1):
        raise SpecError(f"--margin = {shown(margin)} is not allowed: a number in [0, 1)")
    if not whole(max_simulations, 1, 10_000):
        raise SpecError(
            f"--max-simulations = {shown(max_simulations)} is not allowed: a whole number in "
            "[1, 10000]"
        )
    if not whole(max_simulations, top, 10_000):
        raise SpecError(f"--max-simulations = {max_simulations} is not allowed: at least --top")


def _document(scenario, sets: Sequence[str], objective: str) -> tuple[dict, str, list[str]]:
    """The scenario's document with the --set overrides, without [noise] (the search ranks
    noise-free steps) and, unless the objective needs it, without [failures]."""
    if len(sets) > MAX_SETS:
        raise SpecError(f"--set is given {len(sets)} times; at most {MAX_SETS}")
    base, source = scenario_document(scenario)
    if sets:
        overridden(base, source, [(text, *parse_set(text)) for text in sets])
    notes = []
    if base.pop("noise", None) is not None:
        notes.append("[noise] left out: plans are ranked on noise-free steps")
    if objective == "mfu" and base.pop("failures", None) is not None:
        notes.append("[failures] left out: the objective is mfu")
    if not isinstance(base.get("train"), dict) or "model" not in base:
        raise SpecError(f"{source}: a search needs [model] and [train] tables")
    return base, source, notes


def _screen(model, plan: Plan, cluster, values, pruned: Pruned, progress, total: int):
    """Survivors (plan, estimate) in enumeration order; refusals counted in `pruned`."""
    screener = Screener(model, cluster)
    kept: list[tuple[Plan, Estimate]] = []
    seen = 0
    for candidate in candidates(model, plan, cluster, values, pruned):
        seen += 1
        try:
            check_step_cost(model, candidate)
            estimate = screener.estimate(candidate)
        except SpecError as error:
            pruned.add(f"not simulated: {reason_of(error)}")
            continue
        if not estimate.fits_in_memory:
            pruned.add("does not fit in device memory")
            continue
        kept.append((candidate, estimate))
        if progress is not None and seen % 64 == 0:
            progress(pruned.total + len(kept), total)
    return kept


def _point(plan: Plan) -> dict[str, Any]:
    return {f"train.{key}": getattr(plan, key) for key in PLAN_KEYS}


def _objective_value(row: dict[str, Any], objective: str) -> float:
    if objective == "mfu":
        return row["step_time_s"]
    return row.get("time_to_train_p50_s") or row["time_to_train_s"]


def search(
    scenario: "str | PathLike[str]",
    top: int = 5,
    objective: str = "mfu",
    space: Mapping[str, Sequence[Any]] | None = None,
    fix: Mapping[str, Any] | None = None,
    sets: Sequence[str] = (),
    jobs: int | None = None,
    network: NetworkMode = "analytical",
    margin: float = DEFAULT_MARGIN,
    max_simulations: int = DEFAULT_MAX_SIMULATIONS,
    progress: Progress | None = None,
    executor: Any = None,
    cache: "str | PathLike[str] | None" = None,
) -> SearchResult:
    """`podsim search`: the `top` best plans for the scenario's model on its cluster.

    `space` replaces the values of searched [train] keys ({"tp": [4, 8]}), `fix` holds keys
    at one value ({"tp": 8}); `sets` are --set overrides applied first. objective: "mfu"
    (the shortest step) or "time-to-train" (with train.tokens; with [failures], the median
    time to train with failures). Simulations stop when the next plan's estimate x (1 -
    margin) is slower than the top-th best simulated one, or after max_simulations.
    `progress(done, total)` is called as candidates are screened and simulated. `executor`
    and `cache` as podsim.sweep takes them: where the simulations run (the same rows on
    every executor) and a folder keeping their rows, so that a repeated search simulates
    only plans it has not simulated before."""
    _check_options(top, objective, margin, max_simulations)
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise SpecError(f"--jobs = {shown(jobs)} is not allowed: a whole number >= 1")
    check_executor(executor)
    runner = PointRunner(jobs, network, executor, result_store(cache), "--search")
    base, source, notes = _document(scenario, sets, objective)
    parsed = scenario_from_document(copy.deepcopy(base), source)
    model, plan, cluster = parsed.model, parsed.train, parsed.cluster
    if objective == "time-to-train" and not plan.tokens:
        raise SpecError(f"{source}: --objective time-to-train needs train.tokens (what to train)")
    values = search_space(model, plan, cluster, space, fix)
    total = count(values)
    pruned = Pruned()
    started = time.perf_counter()
    kept = _screen(model, plan, cluster, values, pruned, progress, total + max_simulations)
    screening_s = time.perf_counter() - started
    kept.sort(key=lambda item: item[1].step_time_s)
    started = time.perf_counter()
    run = _simulate(base, source, kept, plan, top, objective, runner, margin)
    rows, own, stopped = run(max_simulations, progress, total)
    simulation_s = time.perf_counter() - started
    refused = Pruned()  # screened plans the simulation refused (a rule the screen lacks)
    for row in rows:
        if "error" in row:
            refused.add(reason_of(SpecError(row["error"].rpartition(": train.")[2])))
    ranked = _ranked(_good(rows, objective)[:top])
    return SearchResult(
        scenario=str(scenario),
        objective=objective,
        network=network,
        space=values,
        candidates=total,
        pruned=dict(pruned.counts.most_common()),
        refused=dict(refused.counts.most_common()),
        screened=len(kept),
        simulated=len(rows),
        stopped=stopped,
        plans=ranked,
        scenario_plan=_own_row(own, plan) if own is not None else None,
        screening_s=screening_s,
        simulation_s=simulation_s,
        notes=notes,
    )


@dataclass(frozen=True)
class PointRunner:
    """Where and how the search's points run (podsim.front.grid_sweep.run_points)."""

    jobs: int | None
    network: NetworkMode
    executor: Any
    store: ResultCache
    option: str

    def __call__(self, base, source, points, jobs: int | None = None) -> list[dict[str, Any]]:
        return run_points(
            base,
            source,
            points,
            jobs or self.jobs,
            self.network,
            option=self.option,
            executor=self.executor,
            store=self.store,
        )


def _simulate(base, source, kept, plan, top, objective, runner: PointRunner, margin):
    """A function running the simulations in estimate order, batch by batch, until the
    bound (see search); returns (rows with their estimates, the scenario plan's row, why it
    stopped)."""
    workers = runner.jobs or os.cpu_count() or 1

    def run(max_simulations: int, progress, total: int):
        rows: list[dict[str, Any]] = []
        own_point = {"train.virtual_stages": plan.virtual_stages or "auto"}
        own = runner(base, source, [own_point], jobs=1)[0]
        own = None if "error" in own else own
        batch = max(2, 2 * workers)
        done, stopped = 0, "every screened plan simulated"
        while done < len(kept):
            if len(rows) >= max_simulations:
                stopped = f"max_simulations ({max_simulations}) reached"
                break
            next_estimate = kept[done][1].step_time_s * (1 - margin)
            if _enough(rows, objective, top) and _bound(rows, objective, top) < next_estimate:
                stopped = (
                    f"bound: the next estimate x (1 - {margin:g}) is slower than each of the "
                    f"{top} best simulated plans"
                )
                break
            chunk = kept[done : done + min(batch, max_simulations - len(rows))]
            points = [_point(p) for p, _ in chunk]
            out = runner(base, source, points)
            for row, (_, estimate) in zip(out, chunk, strict=True):
                row["estimate"] = estimate.to_dict()
                rows.append(row)
            done += len(chunk)
            if progress is not None:
                progress(total + len(rows), total + max_simulations)
        return rows, own, stopped

    return run


def _good(rows: list[dict[str, Any]], objective: str) -> list[dict[str, Any]]:
    """Simulated plans that ran and fit, best first by the objective."""
    good = [r for r in rows if "error" not in r and r.get("fits_in_memory")]
    return sorted(good, key=lambda row: _objective_value(row, objective))


def _enough(rows: list[dict[str, Any]], objective: str, top: int) -> bool:
    return len(_good(rows, objective)) >= top


def _bound(rows: list[dict[str, Any]], objective: str, top: int) -> float:
    """The step time of the top-th best simulated plan by the objective."""
    return max(row["step_time_s"] for row in _good(rows, objective)[:top])


def _row(row: dict[str, Any], rank: int | None) -> dict[str, Any]:
    """A simulated plan as the search reports it."""
    plan = {key: row.get(f"train.{key}") for key in PLAN_KEYS}
    plan["virtual_stages"] = row.get("virtual_stages", plan["virtual_stages"])
    out: dict[str, Any] = {"rank": rank, "plan": plan}
    for key in (
        "step_time_s",
        "mfu",
        "tokens_per_s",
        "memory_per_device_bytes",
        "fits_in_memory",
        "time_to_train_s",
        "time_to_train_p50_s",
        "goodput",
        "simulation",
    ):
        if key in row:
            out[key] = row[key]
    out["breakdown"] = {
        part: row.get(f"breakdown.{part}") for part in ("compute_s", "exposed_comm_s", "bubble_s")
    }
    if "estimate" in row:
        out["estimate"] = row["estimate"]
        out["estimate_error"] = row["estimate"]["step_time_s"] / row["step_time_s"] - 1
    return out


def _own_row(row: dict[str, Any], plan: Plan) -> dict[str, Any]:
    """The scenario's own plan as simulated (its keys from the plan, as the file gives them)."""
    return _row({f"train.{key}": getattr(plan, key) for key in PLAN_KEYS} | row, None)


def _ranked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows ranked, each with why it stands where it does: #1 against #2, the others
    against #1 (step time and where the difference comes from)."""
    out = [_row(row, rank) for rank, row in enumerate(rows, start=1)]
    for item in out:
        other = out[0] if item["rank"] > 1 else out[1] if len(out) > 1 else None
        item["why"] = _why(item, other) if other is not None else "the only plan reported"
    return out


def _why(item: dict[str, Any], other: dict[str, Any]) -> str:
    """The step time against another plan's, and the differences in its critical path's parts
    (below a millionth of the step: 0, rounding)."""
    step = other["step_time_s"]

    def seconds(value: float) -> str:
        return "0 s" if abs(value) < 1e-6 * step else f"{value:+.3g} s"

    delta = item["step_time_s"] - step
    parts = [
        f"{label} {seconds(item['breakdown'][key] - other['breakdown'][key])}"
        for label, key in (
            ("compute", "compute_s"),
            ("exposed comm", "exposed_comm_s"),
            ("bubble", "bubble_s"),
        )
    ]
    word = "faster" if delta <= 0 else "slower"
    gap = seconds(abs(delta)).removeprefix("+")
    return f"{gap} {word} than #{other['rank']}: " + ", ".join(parts)
