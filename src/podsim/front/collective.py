"""One collective on a cluster, nccl-tests style: time, algbw and busbw."""

import dataclasses

import numpy as np

from podsim.engine.core import NetworkMode, collective_protocol, simulate
from podsim.lowering.collective import collective_program
from podsim.lowering.program import Algorithm, Collective
from podsim.results.collective import CollectiveResult, bus_factor
from podsim.specs.clusters import PROTOCOLS, Cluster


def collective(
    cluster: Cluster,
    op: str,
    size: float,
    algorithm: str = "auto",
    network: NetworkMode = "analytical",
    protocol: str | None = None,
) -> CollectiveResult:
    """Simulate one collective of `size` bytes (nccl-tests convention) on every rank.
    `protocol` (auto, ll, ll128, simple) replaces the cluster's for rings and nccl-tree
    (docs/engine.md)."""
    if protocol is not None:
        cluster = dataclasses.replace(cluster, protocol=protocol)
    program = collective_program(op, cluster.devices, size, algorithm)
    timeline = simulate(program, cluster, network)
    time = float(timeline.end.max() - timeline.start.min())
    used = timeline.resolved_algorithm[0]
    name = Algorithm(int(used)).label if used >= 0 else "direct"
    ran = PROTOCOLS.index("simple")  # send-recv: a plain transfer
    if used >= 0:
        ranks = np.arange(cluster.devices, dtype=np.int32)
        ran = collective_protocol(cluster, Collective.parse(op).value, int(used), ranks, size)
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
        PROTOCOLS[ran],
    )
