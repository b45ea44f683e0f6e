"""The Python API on inputs that podsim 0.1.0 mishandled when it was fuzzed (robustness
findings 1, 2, 3, 10, 12, 18 and 21): a SpecError or ProgramError that names the field and value,
or a correct result; never a hang, an abort or gigabytes of memory. The inputs are copies of the
reproducers (the project does not depend on where they came from)."""

import math
import re
import time
from dataclasses import replace

import numpy as np
import pytest
from scenario_texts import SMALL_TRAINING

import podsim
from podsim import ProgramBuilder, ProgramError, SpecError
from podsim.costs.kernels import KernelModel
from podsim.engine import failures
from podsim.engine.core import MAX_MONTE_CARLO_OPS, simulate_steps
from podsim.engine.failures import FailureClass, FailureModel, default_threads, monte_carlo
from podsim.engine.reference.engine import simulate as reference_simulate
from podsim.front.collective import collective
from podsim.lowering.collective import MAX_COLLECTIVE_OPS
from podsim.lowering.training import MAX_TEMPLATE_OPS, estimate_step_ops, lower_step
from podsim.results.long_run import LongRunResult
from podsim.specs.chips import catalog

BASE = SMALL_TRAINING


def scenario(text: str = BASE):
    return podsim.parse_scenario(text, source="test.toml")


# --- 21: chunk_events -----------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [0, -1, 1.5, True])
def test_chunk_events_must_be_a_positive_integer(chunk):
    # chunk_events_zero.py: engine.advance(0) never made progress; the loop spun forever.
    b = ProgramBuilder()
    b.compute(0, 1.0)
    with pytest.raises(SpecError, match=r"chunk_events = .* is not allowed: an integer >= 1"):
        podsim.simulate(b.build(), podsim.make_cluster("h100-sxm", 1), chunk_events=chunk)


def test_chunk_events_of_one_gives_the_same_timeline():
    b = ProgramBuilder()
    g = b.group(range(4))
    for rank in range(4):
        b.collective(rank, "all-reduce", g, 1e6, deps=[b.compute(rank, 1e-3 * (rank + 1))])
    cluster = podsim.make_cluster("h100-sxm", 4)
    one = podsim.simulate(b.build(), cluster, chunk_events=1)
    many = podsim.simulate(b.build(), cluster)
    assert np.array_equal(one.end, many.end)


# --- 12: a duration on a non-compute op -------------------------------------------------------


@pytest.mark.parametrize("duration", [5.0, -1.0, math.nan, math.inf])
@pytest.mark.parametrize("network", ["analytical", "contention"])
def test_a_wait_with_a_duration_is_a_program_error_in_both_engines(duration, network):
    # wait_duration.py, wait_nan_contention.py
    b = ProgramBuilder()
    c = b.compute(0, 1e-3)
    w = b.wait(0, deps=[c])
    program = b.build()
    program.duration[w] = duration
    cluster = podsim.make_cluster("h100-sxm", 2)
    expected = r"op 1: duration = .* is not allowed: a wait op has no duration"
    with pytest.raises(ProgramError, match=expected):
        podsim.simulate(program, cluster, network)
    with pytest.raises(ProgramError, match=expected):
        reference_simulate(program, cluster, network)


# --- 18: integer columns, byte counts, one-device collectives ----------------------------------


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda b: b.compute(1.9, 1.0), "rank = 1.9"),
        (lambda b: b.compute(0, 1.0, stream=0.5), "stream = 0.5"),
        (lambda b: b.compute(True, 1.0), "rank = True"),
        (lambda b: b.send(0, 1.5, 8.0), "peer = 1.5"),
        (lambda b: b.group([0, 1.0]), "group rank = 1.0"),
        (lambda b: b.compute(0, 1.0, deps=[0.0]), "dep = 0.0"),
    ],
)
def test_the_program_builder_refuses_non_integer_ranks(call, name):
    b = ProgramBuilder()
    with pytest.raises(SpecError, match=f"{name} is not allowed: an integer"):
        call(b)


def test_numpy_integers_are_integers():
    b = ProgramBuilder()
    b.compute(np.int64(1), 1.0, stream=np.int32(0))
    assert b.build().rank.tolist() == [1]


