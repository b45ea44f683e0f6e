"""Fit the H800's FP8 GEMM efficiencies on the one H800 calibration row, and print them.

The row: DeepSeek-V3 pre-training on 2,048 H800s (DeepSeek ISCA'25, arXiv 2505.09343, Table
4: 19.926 s per step, 432 TFLOP/s per GPU), the scenario
src/podsim/data/validation/deepseek_v3_2048_h800.toml. One number is fitted: a scale s on the
class defaults of podsim.costs.kernels, so gemm_fp8 = 0.70 s and grouped_gemm_fp8 = 0.55 s
(their ratio stays an estimate). Everything else (attention, memory-bound kernels, links)
keeps its default. Rerun after any change to the MoE, FP8 or DualPipe models:

    PYTHONPATH=src python tools/calibrate_h800.py

and copy the printed values into the h800-sxm entry of src/podsim/data/chips.toml.
"""

import json
from dataclasses import replace
from importlib import resources
from types import MappingProxyType

from podsim.costs.kernels import DEFAULT_EFFICIENCY
from podsim.front.scenario import parse_scenario
from podsim.front.training import train

CASE = "deepseek_v3_2048_h800"
TOLERANCE = 0.002  # relative, on the step time


def step_time(scenario, scale: float) -> float:
    """The case's step time with the FP8 GEMM efficiencies at `scale` x the defaults."""
    fitted = {
        "gemm_fp8": DEFAULT_EFFICIENCY["gemm"] * scale,
        "grouped_gemm_fp8": DEFAULT_EFFICIENCY["grouped_gemm"] * scale,
    }
    chip = scenario.cluster.chip
    table = {k: v for k, v in chip.kernel_efficiency.items() if not k.endswith("_fp8")}
    chip = replace(chip, kernel_efficiency=MappingProxyType(table | fitted))
    cluster = replace(scenario.cluster, chip=chip)
    return train(scenario.model, scenario.train, cluster).step_time_s


def fit() -> tuple[float, float]:
    folder = resources.files("podsim").joinpath("data/validation")
    scenario = parse_scenario(folder.joinpath(f"{CASE}.toml").read_text(encoding="utf-8"))
    target = json.loads(folder.joinpath(f"{CASE}.expect.json").read_text())["value"]
    low, high = 0.3, 1.4  # slower at low: the step time falls as the scale rises
    while high - low > 1e-3:
        middle = (low + high) / 2
        if step_time(scenario, middle) > target:
            low = middle
        else:
            high = middle
    scale = round((low + high) / 2, 3)
    error = step_time(scenario, scale) / target - 1
    assert abs(error) < TOLERANCE * 10, f"no scale reaches {target} s (error {error:+.2%})"
    return scale, error


if __name__ == "__main__":
    scale, error = fit()
    gemm = round(DEFAULT_EFFICIENCY["gemm"] * scale, 3)
    grouped = round(DEFAULT_EFFICIENCY["grouped_gemm"] * scale, 3)
    print(f"scale {scale}: gemm_fp8 = {gemm}, grouped_gemm_fp8 = {grouped} ({error:+.2%})")
