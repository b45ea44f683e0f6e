"""Noisy runs are the same bit for bit across engine changes: seeded Monte Carlos of small
training steps (both network modes, every kind of noise, schedules with pipeline sends and
tensor-parallel collectives) against figures recorded from the engine before its event loop was
reworked (tests/data/noise_golden.json). A timeline is compared through a digest of its per-op
start and end times; makespans are compared as exact float hex. Regenerate the file only for a
change that is meant to alter noisy results: `python tests/test_noise_golden.py`."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from podsim import simulate
from podsim.engine.core import replicated_engine, simulate_replicated_steps, simulate_steps
from podsim.engine.noise import NoiseModel
from podsim.front.api import parse_scenario
from podsim.lowering.training import lower_step

GOLDEN = Path(__file__).parent / "data" / "noise_golden.json"

STEP = """
[cluster]
chip = "a100-sxm-80gb"
devices = {devices}
domain_size = 8

[model]
layers = 8
hidden = 1024
heads = 16
ffn_hidden = 4096
vocab = 32000

[train]
seq_len = 1024
global_batch = {batch}
micro_batch = 1
tp = {tp}
pp = {pp}
schedule = "{schedule}"
virtual_stages = {v}

# The efficiencies the figures were recorded with (the A100 catalog entry of that time), pinned
# so that a refit of the catalog does not change what this test compares.
[stack]
kernel_efficiency = {{ gemm = 0.74, memory = 0.90 }}
"""

CASES = {
    "1f1b-tp2-pp4": dict(devices=32, batch=32, tp=2, pp=4, schedule="1f1b", v=1),
    "interleaved-tp4-pp2": dict(devices=16, batch=16, tp=4, pp=2, schedule="interleaved", v=2),
}

NOISES = {
    "jitter": NoiseModel(seed=1, compute_cv=0.05, link_latency_p99=30e-6),
    "everything": NoiseModel(
        seed=2**40 + 3,
        compute_cv=0.3,
        link_latency_median=2e-6,
        link_latency_p99=40e-6,
        straggler_fraction=0.1,
        straggler_ranks=(3,),
        straggler_slowdown=1.4,
        straggler_probability=0.5,
    ),
}


def digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def noisy_runs() -> dict[str, dict]:
    """Per (case, noise, network): the timeline digest of step 3 and the makespans of steps
    0..3 of the Monte Carlo."""
    out = {}
    for case, values in CASES.items():
        scenario = parse_scenario(STEP.format(**values), source=case)
        plan = scenario.train
        program = lower_step(scenario.model, plan, scenario.cluster, plan.virtual_stages).program
        for name, noise in NOISES.items():
            for network in ("analytical", "contention"):
                timeline = simulate(program, scenario.cluster, network, noise=noise, iteration=3)
                times = simulate_steps(program, scenario.cluster, network, noise, 4)
                out[f"{case}/{name}/{network}"] = {
                    "ops": int(program.num_ops),
                    "timeline": digest(timeline.start, timeline.end, timeline.resolved_algorithm),
                    "makespans": [float(t).hex() for t in times],
                }
    return out


@pytest.fixture(scope="module")
def runs():
    return noisy_runs()


@pytest.mark.parametrize("key", sorted(json.loads(GOLDEN.read_text())))
def test_noisy_runs_are_unchanged_bit_for_bit(runs, key):
    expected = json.loads(GOLDEN.read_text())[key]
    assert runs[key] == expected


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("name", sorted(NOISES))
def test_replicated_runs_give_the_recorded_figures(case, name):
    # The same figures from the stage representatives, every rank swept at once
    # (docs/engine.md, "Replicated runs"): step 3's per-op times (with the algorithms the
    # every-rank run resolved, which noise does not change) and the four makespans.
    expected = json.loads(GOLDEN.read_text())[f"{case}/{name}/analytical"]
    scenario = parse_scenario(STEP.format(**CASES[case]), source=case)
    plan, c, noise = scenario.train, scenario.cluster, NOISES[name]
    lowered = lower_step(scenario.model, plan, c, plan.virtual_stages)
    program, copies = lowered.symmetric_program, lowered.symmetric_copies()
    start, end, _ = replicated_engine(program, copies, c, noise).replicated_times(3)
    resolved = simulate(lowered.program, c, "analytical").resolved_algorithm
    assert digest(start, end, resolved) == expected["timeline"]
    times = simulate_replicated_steps(program, copies, c, noise, 4)
    assert [float(t).hex() for t in times] == expected["makespans"]


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps(noisy_runs(), indent=1, sort_keys=True) + "\n")
