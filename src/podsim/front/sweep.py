"""Scale sweeps: the same job on more and more devices (weak scaling: each data-parallel
replica keeps its batch), to see where time to train stops falling and goodput collapses."""

from collections.abc import Callable, Iterable
from dataclasses import replace
from os import PathLike
from typing import Any

from podsim.engine.core import NetworkMode
from podsim.errors import SpecError, check
from podsim.front.api import long_run_of, resolve_scenario, training_step
from podsim.front.scenario import Scenario


def weak_scaled(scenario: Scenario, devices: int) -> Scenario:
    """The scenario on `devices` devices: tp, pp, cp and each replica's batch kept, dp and the
    global batch grown (or shrunk) with the cluster."""
    plan = scenario.train
    if plan is None:
        raise SpecError(f"{scenario.source}: a scale sweep needs a [train] table")
    split = plan.tp * plan.pp * plan.cp
    check(devices % split == 0, "--scale devices", devices, f"a multiple of tp * pp * cp ({split})")
    dp = devices // split
    per_replica = plan.global_batch // plan.dp
    plan = replace(plan, dp=dp, global_batch=per_replica * dp)
    return replace(scenario, cluster=scenario.cluster.with_devices(devices), train=plan)


def scale_sweep(
    scenario: "Scenario | str | PathLike[str]",
    sizes: Iterable[int],
    network: NetworkMode = "analytical",
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """One row per cluster size: the step and, with [failures], the long run."""
    base = resolve_scenario(scenario)
    rows = []
    for done, devices in enumerate(sizes, start=1):
        scaled = weak_scaled(base, devices)
        result = training_step(scaled, network).result
        row = {
            "devices": devices,
            "step_time_s": result.step_time_s,
            "mfu": result.mfu,
            "tokens_per_s": result.tokens_per_s,
            "fits_in_memory": result.fits_in_memory,
        }
        if result.time_to_train_s is not None:
            row["time_to_train_s"] = result.time_to_train_s
        if scaled.failures is not None:
            row |= long_run_of(scaled, result).to_dict()
        rows.append(row)
        if progress is not None:
            progress(done)
    return rows
