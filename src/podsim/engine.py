"""Runs a program on the C++ engine: the Python side of podsim._core."""

from dataclasses import dataclass
from typing import Literal

import numpy as np

from podsim import _core
from podsim.clusters import Cluster
from podsim.errors import SpecError
from podsim.program import Program

NetworkMode = Literal["analytical", "contention"]
NETWORK_MODES = ("analytical", "contention")
# Events handled per call into C++: long runs return to Python this often, so Ctrl-C works.
CHUNK_EVENTS = 1 << 20


@dataclass(frozen=True)
class Timeline:
    """What the engine measured: per-op start and end (seconds) and run statistics."""

    start: np.ndarray
    end: np.ndarray
    resolved_algorithm: np.ndarray  # per op: the algorithm a collective ran, -1 otherwise
    events: int
    makespan: float


def network_mode(network: str) -> int:
    if network not in NETWORK_MODES:
        raise SpecError(f"network = {network!r} is not known; allowed: " + ", ".join(NETWORK_MODES))
    return NETWORK_MODES.index(network)


def core_topology(cluster: Cluster) -> "_core.Topology":
    return _core.Topology(*cluster.topology())


def simulate(
    program: Program,
    cluster: Cluster,
    network: NetworkMode = "analytical",
    chunk_events: int = CHUNK_EVENTS,
) -> Timeline:
    """Run every rank's program on the cluster; raises DeadlockError if it cannot finish."""
    columns = {name: getattr(program, name) for name in program.__dataclass_fields__}
    engine = _core.Engine(columns, core_topology(cluster), network_mode(network))
    while not engine.advance(chunk_events):
        pass
    return Timeline(
        engine.start,
        engine.end,
        engine.resolved_algorithm,
        int(engine.events_processed),
        float(engine.makespan),
    )
