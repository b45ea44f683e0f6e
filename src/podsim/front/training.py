"""One training step of a model under a plan on a cluster: lower it, run it, report it."""

from collections.abc import Callable
from dataclasses import dataclass, replace

from podsim.engine.core import NetworkMode, Timeline, simulate, simulate_steps
from podsim.engine.noise import NoiseModel
from podsim.errors import SpecError
from podsim.lowering.autotune import choose_virtual_stages, stage_memory
from podsim.lowering.training import LoweredStep, lower_step
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


def simulate_step(
    model,
    plan: Plan,
    cluster: Cluster,
    network: NetworkMode = "analytical",
    strict: bool = False,
    noise: "NoiseModel | None" = None,
    progress: Callable[[int], None] | None = None,
) -> StepRun:
    """Simulate one step, every rank. With virtual_stages "auto", the fastest that fits. With
    noise, a Monte Carlo over noise.steps steps: the step time is their mean, and the breakdown's
    straggler_s is what the noise adds to the noise-free step."""
    check_plan(model, plan, cluster)

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
    lowered, timeline = run_step(model, planned, cluster, network, v)
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
