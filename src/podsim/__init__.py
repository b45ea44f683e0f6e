"""podsim: simulate clusters of AI accelerators training and serving large models."""

from podsim.engine.core import Timeline, simulate
from podsim.engine.failures import FailureModel
from podsim.engine.noise import NoiseModel
from podsim.errors import DeadlockError, DependencyError, PodsimError, ProgramError, SpecError
from podsim.front.api import builtin_scenarios, resolve_scenario, serve, train, training_step
from podsim.front.collective import collective
from podsim.front.grid_sweep import sweep, sweep_frame
from podsim.front.long_run import long_run
from podsim.front.scenario import Scenario, load_scenario, parse_scenario
from podsim.front.search import SearchResult, search
from podsim.front.showcase import showcase
from podsim.front.sweep import scale_sweep
from podsim.lowering.program import Algorithm, Collective, Kind, Program, ProgramBuilder
from podsim.plans.training import Plan
from podsim.results.collective import CollectiveResult
from podsim.results.long_run import LongRunResult
from podsim.results.plots import figures_for, plot_result
from podsim.results.serving import ServeResult
from podsim.results.trace import chrome_trace, write_chrome_trace
from podsim.results.training import TrainResult
from podsim.specs.chips import Chip, catalog, get_chip
from podsim.specs.clusters import Cluster, cluster_from_table, make_cluster, preset_cluster, presets
from podsim.specs.models import Model, get_model
from podsim.version import __version__ as __version__

__all__ = [
    "Algorithm",
    "Chip",
    "Cluster",
    "Collective",
    "CollectiveResult",
    "DeadlockError",
    "DependencyError",
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
    "SearchResult",
    "ServeResult",
    "SpecError",
    "Timeline",
    "TrainResult",
    "builtin_scenarios",
    "catalog",
    "chrome_trace",
    "cluster_from_table",
    "collective",
    "figures_for",
    "get_chip",
    "get_model",
    "load_scenario",
    "long_run",
    "make_cluster",
    "parse_scenario",
    "plot_result",
    "preset_cluster",
    "presets",
    "resolve_scenario",
    "scale_sweep",
    "search",
    "serve",
    "showcase",
    "simulate",
    "sweep",
    "sweep_frame",
    "train",
    "training_step",
    "write_chrome_trace",
]
