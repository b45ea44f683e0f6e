"""Published results reproduced: each case is a scenario file beside NAME.expect.json
({metric, value, source}); `podsim validate` prints predicted against published."""

import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from podsim.front.api import train
from podsim.front.scenario import parse_scenario, scenario_from_document
from podsim.front.training import simulate_step
from podsim.results.training import phase_split


@dataclass(frozen=True)
class Case:
    name: str
    metric: str
    published: float
    predicted: float
    source: str

    @property
    def error(self) -> float:
        """Signed relative error of the prediction."""
        return (self.predicted - self.published) / self.published


# The top folder's rows are the calibration set (in sample: `podsim calibrate` fits on them)
# and, by this prefix, the rows held out of it (Megatron-LM SC'21 Table 2: never fitted on).
HELD_OUT_PREFIX = "megatron_sc21_t2_"
OUT_OF_SAMPLE = "out_of_sample"  # a subfolder: published runs nothing was fitted on
# How far an out-of-sample row may miss, by row family (a case-name prefix); every other row
# within OUT_OF_SAMPLE_BOUND. A family's wider bound is a reported limit of podsim
# (docs/validation.md says what it misses there), never a fit.
OUT_OF_SAMPLE_BOUND = 0.25
OUT_OF_SAMPLE_FAMILIES = {
    "deepseek_v3_b200_": ("MoE with 16 pipeline stages on 8-GPU DGX B200 nodes", 0.50),
}
# A subfolder: published runs of other software stacks (each scenario's [stack]), out of sample
SOFTWARE_STACKS = "software_stacks"


def case_names(folder_name: str = "") -> list[str]:
    """Calibration and held-out cases; with OUT_OF_SAMPLE, the out-of-sample ones."""
    folder = resources.files("podsim").joinpath("data/validation", folder_name)
    return sorted(
        e.name.removesuffix(".toml") for e in folder.iterdir() if e.name.endswith(".toml")
    )


def run_case(
    name: str, folder_name: str = "", edit: Callable[[dict[str, Any]], None] | None = None
) -> Case:
    """A case run as published, or with its scenario document changed by `edit` first (e.g.
    without_stack, fused_attention)."""
    folder = resources.files("podsim").joinpath("data/validation", folder_name)
    expect = json.loads(folder.joinpath(f"{name}.expect.json").read_text(encoding="utf-8"))
    text = folder.joinpath(f"{name}.toml").read_text(encoding="utf-8")
    if edit is not None:
        document = tomllib.loads(text)
        edit(document)
        scenario = scenario_from_document(document, source=name)
    else:
        scenario = parse_scenario(text, source=name)
    result = train(scenario).to_dict()
    return Case(
        name,
        expect["metric"],
        float(expect["value"]),
        float(result[expect["metric"]]),
        expect["source"],
    )


def mape(cases: list[Case]) -> float:
    return sum(abs(c.error) for c in cases) / len(cases)


def in_sample(case: Case) -> bool:
    """Whether a top-folder case is a calibration row (not held out)."""
    return not case.name.startswith(HELD_OUT_PREFIX)


def out_of_sample_bound(name: str) -> float:
    """The largest |error| an out-of-sample row may have: its family's, else the default."""
    for prefix, (_, bound) in OUT_OF_SAMPLE_FAMILIES.items():
        if name.startswith(prefix):
            return bound
    return OUT_OF_SAMPLE_BOUND


CALIBRATION_V3 = "deepseek_v3_2048_h800"
# DeepSeek ISCA'25 (arXiv 2505.09343) Table 4: one DeepSeek-V3 step on 2,048 H800s by phase
# of a pipeline rank, seconds (they add up to 19.90 s, the published step).
V3_PUBLISHED_PHASES = {
    "F": 1.13,
    "B": 1.99,
    "W": 0.48,
    "F&B": 13.95,
    "optimizer": 0.29,
    "idle": 2.06,
}


def v3_phases() -> dict[str, float]:
    """podsim's split of the DeepSeek-V3 calibration step for a middle pipeline rank (stage
    pp / 2), in the phases of V3_PUBLISHED_PHASES (podsim.results.training.phase_split)."""
    folder = resources.files("podsim").joinpath("data/validation")
    text = folder.joinpath(f"{CALIBRATION_V3}.toml").read_text(encoding="utf-8")
    scenario = parse_scenario(text, source=CALIBRATION_V3)
    run = simulate_step(scenario.model, scenario.train, scenario.cluster)
    return phase_split(run.lowered, run.timeline, scenario.train.pp // 2)


def without_stack(document: dict[str, Any]) -> None:
    """The scenario on the default stack (megatron-core)."""
    document.pop("stack", None)


def fused_attention(document: dict[str, Any]) -> None:
    """The scenario with fused (FlashAttention-style) attention: train.flash_attention = true."""
    document["train"]["flash_attention"] = True
