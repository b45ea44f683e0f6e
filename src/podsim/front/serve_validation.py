"""Published serving results reproduced: DeepSeek's two H800 production rows (the calibration
set of the serving efficiencies, tools/calibrate.py serving) and figures nothing was fitted
on (CloudMatrix-Infer on CloudMatrix384, SGLang on H100, DeepSeek's own prefill profile).
Each case is a built-in scenario, the result key it is compared on and the published value;
`overrides` are [serve] keys changed for that case."""

from dataclasses import dataclass, field
from typing import Any

from podsim.front.api import resolve_scenario, serve
from podsim.front.serve import with_serve
from podsim.front.validation import Case

DECODE = "decode_tokens_per_s_per_device"
PREFILL = "prefill_tokens_per_s_per_device"


@dataclass(frozen=True)
class ServingCase:
    name: str  # a built-in scenario
    kind: str  # "calibration" | "out-of-sample"
    metric: str
    published: float
    source: str
    label: str
    overrides: dict[str, Any] = field(default_factory=dict)


CASES = (
    ServingCase(
        "deepseek-r1-decode-h800",
        "calibration",
        DECODE,
        1850.0,
        "DeepSeek open-infra-index day 6: 14.8k output tokens/s per H800 node, 24-h average",
        "DeepSeek-R1 decode, 144 H800, EP144, 20-22 tok/s per user",
    ),
    ServingCase(
        "deepseek-r1-prefill-h800",
        "calibration",
        PREFILL,
        4026.0,
        "DeepSeek open-infra-index day 6: 73.7k input tokens/s per node x (1 - 0.563) / 8",
        "DeepSeek-R1 prefill, 32 H800, EP32, 56.3% cache hits",
    ),
    ServingCase(
        "deepseek-r1-decode-cloudmatrix384",
        "out-of-sample",
        DECODE,
        1943.0,
        "CloudMatrix-Infer (arXiv 2506.12708): 1,943 decode tokens/s per NPU, TPOT < 50 ms",
        "DeepSeek-R1 decode, CloudMatrix384 (910C), EP160, w8a8",
    ),
    ServingCase(
        "deepseek-r1-prefill-cloudmatrix384",
        "out-of-sample",
        PREFILL,
        6688.0,
        "CloudMatrix-Infer (arXiv 2506.12708): 6,688 prefill tokens/s per NPU, 4K prompts",
        "DeepSeek-R1 prefill, CloudMatrix384 (910C), EP16, w8a8",
    ),
    ServingCase(
        "deepseek-v3-decode-sglang-h100",
        "out-of-sample",
        DECODE,
        22282.0 / 8,
        "LMSYS blog 2025-05-05 (SGLang, 96 H100): 22,282 output tokens/s per node",
        "DeepSeek-V3 decode, 72 H100, EP72, 256 seqs x 2K KV",
    ),
    ServingCase(
        "deepseek-v3-prefill-sglang-h100",
        "out-of-sample",
        PREFILL,
        52300.0 / 8,
        "LMSYS blog 2025-05-05 (SGLang, 96 H100): 52.3k input tokens/s per node, 2K prompts",
        "DeepSeek-V3 prefill, 32 H100, EP32, 2K prompts",
    ),
    ServingCase(
        "deepseek-r1-prefill-h800",
        "out-of-sample",
        PREFILL,
        62713.0 / 8,
        "DeepSeek profile-data prefill (16K tokens per GPU, 4K prompts, perfectly balanced "
        "routing) as LMSYS 2025-05-05 converts it: 62,713 tokens/s per node",
        "DeepSeek-R1 prefill profile, 32 H800, EP32, efficiency 1 (a peak)",
        {"prefix_hit_rate": 0.0, "batch": 4, "prefill_efficiency": 1.0},
    ),
)
CALIBRATION = {c.name: c for c in CASES if c.kind == "calibration"}


def run_serving_case(case: "ServingCase | str", overrides: dict[str, Any] | None = None) -> Case:
    """The case's prediction (a calibration case by scenario name), with `overrides` of
    [serve] keys on top of the case's own."""
    if isinstance(case, str):
        case = CALIBRATION[case]
    scenario = with_serve(resolve_scenario(case.name), **{**case.overrides, **(overrides or {})})
    predicted = serve(scenario).to_dict()[case.metric]
    return Case(case.label, case.metric, case.published, float(predicted), case.source)


PEAK = {"decode_efficiency": 1.0, "prefill_efficiency": 1.0}


def serving_cases() -> list[tuple[ServingCase, Case, Case]]:
    """Every case as podsim gives it and at efficiency 1 (the step model's peak)."""
    return [(c, run_serving_case(c), run_serving_case(c, PEAK)) for c in CASES]
