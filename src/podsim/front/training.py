"""One training step of a model under a plan on a cluster: lower it, run it, report it.

Without noise every rank of a pipeline stage runs alike whenever the topology treats them alike,
so the step is simulated on one representative rank per stage (a *symmetric* run, exactly equal
to the full one; docs/engine.md, "Symmetric runs"); where that cannot be guaranteed, and for noise
and traces, every rank is simulated. The result says which (`simulation`).
"""

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from podsim.engine.core import (
    NetworkMode,
    Timeline,
    check_monte_carlo_size,
    finish,
    shared_links,
    simulate,
    simulate_replicated_steps,
    simulate_steps,
    start_once,
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

Simulation = Literal["auto", "symmetric", "full"]
SIMULATIONS = ("auto", "symmetric", "full")


@dataclass(frozen=True)
class Simulated:
    """A noise-free run of a lowered step: its timeline (of the program it ran), how it ran
    ("symmetric" or "full"), and why not symmetric if it could not be."""

    timeline: Timeline
    simulation: str
    reason: str | None = None


def simulate_lowered(
    lowered: LoweredStep, cluster: Cluster, network: NetworkMode, simulation: Simulation = "auto"
) -> Simulated:
    """Runs a lowered step without noise: symmetric where exact ("auto"), else every rank."""
    if simulation not in SIMULATIONS:
        raise SpecError(f"simulation = {simulation!r} is not known; allowed: auto, symmetric, full")
    reason = None
    if simulation != "full":
        reason, crosses_pods = lowered.symmetry(cluster)
        # Traffic across pods: contention shares the pod uplinks between the groups of a stage,
        # which a representative alone does not see; the analytical mode charges them the waves
        # of all concurrent copies (docs/engine.md, "Pod links"), which the engine is told of
        # (`copies`) and checks: every copy must take its representative's time.
        if reason is None and crosses_pods and network == "contention":
            reason = "traffic crosses pods, whose uplinks the groups of a stage share"
        if reason is None:
            program = lowered.symmetric_program
            copies = lowered.symmetric_copies() if crosses_pods else None
            timeline = simulate(program, cluster, network, symmetric=True, copies=copies)
            reason = timeline.symmetry_note or None
            if network == "contention":
                reason = shared_links(program, timeline, cluster.domain_size)
            if reason is None:
                return Simulated(timeline, "symmetric")
        if simulation == "symmetric":
            raise SpecError(f"a symmetric run would not be exact here: {reason}")
    # The engine copies the program: one built for this run alone is dropped before it runs.
    engine = start_once(lowered.program_once, cluster, network)
    return Simulated(finish(engine), "full", reason)


def run_step(
    model,
    plan: Plan,
    cluster: Cluster,
    network: NetworkMode,
    v: int,
    simulation: Simulation = "auto",
):
    lowered = lower_step(model, plan, cluster, v)
    return lowered, simulate_lowered(lowered, cluster, network, simulation)


@dataclass(frozen=True)
class StepRun:
    """A simulated step: the result, the lowered step, and the noise-free timeline of the
    program that ran (`lowered.program`, or `lowered.symmetric_program` if
    result.simulation is "symmetric")."""

    result: TrainResult
    lowered: LoweredStep
    timeline: Timeline

    def op_names(self) -> list[str]:
        """A name per op of every rank's program, for traces: each stage's template names
        copied to its ranks."""
        names: list[str] = []
        for template in self.lowered.templates:
            names += [op.name for op in template.ops] * self.lowered.layout.stage_size
        return names


def check_step_cost(model, plan: Plan, noise: "NoiseModel | None" = None) -> None:
    """Refuses, before any work, a step whose lowering or simulation would be too large: each
    candidate number of virtual stages (the autotuner lowers them on one replica), the step's
    templates, and steps x ops of a noise Monte Carlo (SpecError with the estimate and limit).
    Every rank's program is checked where it is built: symmetric runs never build it."""
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
    simulation: Simulation = "auto",
    before_run: Callable[[LoweredStep], None] | None = None,
) -> StepRun:
    """Simulate one step. With virtual_stages "auto", the fastest that fits. With noise, a Monte
    Carlo over noise.steps steps, every rank simulated: the step time is their mean, and the
    breakdown's straggler_s is what the noise adds to the noise-free step. `simulation`: "auto"
    (symmetric where exact), "symmetric" (an error where not exact) or "full" (every rank; the
    timeline then covers every rank's program, as traces need). `before_run` sees the lowered
    step before it is simulated (e.g. to refuse a trace too large to write)."""
    check_plan(model, plan, cluster)
    check_step_cost(model, plan, noise)

    def makespan(candidate: Plan, on: Cluster, v: int) -> float:
        return run_step(model, candidate, on, network, v, simulation)[1].timeline.makespan

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
    if noise is not None and not replicable(lowered, cluster, network, simulation):
        lowered.program  # noqa: B018  built once, kept for the Monte Carlo and a full run
    if before_run is not None:
        before_run(lowered)
    run = simulate_lowered(lowered, cluster, network, simulation)
    steps = None
    if noise is not None:
        steps = noisy_steps(lowered, cluster, network, noise, run, progress)
    # A full analytical run handles one event per op, instance and transfer: report that count
    # for a symmetric run too, so that the two give the same result.
    events = run.timeline.events
    if run.simulation == "symmetric" and network == "analytical":
        events = lowered.full_events()
    result = train_result(
        model, planned, cluster, network, memory, fits, lowered, run.timeline, steps, noise
    )
    result = replace(result, events=events, simulation=run.simulation, simulation_note=run.reason)
    return StepRun(result, lowered, run.timeline)


def replicable(
    lowered: LoweredStep, cluster: Cluster, network: NetworkMode, simulation: Simulation
) -> bool:
    """Whether a noisy step may run every rank from the representatives (noisy_steps), as far as
    is known before the noise-free run (which may still find pod links loaded unevenly)."""
    exact = simulation != "full" and lowered.symmetry(cluster)[0] is None
    return exact and network == "analytical"


def noisy_steps(
    lowered: LoweredStep,
    cluster: Cluster,
    network: NetworkMode,
    noise: NoiseModel,
    run: Simulated,
    progress: Callable[[int], None] | None = None,
) -> "np.ndarray":
    """The noise Monte Carlo of a step, every rank simulated: where its noise-free run was
    symmetric in the analytical network, replicated from the representatives (the same bits as
    the every-rank program's, without building it; docs/engine.md, "Replicated runs"), else on
    the every-rank program (contention, asymmetric placements, simulation "full")."""
    if run.simulation == "symmetric" and network == "analytical":
        return simulate_replicated_steps(
            lowered.symmetric_program,
            lowered.symmetric_copies(),
            cluster,
            noise,
            noise.steps,
            progress,
        )
    return simulate_steps(lowered.program, cluster, network, noise, noise.steps, progress)


def train(
    model, plan: Plan, cluster: Cluster, network: NetworkMode = "analytical", strict: bool = False
) -> TrainResult:
    """One step's result (see simulate_step)."""
    return simulate_step(model, plan, cluster, network, strict).result
