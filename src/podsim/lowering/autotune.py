"""Choices a plan leaves open, settled by trying them: the number of interleaved virtual stages.

The candidates are timed by a function the caller passes in (it lowers and runs each one), so
that this layer never calls the engine itself.
"""

from collections.abc import Callable
from dataclasses import replace

from podsim.costs.memory import memory_per_device
from podsim.lowering.training import chunk_layers, position_layers
from podsim.plans.training import Plan
from podsim.specs.clusters import Cluster

MAX_VIRTUAL_STAGES = 8
# Times one step of (plan, cluster) with v virtual stages: the step's makespan in seconds.
Makespan = Callable[[Plan, Cluster, int], float]


def virtual_stage_options(model, plan: Plan) -> list[int]:
    """Interleaving needs microbatches in rounds of pp (Megatron) and a layer per chunk; chunks
    may differ by one layer, as in Llama 3's uneven stages."""
    if plan.schedule == "dualpipe":
        return [2]  # a chunk in each direction
    if plan.schedule != "interleaved":
        return [1]
    if plan.virtual_stages:
        return [plan.virtual_stages]
    # "auto" interleaves from pp = 3, as Megatron-LM of 2021 (the software of the calibration
    # rows) required; an explicit virtual_stages may interleave pp = 2 (Megatron-Core).
    if plan.pp < 3 or plan.microbatches % plan.pp:
        return [1]
    fitting = [v for v in range(1, MAX_VIRTUAL_STAGES + 1) if model.layers >= plan.pp * v]
    return fitting or [1]  # too few layers even for one: the lowering says so


def stage_memory(model, plan: Plan, v: int):
    """Memory with the lowering's layer split: the first stage takes the largest chunks
    (DualPipe: one chunk of pp per direction)."""
    planned = plan if plan.virtual_stages == v else replace(plan, virtual_stages=v)
    positions = plan.pp if plan.schedule == "dualpipe" else plan.pp * v
    if plan.schedule == "dualpipe" or position_layers(model, plan, positions) != chunk_layers(
        model.layers, positions
    ):  # DualPipe holds two stages, a balanced split differs: the lowering's split
        ranges = position_layers(model, plan, positions)
        counts = [
            sum(len(ranges[c * plan.pp + s]) for c in range(positions // plan.pp))
            for s in range(plan.pp)
        ]
        return memory_per_device(model, planned, counts=counts)
    layers = max(map(len, chunk_layers(model.layers, plan.pp * v))) * v
    return memory_per_device(model, planned, layers)


def one_replica(plan: Plan, cluster: Cluster) -> tuple[Plan, Cluster]:
    """The same pipeline with as few data-parallel replicas as expert parallelism allows:
    without noise every replica runs alike, so this ranks the choices of a plan cheaply."""
    small = one_replica_plan(plan)
    return small, cluster.with_devices(small.devices)


def one_replica_plan(plan: Plan) -> Plan:
    """The plan of one_replica."""
    dp = plan.ep if plan.dp % plan.ep == 0 else plan.dp
    return replace(plan, dp=dp, global_batch=plan.global_batch // plan.dp * dp)


def choose_virtual_stages(model, plan: Plan, cluster: Cluster, makespan: Makespan) -> int:
    """The fastest number of virtual stages that fits (the fastest overall if none fits);
    `makespan(plan, cluster, v)` times one candidate (the caller runs the engine)."""
    options = virtual_stage_options(model, plan)
    if len(options) == 1:
        return options[0]
    small, proxy = one_replica(plan, cluster)
    capacity = cluster.chip.hbm_bytes
    misfits = {v: not stage_memory(model, plan, v).fits(capacity) for v in options}
    if not all(misfits.values()):  # one that fits beats every one that does not: time those
        options = [v for v in options if not misfits[v]]
    scored = [
        (misfits[v], makespan(replace(small, virtual_stages=v), proxy, v), v) for v in options
    ]
    return min(scored)[2]
