"""podsim: simulate clusters of AI accelerators training and serving large models."""

from podsim.chips import Chip, catalog, get_chip
from podsim.clusters import Cluster, cluster_from_table, make_cluster, preset_cluster, presets
from podsim.collectives import CollectiveResult, collective
from podsim.engine import Timeline, simulate
from podsim.errors import DeadlockError, PodsimError, ProgramError, SpecError
from podsim.front import builtin_scenarios, resolve_scenario, train, training_step
from podsim.models import Model, get_model
from podsim.noise import NoiseModel
from podsim.plans import Plan
from podsim.program import Algorithm, Collective, Kind, Program, ProgramBuilder
from podsim.reliability import FailureModel, LongRunResult, long_run
from podsim.scenario import Scenario, load_scenario, parse_scenario
from podsim.sweep import scale_sweep
from podsim.trace import chrome_trace, write_chrome_trace
from podsim.training import TrainResult
from podsim.version import __version__ as __version__

__all__ = [
    "Algorithm",
    "Chip",
    "Cluster",
    "Collective",
    "CollectiveResult",
    "DeadlockError",
    "FailureModel",
    "Kind",
    "LongRunResult",
    "Model",
    "NoiseModel",
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
    "chrome_trace",
    "cluster_from_table",
    "collective",
    "get_chip",
    "get_model",
    "load_scenario",
    "long_run",
    "make_cluster",
    "parse_scenario",
    "preset_cluster",
    "presets",
    "resolve_scenario",
    "scale_sweep",
    "simulate",
    "train",
    "training_step",
    "write_chrome_trace",
]
