"""Scale sweeps: the same job on more and more devices (weak scaling: each data-parallel
replica keeps its batch, so the global batch grows with the cluster, up to an optional maximum
past which it is held: strong scaling), to see where time to train stops falling and goodput
collapses."""

from collections.abc import Callable, Iterable
from dataclasses import replace
from os import PathLike
from typing import Any

from podsim.engine.core import NetworkMode
from podsim.engine.noise import NoiseModel
from podsim.errors import SpecError, check
from podsim.front.api import long_run_of, resolve_scenario, training_step
from podsim.front.scenario import Scenario, noise_on
from podsim.front.training import check_step_cost


def weak_scaled(scenario: Scenario, devices: int, max_global_batch: int | None = None) -> Scenario:
    """The scenario on `devices` devices: tp, pp, cp and each replica's batch kept, dp and the
    global batch grown (or shrunk) with the cluster. With `max_global_batch`, the global batch
    grows only up to it (rounded down to whole micro-batches per replica); past it the batch
    is held and each replica gets fewer sequences (strong scaling)."""
    plan = scenario.train
    if plan is None:
        raise SpecError(f"{scenario.source}: a scale sweep needs a [train] table")
    split = plan.tp * plan.pp * plan.cp
    check(devices % split == 0, "--scale devices", devices, f"a multiple of tp * pp * cp ({split})")
    dp = devices // split
    per_replica = plan.global_batch // plan.dp
    global_batch = per_replica * dp
    if max_global_batch is not None and global_batch > max_global_batch:
        step = dp * plan.micro_batch
        if step > max_global_batch:
            raise SpecError(
                f"--max-global-batch = {max_global_batch:,} is not allowed on {devices:,} "
                f"devices: dp x micro_batch ({dp:,} x {plan.micro_batch}) sequences is the "
                "smallest global batch there"
            )
        global_batch = max_global_batch // step * step
    try:  # the scenario's own values on the new size: name the file they came from
        plan = replace(plan, dp=dp, global_batch=global_batch)
        noise = None if scenario.noise is None else noise_on(scenario.noise, devices)
        cluster = scenario.cluster.with_devices(devices)
    except SpecError as error:
        raise SpecError(f"{scenario.source} on {devices} devices: {error}") from error
    return replace(scenario, cluster=cluster, train=plan, noise=noise)


def scale_sweep(
    scenario: "Scenario | str | PathLike[str]",
    sizes: Iterable[int],
    network: NetworkMode = "analytical",
    progress: Callable[[int], None] | None = None,
    strict: bool = False,
    max_global_batch: int | None = None,
) -> list[dict[str, Any]]:
    """One row per cluster size: the step, the global batch, whether it fits in memory and,
    with [failures], the long run. Every size is checked before any is simulated (a size too
    large is refused at once, with its estimate); strict: a size whose plan does not fit in
    memory is an error, as for one step. max_global_batch: see `weak_scaled`."""
    if max_global_batch is not None:
        check(max_global_batch >= 1, "--max-global-batch", max_global_batch, "an integer >= 1")
    base = resolve_scenario(scenario)
    sizes = list(sizes)
    jobs = [weak_scaled(base, devices, max_global_batch) for devices in sizes]
    for devices, job in zip(sizes, jobs, strict=True):
        if job.model is None or job.train is None:
            raise SpecError(f"{job.source}: training needs [model] and [train] tables")
        noise = None if job.noise is None else NoiseModel.from_table(job.noise)
        try:
            check_step_cost(job.model, job.train, noise)
        except SpecError as error:
            raise SpecError(f"{base.source} on {devices:,} devices: {error}") from error
    rows = []
    for done, (devices, scaled) in enumerate(zip(sizes, jobs, strict=True), start=1):
        result = training_step(scaled, network, strict).result
        row = {
            "devices": devices,
            "global_batch": result.plan["global_batch"],
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