@pytest.mark.parametrize("size", [0.5, 0, -1, math.inf, math.nan, True])
def test_a_collective_of_less_than_a_byte_is_refused(size):
    with pytest.raises(SpecError, match="bytes is not allowed: a finite number >= 1"):
        collective(podsim.make_cluster("h100-sxm", 8), "all-reduce", size)


def test_a_one_device_collective_has_no_bus_bandwidth():
    for op in ("all-reduce", "broadcast", "all-to-all"):
        result = collective(podsim.make_cluster("h100-sxm", 1), op, 2**30)
        assert result.busbw_bytes_per_s == 0.0 and result.time_s > 0


# --- 18: goodput inside [0, 1] ------------------------------------------------------------------


def _long_run(progress, wall, model=None) -> LongRunResult:
    model = model or FailureModel(devices=16, useful_time_s=1e5)
    n = len(wall)
    zeros = np.zeros(n)
    return LongRunResult(
        model, 3600.0, 1e9, None, 1, np.array(wall), np.array(progress), zeros, zeros, zeros,
        zeros, zeros, zeros, np.ones(n, bool), np.zeros((n, 2)),
    )  # fmt: skip


def test_goodput_never_exceeds_one_by_rounding():
    # goodput_above_1.toml gave 1.0000000000076: progress summed apart from wall time.
    wall = [31220.348952331157, 1.0, 2.0]
    progress = [np.nextafter(w, math.inf) for w in wall]  # the last bit above, as measured
    assert sum(progress) / sum(wall) > 1.0
    result = _long_run(progress, wall)
    assert result.goodput == 1.0
    assert result.to_dict()["goodput"] == 1.0


def test_expected_goodput_is_clipped_to_its_domain():
    # expected_goodput_negative.toml: restart (10 min) beyond the job's MTBF (3.75 s): the
    # first-order formula gives a negative fraction.
    model = FailureModel(
        devices=16, useful_time_s=1e5, classes=(FailureClass("device", 1 / 60.0),), runs=1
    )
    assert model.expected_goodput() < 0
    assert _long_run([1.0], [2.0], model).to_dict()["expected_goodput"] == 0.0


# --- 1, 2: the failures Monte Carlo ---------------------------------------------------------------


def test_default_threads_are_capped(monkeypatch):
    # cli_on_128_cores.py: the default was os.cpu_count(), unbounded.
    monkeypatch.setattr(failures.os, "cpu_count", lambda: 128)
    assert default_threads(1000) == failures.MAX_DEFAULT_THREADS == 64
    assert default_threads(3) == 3
    monkeypatch.setattr(failures.os, "cpu_count", lambda: None)
    assert default_threads(1000) == 1


@pytest.mark.parametrize("threads", [0, 257, 10**6, 2.0])
def test_threads_are_bounded(threads):
    model = FailureModel(devices=16, useful_time_s=1e5, runs=2)
    with pytest.raises(SpecError, match=r"threads = .* is not allowed"):
        monte_carlo(model, threads=threads)


def test_results_do_not_depend_on_threads():
    model = FailureModel(
        devices=1024, useful_time_s=3e6, classes=(FailureClass("d", 1e-7),), runs=37, seed=3
    )
    one, many = monte_carlo(model, threads=1), monte_carlo(model)
    for key in ("wall_s", "progress_s", "interruptions", "class_counts"):
        assert np.array_equal(one[key], many[key])


def test_a_job_that_never_finishes_is_refused_with_its_numbers():
    # failures_mc_unbounded.toml: 16 devices at a 1 h MTBF fail every 225 s; restart 10 min.
    model = FailureModel(
        devices=16,
        useful_time_s=1_907_300_854.9,
        classes=(FailureClass("device", 1 / 3600.0),),
        runs=1,
    )
    start = time.monotonic()
    with pytest.raises(SpecError) as error:
        monte_carlo(model)
    assert time.monotonic() - start < 1
    message = str(error.value)
    assert message.startswith(
        "never finishes: the job fails every 3.75 min on average (16 devices), a restart takes "
        "10 min"
    )
    assert "9.54e+03x the failure-free" in message


def test_a_monte_carlo_too_large_is_refused_with_the_estimate():
    # Finishes (goodput ~94%), but 1e6 runs of ~1,000 failures each are too many to simulate.
    model = FailureModel(
        devices=16,
        useful_time_s=3.6e6,
        classes=(FailureClass("device", 1 / 16 / 3600.0),),
        runs=1_000_000,
        restart_s=60.0,
    )
    expected = r"would simulate about 1\.18e\+09 failures and 7\.06e\+09 checkpoints"
    with pytest.raises(SpecError, match=expected):
        monte_carlo(model)


