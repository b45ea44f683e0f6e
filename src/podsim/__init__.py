"""podsim: simulate clusters of AI accelerators training and serving large models."""

from podsim.chips import Chip, catalog, get_chip
from podsim.clusters import Cluster, cluster_from_table, make_cluster, preset_cluster, presets
from podsim.collectives import CollectiveResult, collective
from podsim.engine import Timeline, simulate
from podsim.errors import DeadlockError, PodsimError, ProgramError, SpecError
from podsim.program import Algorithm, Collective, Kind, Program, ProgramBuilder

__version__ = "0.1.0"

__all__ = [
    "Algorithm",
    "Chip",
    "Cluster",
    "Collective",
    "CollectiveResult",
    "DeadlockError",
    "Kind",
    "PodsimError",
    "Program",
    "ProgramBuilder",
    "ProgramError",
    "SpecError",
    "Timeline",
    "catalog",
    "cluster_from_table",
    "collective",
    "get_chip",
    "make_cluster",
    "preset_cluster",
    "presets",
    "simulate",
]
