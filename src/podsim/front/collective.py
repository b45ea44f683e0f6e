"""One collective on a cluster, nccl-tests style: time, algbw and busbw."""

from podsim.engine.core import NetworkMode, simulate
from podsim.lowering.collective import collective_program
from podsim.lowering.program import Algorithm
from podsim.results.collective import CollectiveResult, bus_factor
from podsim.specs.clusters import Cluster


def collective(
    cluster: Cluster,
    op: str,
    size: float,
    algorithm: str = "auto",
    network: NetworkMode = "analytical",
) -> CollectiveResult:
    """Simulate one collective of `size` bytes (nccl-tests convention) on every rank."""
    program = collective_program(op, cluster.devices, size, algorithm)
    timeline = simulate(program, cluster, network)
    time = float(timeline.end.max() - timeline.start.min())
    used = timeline.resolved_algorithm[0]
    name = Algorithm(int(used)).label if used >= 0 else "direct"
    algbw = size / time
    return CollectiveResult(
        op,
        cluster.devices,
        float(size),
        name,
        network,
        time,
        algbw,
        algbw * bus_factor(op, cluster.devices),
    )
