"""The front door: scenarios by path or built-in name, and the verbs of the interface contract."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from importlib import resources
from os import PathLike
from pathlib import Path
from typing import Any

from podsim.costs.checkpoint import checkpoint_write_s, stolen_s
from podsim.costs.energy import training_energy
from podsim.engine.core import NetworkMode
from podsim.engine.failures import ASYNC_STALL_REDUCTION, FailureModel
from podsim.engine.noise import NoiseModel
from podsim.errors import SpecError
from podsim.front.chipswap import swap_chip
from podsim.front.long_run import long_run
from podsim.front.scenario import Scenario, load_scenario, parse_scenario
from podsim.front.serve import serve_scenario
from podsim.front.training import Simulation, StepRun, simulate_step
from podsim.lowering.training import LoweredStep
from podsim.results.long_run import LongRunResult
from podsim.results.serving import ServeResult
from podsim.results.training import TrainResult
from podsim.specs.clusters import make_cluster


def builtin_scenarios() -> dict[str, str]:
    """Scenarios shipped with podsim: name -> TOML text."""
    folder = resources.files("podsim").joinpath("data/scenarios")
    return {
        entry.name.removesuffix(".toml"): entry.read_text(encoding="utf-8")
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".toml")
    }


def resolve_scenario(scenario: "Scenario | str | PathLike[str]") -> Scenario:
    """A Scenario, a path to a TOML file, or the name of a built-in scenario."""
    if isinstance(scenario, Scenario):
        return scenario
    if Path(scenario).is_file():
        return load_scenario(scenario)
    builtins = builtin_scenarios()
    if str(scenario) in builtins:
        return parse_scenario(builtins[str(scenario)], source=f"built-in {scenario}")
    raise SpecError(
        f"scenario {str(scenario)!r} is neither a file nor a built-in scenario; "
        f"built-in: {', '.join(builtins)}"
    )


def training_step(
    scenario: "Scenario | str | PathLike[str]",
    network: NetworkMode = "analytical",
    strict: bool = False,
    progress: Callable[[int], None] | None = None,
    simulation: Simulation = "auto",
    *,
    before_run: Callable[[LoweredStep], None] | None = None,
) -> StepRun:
    """One simulated training step of a scenario with [model] and [train] tables (with its
    [noise] table, a Monte Carlo over steps; `progress` is called with the steps done;
    `before_run` sees the lowered step before it is simulated). `simulation`: "auto",
    "symmetric" or "full" (see podsim.front.training.simulate_step)."""
    scenario = resolve_scenario(scenario)
    if scenario.model is None or scenario.train is None:
        raise SpecError(f"{scenario.source}: training needs [model] and [train] tables")
    with naming(scenario):
        noise = NoiseModel.from_table(scenario.noise) if scenario.noise is not None else None
        run = simulate_step(
            scenario.model,
            scenario.train,
            scenario.cluster,
            network,
            strict,
            noise,
            progress,
            simulation,
            before_run=before_run,
        )
        if scenario.failures is None:
            return run
        long = long_run_of(scenario, run.result)
    # the run's energy and cost with its failures (restarts, lost work, checkpoints)
    energy = training_energy(scenario.cluster, run.result.step_time_s, long.device_hours)
    result = replace(run.result, long_run=long.to_dict(), device_hours=long.device_hours, **energy)
    return replace(run, result=result)


@contextmanager
def naming(scenario: Scenario) -> Iterator[None]:
    """Errors raised while a scenario runs name its file, as errors found while reading it do."""
    try:
        yield
    except SpecError as error:
        if str(error).startswith(f"{scenario.source}"):
            raise
        raise SpecError(f"{scenario.source}: {error}") from error


def long_run_of(scenario: Scenario, result: TrainResult) -> LongRunResult:
    """The whole run with failures, checkpoints and restarts ([failures]): its useful time is
    the failure-free time to train the plan's tokens at the simulated step time."""
    if result.time_to_train_s is None:
        raise SpecError(f"{scenario.source}: [failures] needs train.tokens (what to train)")
    cluster = scenario.cluster
    model = FailureModel.from_table(
        scenario.failures,
        cluster.devices,
        result.time_to_train_s,
        links=cluster.devices,
        vendor=cluster.chip.vendor,
    )
    if "checkpoint_write" not in scenario.failures:  # from the bytes and the storage
        model = replace(model, **checkpoint_costs(scenario, result, model.checkpoint_async))
    return long_run(model)


