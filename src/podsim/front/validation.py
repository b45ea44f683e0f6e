"""Published results reproduced: each case is a scenario file beside NAME.expect.json
({metric, value, source}); `podsim validate` prints predicted against published."""

import json
from dataclasses import dataclass
from importlib import resources

from podsim.front.api import train
from podsim.front.scenario import parse_scenario


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


OUT_OF_SAMPLE = "out_of_sample"  # a subfolder: published runs nothing was fitted on


def case_names(folder_name: str = "") -> list[str]:
    """Calibration and held-out cases; with OUT_OF_SAMPLE, the out-of-sample ones."""
    folder = resources.files("podsim").joinpath("data/validation", folder_name)
    return sorted(
        e.name.removesuffix(".toml") for e in folder.iterdir() if e.name.endswith(".toml")
    )


def run_case(name: str, folder_name: str = "") -> Case:
    folder = resources.files("podsim").joinpath("data/validation", folder_name)
    expect = json.loads(folder.joinpath(f"{name}.expect.json").read_text(encoding="utf-8"))
    text = folder.joinpath(f"{name}.toml").read_text(encoding="utf-8")
    result = train(parse_scenario(text, source=name)).to_dict()
    return Case(
        name,
        expect["metric"],
        float(expect["value"]),
        float(result[expect["metric"]]),
        expect["source"],
    )


def mape(cases: list[Case]) -> float:
    return sum(abs(c.error) for c in cases) / len(cases)
