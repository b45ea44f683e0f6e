"""The showcase's scenarios as TOML documents (dicts), and their text: every run of the showcase
is a scenario file that `podsim train FILE` / `podsim serve FILE` reproduces exactly."""

import copy
import json
import math
import tomllib
from typing import Any

from podsim.errors import SpecError
from podsim.front.api import builtin_scenarios
from podsim.front.chipswap import FALLBACK_PRECISION
from podsim.front.showcase.assumptions import (
    MODELS,
    TARGET_GLOBAL_BATCH,
    TOKENS,
    TPOT_SLO,
    TRAIN_BASE,
    Candidate,
    ChipSetup,
)
from podsim.specs.chips import get_chip

Document = dict[str, Any]


def cluster_table(setup: ChipSetup, devices: int, unstable: bool = False) -> Document:
    """[cluster]: the chip's standard system on `devices`, at its price; with instability, its
    pessimistic link latencies."""
    table = {
        **setup.cluster,
        "devices": devices,
        "price_per_device_hour": setup.price_per_device_hour,
    }
    if unstable:
        table |= setup.unstable_links
    return table


def train_precision(chip: str) -> str:
    """V3's FP8, or BF16 on a chip without an FP8 peak (as `podsim compare` does)."""
    precision = TRAIN_BASE["precision"]
    return precision if precision in get_chip(chip).peak_flops else FALLBACK_PRECISION


def global_batch(dp: int, micro_batch: int) -> int:
    """The multiple of dp x micro_batch x 2 nearest V3's 15,360 sequences (DualPipe needs an even
    number of micro-batches per pipeline), at least one such multiple."""
    unit = dp * micro_batch * 2
    return max(1, round(TARGET_GLOBAL_BATCH / unit)) * unit


def train_document(
    model: str, setup: ChipSetup, devices: int, plan: Candidate, unstable: bool, runs: int
) -> Document:
    """A training scenario: `model` with `plan` on `devices` of the chip; with instability, a
    [failures] table (the chip's rate and restart) and its pessimistic link latencies."""
    dp = devices // plan.pp
    train = {
        **TRAIN_BASE,
        "precision": train_precision(setup.chip),
        "pp": plan.pp,
        "ep": plan.ep,
        "recompute": plan.recompute,
        "micro_batch": plan.micro_batch,
        "global_batch": global_batch(dp, plan.micro_batch),
        "tokens": TOKENS,
    }
    document = {
        "cluster": cluster_table(setup, devices, unstable),
        "model": dict(MODELS[model]),
        "train": train,
    }
    if unstable:
        document["failures"] = {
            "failure_rate_per_device_day": setup.failure_rate_per_device_day,
            "checkpoint_interval": "auto",
            "restart": setup.restart,
            "runs": runs,
        }
    return document


def serve_document(setup: ChipSetup, phase: str, scale: int) -> Document:
    """DeepSeek-R1 `phase` ("decode" or "prefill") on the chip: the published deployment its
    software runs (DeepSeek's on H800 for NVIDIA chips, CloudMatrix-Infer's for Ascend), on the
    chip's standard system, with `scale` times its devices; one TPOT limit, no prefix hits."""
    base = f"deepseek-r1-{phase}-{setup.serve_base}"
    document = copy.deepcopy(tomllib.loads(builtin_scenarios()[base]))
    devices = document["cluster"]["devices"] * scale
    document["cluster"] = cluster_table(setup, devices)
    serve = document["serve"]
    serve.pop("prefix_hit_rate", None)
    serve["ep"] = serve["dp"] = devices
    if phase == "decode":
        serve["tpot_slo"] = TPOT_SLO
    return document


# --- TOML text ------------------------------------------------------------------------------


def toml_text(document: Document, comments: list[str]) -> str:
    """The document as TOML (tables of scalars and inline tables), headed by `comments`."""
    lines = [f"# {line}" if line else "#" for line in comments]
    for name, table in document.items():
        lines += ["", f"[{name}]"]
        lines += [f"{key} = {_value(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SpecError(f"a scenario value must be finite, not {value}")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise SpecError(f"cannot write {value!r} to a scenario file")
