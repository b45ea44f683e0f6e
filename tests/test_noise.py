"""Noise: jitter, slow devices and latency tails, checked against order statistics at fixed
seeds with explicit significance levels (z = 4.4: two-sided alpha of 1e-5 per check)."""

import math

import numpy as np
import pytest
from conftest import cluster
from test_training import TINY_VOCAB, free_network

from podsim import ProgramBuilder, SpecError, make_cluster, simulate
from podsim.engine.core import simulate_steps
from podsim.engine.noise import Z99, NoiseModel
from podsim.front.training import simulate_step
from podsim.plans.training import Plan

Z = 4.4


def barrier_program(n: int, compute: float = 1.0):
    """n ranks compute, then meet in a collective: it starts at the slowest rank's end."""
    b = ProgramBuilder()
    g = b.group(range(n))
    for r in range(n):
        done = b.compute(r, compute)
        b.collective(r, "all-reduce", g, 8.0, deps=[done])
    return b.build()


def expected_max_lognormal(n: int, cv: float) -> float:
    """E[max of n iid lognormals of mean 1 and this CV], by numerical integration:
    E[M] = int_0^inf (1 - F(x)^n) dx, with F the lognormal CDF."""
    s = math.sqrt(math.log1p(cv * cv))
    x = np.linspace(0.0, math.exp(-s * s / 2 + 12 * s), 200_001)
    z = (np.log(np.maximum(x, 1e-300)) + s * s / 2) / s
    cdf = 0.5 * (1 + np.array([math.erf(v / math.sqrt(2)) for v in z]))
    return float(np.trapezoid(1 - cdf**n, x))


@pytest.mark.parametrize("n", [8, 64, 512, 4096, 16384])
def test_a_barrier_waits_for_the_expected_maximum(n):
    # The wait is the maximum of n compute times: its mean is the order statistic's.
    cv, steps = 0.1, 300
    program = barrier_program(n)
    c = make_cluster("h100-sxm", n)
    clean = simulate(program, c).makespan
    times = simulate_steps(program, c, "analytical", NoiseModel(seed=3, compute_cv=cv), steps)
    waits = times - (clean - 1.0)  # the collective itself is not noisy here
    expected = expected_max_lognormal(n, cv)
    error = Z * waits.std(ddof=1) / math.sqrt(steps)
    assert abs(waits.mean() - expected) < error
    assert expected > 1 + cv * (1 if n >= 8 else 0)  # the tail grows with scale


def test_compute_jitter_has_the_requested_mean_and_spread():
    # One rank: each step's compute is one draw of the lognormal.
    times = simulate_steps(
        barrier_program(1, 2.0), cluster(1), "analytical", NoiseModel(seed=5, compute_cv=0.2), 4000
    )
    work = times - (simulate(barrier_program(1, 2.0), cluster(1)).makespan - 2.0)
    assert abs(work.mean() - 2.0) < Z * 0.4 / math.sqrt(4000)
    assert work.std() / work.mean() == pytest.approx(0.2, rel=0.06)


def test_same_seed_same_bits_other_seed_other_numbers():
    program, c = barrier_program(32), cluster(32, domain_size=8)
    noise = NoiseModel(
        seed=11,
        compute_cv=0.1,
        link_latency_p99=50e-6,
        straggler_fraction=0.1,
        straggler_slowdown=2.0,
    )
    a = simulate_steps(program, c, "contention", noise, 20)
    b = simulate_steps(program, c, "contention", noise, 20)
    other = simulate_steps(program, c, "contention", NoiseModel(seed=12, compute_cv=0.1), 20)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, other)
    # A single step drawn on its own equals the same step of a Monte Carlo.
    alone = simulate(program, c, "contention", noise=noise, iteration=7).makespan
    assert alone == a[7]


def test_a_slow_rank_slows_everyone_that_waits_for_it():
    program, c = barrier_program(16), cluster(16)
    clean = simulate(program, c).makespan
    slow = NoiseModel(straggler_ranks=(5,), straggler_slowdown=1.5)
    assert simulate(program, c, noise=slow).makespan == pytest.approx(clean + 0.5, rel=1e-12)
    # Slow in half the steps, on average: +0.25 (binomial, 2000 steps).
    part = NoiseModel(
        seed=2, straggler_ranks=(5,), straggler_slowdown=1.5, straggler_probability=0.5
    )
    mean = simulate_steps(program, c, "analytical", part, 2000).mean()
    assert abs(mean - clean - 0.25) < Z * 0.25 / math.sqrt(2000)


def test_link_latency_tail_matches_median_and_p99():
    # A lone transfer's latency factor is lognormal: median 1, 99th percentile p99/median.
    b = ProgramBuilder()
    b.send(0, 1, 8.0)
    b.recv(1, 0, 8.0)
    c = cluster(2, domain_size=1)
    base = simulate(b.build(), c).makespan
    noise = NoiseModel(seed=9, link_latency_median=5e-6, link_latency_p99=50e-6)
    times = simulate_steps(b.build(), c, "analytical", noise, 20000)
    latency = times - (base - 5e-6)  # the test cluster's scale-out latency is 5 us
    assert np.median(latency) == pytest.approx(5e-6, rel=0.03)
    assert np.percentile(latency, 99) == pytest.approx(50e-6, rel=0.15)
    assert noise.latency_sigma(c) == pytest.approx(math.log(10) / Z99)


def test_straggler_time_grows_with_scale():
    # The same per-rank jitter costs a bigger job more: the step waits for a larger maximum.
    waits = []
    for dp in (2, 16, 128):
        plan = Plan(seq_len=2048, global_batch=dp, dp=dp)
        run = simulate_step(
            TINY_VOCAB, plan, free_network(dp), noise=NoiseModel(seed=1, compute_cv=0.05, steps=20)
        )
        waits.append(run.result.breakdown.straggler_s / run.timeline.makespan)
        assert run.result.step_time_p99_s >= run.result.step_time_p50_s
    assert waits[0] < waits[1] < waits[2]


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"compute_cv": -0.1}, "compute_cv"),
        ({"compute_cv": 1e308}, "compute_cv"),
        ({"steps": 0}, "steps"),
        ({"straggler_fraction": 1.5}, "straggler_fraction"),
        ({"straggler_ranks": (99,), "straggler_slowdown": 2.0}, "straggler_ranks"),
        ({"straggler_slowdown": 0.0}, "straggler_slowdown"),
    ],
)
def test_bad_noise_is_named(values, field):
    # Checked when the model is built (Python) or when the engine takes it (C++).
    with pytest.raises(SpecError, match=f"noise.{field}"):
        simulate(barrier_program(4), cluster(4), noise=NoiseModel(**values))
