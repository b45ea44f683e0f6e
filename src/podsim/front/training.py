"""One training step of a model under a plan on a cluster: lower it, run it, report it."""

from collections.abc import Callable
from dataclasses import dataclass, replace

from podsim.engine.core import (
    NetworkMode,
    Timeline,
    check_monte_carlo_size,
    simulate,
    simulate_steps,
)
from podsim.engine.noise import NoiseModel
from podsim.errors import SpecError
from podsim.lowering.autotune import (
    choose_virtual_stages,
    one_replica_plan,
    stage_memory,
    virtual_stage_options,
)
from podsim.lowering.training import LoweredStep, check_step_size, estimate_step_ops, lower_step
from podsim.plans.training import Plan, check_plan
from podsim.results.training import TrainResult, train_result
from podsim.specs.clusters import Cluster


def run_step(model, plan: Plan, cluster: Cluster, network: NetworkMode, v: int):
    lowered = lower_step(model, plan, cluster, v)
    return lowered, simulate(lowered.program, cluster, network)


@dataclass(frozen=True)
class StepRun:
    """A simulated step: the result, and the program and timeline behind it (for traces)."""

    result: TrainResult
    lowered: LoweredStep
    timeline: Timeline

    def op_names(self) -> list[str]:
        """A name per op, for traces: each stage's template names copied to its ranks."""
        names: list[str] = []
        for template in self.lowered.templates:
            names += [op.name for op in template.ops] * self.lowered.layout.stage_size
        return names


def check_step_cost(model, plan: Plan, noise: "NoiseModel | None" = None) -> None:
    """Refuses, before any work, a step whose lowering or simulation would be too large: each
    candidate number of virtual stages (the autotuner lowers them on one replica), the step
    itself, and steps x ops of a noise Monte Carlo (SpecError with the estimate and limit)."""
    options = virtual_stage_options(model, plan)
    if len(options) > 1:  # the autotuner lowers every option on one replica
        small = one_replica_plan(plan)
        for v in options:
            check_step_size(small, v)
    check_step_size(plan, min(options))  # the chosen v is checked again when it is lowered
    if noise is not None:
        check_monte_carlo_size(noise.steps, estimate_step_ops(plan, min(options))[1])


def simulate_step(
    model,
    plan: Plan,
    cluster: Cluster,
    network: NetworkMode = "analytical",
    strict: bool = False,
    noise: "NoiseModel | None" = None,
    progress: Callable[[int], None] | None = None,
    before_run: Callable[[LoweredStep], None] | None = None,
) -> StepRun:
    """Simulate one step, every rank. With virtual_stages "auto", the fastest that fits. With
    noise, a Monte Carlo over noise.steps steps: the step time is their mean, and the breakdown's
    straggler_s is what the noise adds to the noise-free step. `before_run` sees the lowered
    step before it is simulated (e.g. to refuse a trace too large to write)."""
    check_plan(model, plan, cluster)
    check_step_cost(model, plan, noise)

    def makespan(candidate: Plan, on: Cluster, v: int) -> float:
        return run_step(model, candidate, on, network, v)[1].makespan

    v = choose_virtual_stages(model, plan, cluster, makespan)
    memory = stage_memory(model, plan, v)
    fits = memory.fits(cluster.chip.hbm_bytes)
    if strict and not fits:
        raise SpecError(
            f"the plan needs {memory.total / 1e9:.1f} GB per device; "
            f"{cluster.chip.id} has {cluster.chip.hbm_bytes / 1e9:.0f} GB"
        )
    planned = replace(plan, virtual_stages=v)
    lowered = lower_step(model, planned, cluster, v)
    if before_run is not None:
        before_run(lowered)
    timeline = simulate(lowered.program, cluster, network)
    steps = None
    if noise is not None:
        steps = simulate_steps(lowered.program, cluster, network, noise, noise.steps, progress)
    result = train_result(
        model, planned, cluster, network, memory, fits, lowered, timeline, steps, noise
    )
    return StepRun(result, lowered, timeline)


def train(
    model, plan: Plan, cluster: Cluster, network: NetworkMode = "analytical", strict: bool = False
) -> TrainResult:
    """One step's result (see simulate_step)."""
    return simulate_step(model, plan, cluster, network, strict).result
