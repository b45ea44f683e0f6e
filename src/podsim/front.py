"""The front door: scenarios by path or built-in name, and the verbs of the interface contract."""

from collections.abc import Callable
from importlib import resources
from os import PathLike
from pathlib import Path

from podsim.engine import NetworkMode
from podsim.errors import SpecError
from podsim.noise import NoiseModel
from podsim.scenario import Scenario, load_scenario, parse_scenario
from podsim.training import StepRun, TrainResult, simulate_step


def builtin_scenarios() -> dict[str, str]:
    """Scenarios shipped with podsim: name -> TOML text."""
    folder = resources.files("podsim").joinpath("data/scenarios")
    return {
        entry.name.removesuffix(".toml"): entry.read_text(encoding="utf-8")
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".toml")
    }


def resolve_scenario(scenario: "Scenario | str | PathLike[str]") -> Scenario:
    """A Scenario, a path to a TOML file, or the name of a built-in scenario."""
    if isinstance(scenario, Scenario):
        return scenario
    if Path(scenario).is_file():
        return load_scenario(scenario)
    builtins = builtin_scenarios()
    if str(scenario) in builtins:
        return parse_scenario(builtins[str(scenario)], source=f"built-in {scenario}")
    raise SpecError(
        f"scenario {str(scenario)!r} is neither a file nor a built-in scenario; "
        f"built-in: {', '.join(builtins)}"
    )


def training_step(
    scenario: "Scenario | str | PathLike[str]",
    network: NetworkMode = "analytical",
    strict: bool = False,
    progress: Callable[[int], None] | None = None,
) -> StepRun:
    """One simulated training step of a scenario with [model] and [train] tables (with its
    [noise] table, a Monte Carlo over steps; `progress` is called with the steps done)."""
    scenario = resolve_scenario(scenario)
    if scenario.model is None or scenario.train is None:
        raise SpecError(f"{scenario.source}: training needs [model] and [train] tables")
    noise = NoiseModel.from_table(scenario.noise) if scenario.noise is not None else None
    return simulate_step(
        scenario.model, scenario.train, scenario.cluster, network, strict, noise, progress
    )


def train(
    scenario: "Scenario | str | PathLike[str]",
    network: NetworkMode = "analytical",
    strict: bool = False,
) -> TrainResult:
    """`podsim train`: one step of the scenario's model and plan on its cluster."""
    return training_step(scenario, network, strict).result