def test_a_window_is_never_refused_as_never_finishing():
    model = FailureModel(
        devices=16, useful_time_s=1e9, classes=(FailureClass("device", 1 / 3600.0),), runs=2
    )
    out = monte_carlo(model, window_s=86_400.0)
    assert out["wall_s"].tolist() == [86_400.0, 86_400.0]


# --- 3: no kernel faster than its chip's peak -----------------------------------------------------


@pytest.mark.parametrize("chip", sorted(catalog()))
def test_no_gemm_runs_faster_than_the_peak_of_its_precision(chip):
    c = catalog()[chip]
    for precision in c.peak_flops:
        if precision not in ("bf16", "fp16", "fp8"):
            continue
        kernels = KernelModel(c, precision)
        for m, n, k in ((8192, 8192, 8192), (65536, 65536, 65536), (128, 128, 1 << 20)):
            flops = 2.0 * m * n * k
            assert flops / kernels.gemm(m, n, k) <= c.peak(precision)
        attention_peak = c.peak("bf16" if precision == "fp8" else precision)
        assert 1e15 / kernels.attention(1e15, 1.0) <= attention_peak


def test_fp8_mfu_against_bf16_can_exceed_one_but_not_against_fp8():
    # fp8_mfu2.toml: one H100, four very wide layers, FP8 GEMMs.
    text = """\
[cluster]
preset = "dgx-h100"
devices = 1

[model]
name = "wide"
layers = 4
hidden = 32768
heads = 256
ffn_hidden = 524288
vocab = 1024

[train]
seq_len = 1024
global_batch = 16
micro_batch = 16
precision = "fp8"
tp = 1
pp = 1
"""
    r = podsim.train(scenario(text))
    assert r.mfu > 1.0 and r.mfu_peak_precision == "bf16"
    assert r.mfu_precision_peak < 1.0 and r.gemm_precision == "fp8"
    assert r.mfu_precision_peak * r.precision_peak_flops_per_s == pytest.approx(
        r.mfu * r.mfu_peak_flops_per_s, rel=1e-12
    )


# --- 10: sizes estimated before anything is built -----------------------------------------------


def test_the_step_estimate_is_exact_for_dense_models():
    s = scenario(BASE.replace("global_batch = 32", "global_batch = 64"))
    for schedule in ("gpipe", "1f1b", "dualpipe"):
        plan = replace(s.train, schedule=schedule)
        lowered = lower_step(s.model, plan, s.cluster, 1)
        templates = sum(len(t.ops) for t in lowered.templates)
        assert estimate_step_ops(plan, 1) == (templates, lowered.program.num_ops)


@pytest.mark.parametrize("global_batch", [10**6, 10**8])
def test_huge_steps_are_refused_before_lowering(global_batch):
    # global_batch_1e6.toml, global_batch_huge.toml: minutes and gigabytes before the error.
    s = scenario(BASE.replace("global_batch = 32", f"global_batch = {global_batch}"))
    start = time.monotonic()
    with pytest.raises(SpecError, match=f"podsim lowers at most {MAX_TEMPLATE_OPS:,}"):
        podsim.train(s)
    assert time.monotonic() - start < 2


def test_a_noise_monte_carlo_is_bounded():
    b = ProgramBuilder()
    b.compute(0, 1.0)
    cluster = podsim.make_cluster("h100-sxm", 1)
    noise = podsim.NoiseModel(compute_cv=0.1)
    limit = re.escape(f"at most {MAX_MONTE_CARLO_OPS:,.3g} per Monte Carlo")
    with pytest.raises(SpecError, match=limit):
        simulate_steps(b.build(), cluster, "analytical", noise, MAX_MONTE_CARLO_OPS + 1)
    with pytest.raises(SpecError, match="steps = 0 is not allowed"):
        simulate_steps(b.build(), cluster, "analytical", noise, 0)


def test_a_program_too_large_is_refused_with_the_limit():
    with pytest.raises(SpecError, match=f"simulates at most {MAX_COLLECTIVE_OPS:,}"):
        collective(podsim.make_cluster("h100-sxm", 40_000_000), "all-reduce", 2**30)
