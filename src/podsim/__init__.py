"""podsim: simulate clusters of AI accelerators training and serving large models."""

from podsim.chips import Chip, catalog, get_chip
from podsim.clusters import Cluster, cluster_from_table, make_cluster, preset_cluster, presets
from podsim.collectives import CollectiveResult, collective
from podsim.engine import Timeline, simulate
from podsim.errors import DeadlockError, PodsimError, ProgramError, SpecError
from podsim.front import builtin_scenarios, resolve_scenario, train, training_step
from podsim.models import Model, get_model
from podsim.plans import Plan
from podsim.program import Algorithm, Collective, Kind, Program, ProgramBuilder
from podsim.scenario import Scenario, load_scenario, parse_scenario
from podsim.training import TrainResult

__version__ = "0.1.0"

__all__ = [
    "Algorithm",
    "Chip",
    "Cluster",
    "Collective",
    "CollectiveResult",
    "DeadlockError",
    "Kind",
    "Model",
    "Plan",
    "PodsimError",
    "Program",
    "ProgramBuilder",
    "ProgramError",
    "Scenario",
    "SpecError",
    "Timeline",
    "TrainResult",
    "builtin_scenarios",
    "catalog",
    "cluster_from_table",
    "collective",
    "get_chip",
    "get_model",
    "load_scenario",
    "make_cluster",
    "parse_scenario",
    "preset_cluster",
    "presets",
    "resolve_scenario",
    "simulate",
    "train",
    "training_step",
]