def checkpoint_costs(scenario: Scenario, result: TrainResult, asynchronous: bool) -> dict:
    """The checkpoint write time from the checkpoint's bytes and the cluster's storage
    (costs/checkpoint.py); asynchronous: the snapshot stall plus the NIC time the background
    write steals while training's own fabric traffic is exposed."""
    plan, cluster = scenario.train, scenario.cluster
    write = checkpoint_write_s(scenario.model, plan, cluster)
    out: dict[str, float] = {"checkpoint_write_s": write}
    if asynchronous:
        by_kind = result.breakdown.exposed_comm_by_kind_s
        share = (by_kind.get("pp", 0.0) + by_kind.get("dp", 0.0)) / result.step_time_s
        stolen = stolen_s(scenario.model, plan, cluster, share)
        out["checkpoint_snapshot_s"] = write / ASYNC_STALL_REDUCTION + stolen
    return out


def train(
    scenario: "Scenario | str | PathLike[str]",
    network: NetworkMode = "analytical",
    strict: bool = False,
) -> TrainResult:
    """`podsim train`: one step of the scenario's model and plan on its cluster."""
    return training_step(scenario, network, strict).result


def serve(scenario: "Scenario | str | PathLike[str]") -> ServeResult:
    """`podsim serve`: prefill / decode of the scenario's [serve] deployment on its cluster."""
    return serve_scenario(resolve_scenario(scenario))


def on_chip(scenario: Scenario, chip: str) -> Scenario:
    """The scenario on another chip's standard system (its domain size and links), with the
    same number of devices and the same fabric above the domains (pods, oversubscription)."""
    old = scenario.cluster
    cluster = make_cluster(
        chip, old.devices, oversubscription=old.oversubscription, launch_latency=old.launch_latency
    )
    if old.pod_size < old.devices and old.pod_size % cluster.domain_size == 0:
        cluster = replace(cluster, pod_size=old.pod_size)
    return replace(scenario, cluster=cluster)


def compare(
    scenario: "Scenario | str | PathLike[str]",
    chips: list[str],
    network: NetworkMode = "analytical",
    *,
    standard_system: bool = False,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """`podsim compare`: the same work on several chips, one row of train's keys per chip
    (or serve's, for a scenario with [serve] and no [train]),
    with `changes` (what differs from the scenario, one line each), `precision` (the plan's,
    or bf16 where the chip has no peak for it: `precision_fallback`). By default only what
    the chip brings changes (podsim.front.chipswap); standard_system: each chip on its
    standard system (`on_chip`). `progress` is called with the chips done."""
    base = resolve_scenario(scenario)
    serving = base.serve is not None and base.train is None
    rows = []
    for done, chip in enumerate(chips, start=1):
        swap = swap_chip(base, chip)
        job = swap.scenario
        if standard_system:
            job = replace(on_chip(base, chip), train=swap.scenario.train)
        result = serve(job).to_dict() if serving else train(job, network).to_dict()
        changes = list(swap.changes) if not standard_system else _standard_changes(base, job)
        row = {"chip": chip, **result, "changes": changes}
        row |= {"precision": swap.precision, "precision_fallback": swap.precision_fallback}
        rows.append(row)
        if progress is not None:
            progress(done)
    return rows


def _standard_changes(base: Scenario, job: Scenario) -> list[str]:
    old, new = base.cluster, job.cluster
    lines = [f"{new.chip.id}'s standard system"]
    if old.domain_size != new.domain_size:
        lines.append(f"scale-up domain {old.domain_size} -> {new.domain_size}")
    for label, key in (("scale-up", "scale_up_bandwidth"), ("scale-out", "scale_out_bandwidth")):
        a, b = getattr(old, key), getattr(new, key)
        if a != b:
            lines.append(f"{label} {a / 1e9:,.0f} -> {b / 1e9:,.0f} GB/s")
    old_plan, new_plan = base.train, job.train
    if old_plan and new_plan and old_plan.precision != new_plan.precision:
        lines.append(f"precision {old_plan.precision} -> {new_plan.precision}")
    return lines
