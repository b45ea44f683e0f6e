"""The compiled request simulator (podsim._core.simulate_requests, via simulate_fast) against
the Python reference (podsim.engine.requests.simulate): on many small random workloads, with
every scheduler, preemptions and prefix-cache hits, every request's TTFT and TPOT and every run
total are equal bit for bit."""

import numpy as np
import pytest

from podsim import _core
from podsim.engine.requests import SCHEDULERS, bucket, bucketed, simulate, simulate_fast
from podsim.errors import SpecError


def _workload(rng: np.random.Generator, n: int):
    gaps = rng.exponential(rng.uniform(0.001, 0.2), n) * (rng.random(n) < 0.7)  # bursts
    arrival = np.cumsum(gaps)
    inputs = rng.integers(1, 300, n)
    outputs = rng.integers(1, 40, n)
    cached = (inputs * rng.uniform(0, 1, n) * (rng.random(n) < 0.5)).astype(np.int64)
    cached = np.minimum(cached, inputs - 1)
    return arrival, inputs.astype(np.int64), outputs.astype(np.int64), cached


def _step(rng: np.random.Generator):
    a, b, c, d = rng.uniform(1e-3, 1e-2), rng.uniform(0, 1e-3), rng.uniform(0, 1e-6), 1e-5
    return lambda seqs, context, tokens: a + b * seqs + c * seqs * context + d * tokens**0.9


def _same(x: np.ndarray, y: np.ndarray) -> bool:
    return bool(np.array_equal(x, y, equal_nan=True))


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_fast_equals_reference_on_random_workloads(scheduler):
    preempted = hits = 0
    for seed in range(60):
        rng = np.random.default_rng([seed, SCHEDULERS.index(scheduler)])
        arrival, inputs, outputs, cached = _workload(rng, int(rng.integers(1, 120)))
        step = _step(rng)
        block = int(rng.choice([1, 3, 16]))
        biggest = int((inputs + outputs).max())
        capacity = float(rng.integers(biggest + 2 * block, 6 * biggest + 4 * block))
        args = (capacity, int(rng.integers(1, 24)), scheduler)
        kwargs = {
            "budget": int(rng.integers(1, 700)) if rng.random() < 0.7 else None,
            "block": block,
            "gain": float(rng.choice([1.0, 1.6, 1.85, 2.7])),
        }
        ref = simulate(arrival, inputs, outputs, cached, bucketed(step), *args, **kwargs)
        fast = simulate_fast(arrival, inputs, outputs, cached, step, *args, **kwargs)
        where = f"seed {seed}"
        assert _same(ref.ttft_s, fast.ttft_s), where
        assert _same(ref.tpot_s, fast.tpot_s), where
        assert _same(ref.finish_s, fast.finish_s), where
        assert (ref.iterations, ref.preemptions) == (fast.iterations, fast.preemptions), where
        assert ref.makespan_s == fast.makespan_s and ref.busy_s == fast.busy_s, where
        assert ref.mean_in_system == fast.mean_in_system, where
        preempted += ref.preemptions > 0
        hits += int(cached.sum() > 0)
    # The workloads exercise what the comparison is about.
    assert hits > 20
    if scheduler != "orca":
        assert preempted > 5
    else:
        assert preempted == 0


def test_buckets_are_the_compiled_ones():
    rng = np.random.default_rng(5)
    values = np.concatenate(
        [
            [0.0, 1e-300, 0.5, 1.0, 1.0000001, 2.0, 3.0, 4096.0],
            2.0 ** (np.arange(1, 200) / 8),  # the ladder itself
            np.nextafter(2.0 ** (np.arange(1, 200) / 8), np.inf),
            rng.uniform(0, 1e7, 2000),
        ]
    )
    assert [bucket(float(x)) for x in values] == [_core.step_bucket(float(x)) for x in values]


def test_same_seed_same_bits_and_cached_step_calls():
    rng = np.random.default_rng(11)
    arrival, inputs, outputs, cached = _workload(rng, 5000)
    calls = []

    def step(seqs, context, tokens):
        calls.append((seqs, context, tokens))
        return 0.004 + 1e-4 * seqs + 1e-6 * tokens

    a = simulate_fast(arrival, inputs, outputs, cached, step, 4000, 32, "sarathi", 256)
    n = len(calls)
    b = simulate_fast(arrival, inputs, outputs, cached, step, 4000, 32, "sarathi", 256)
    assert _same(a.ttft_s, b.ttft_s) and _same(a.tpot_s, b.tpot_s)
    assert len(set(calls[:n])) == n  # each (seqs, context bucket, token bucket) timed once
    assert n < a.iterations / 5


def test_bad_input_names_the_field():
    one = np.ones(3, np.int64)
    step = lambda s, c, t: 0.01  # noqa: E731
    arrival = np.array([0.0, 1.0, 2.0])
    with pytest.raises(SpecError, match=r"cached\[1\] = 5"):
        simulate_fast(arrival, 5 * one, one, np.array([0, 5, 0]), step, 1e6, 8)
    with pytest.raises(SpecError, match=r"arrival_s\[2\]"):
        simulate_fast(np.array([0.0, 2.0, 1.0]), one, one, 0 * one, step, 1e6, 8)
    with pytest.raises(SpecError, match=r"scheduler = 'fifo'"):
        simulate_fast(arrival, one, one, 0 * one, step, 1e6, 8, "fifo")
    with pytest.raises(SpecError, match=r"one value per request"):
        simulate_fast(arrival, one[:2], one, 0 * one, step, 1e6, 8)
    with pytest.raises(SpecError, match=r"1-D"):
        simulate_fast(arrival.reshape(3, 1), one, one, 0 * one, step, 1e6, 8)
    with pytest.raises(SpecError, match=r"step time"):
        simulate_fast(arrival, one, 2 * one, 0 * one, lambda s, c, t: float("nan"), 1e6, 8)
    with pytest.raises(ZeroDivisionError):  # the step function's own error comes through
        simulate_fast(arrival, one, 2 * one, 0 * one, lambda s, c, t: 1 / 0, 1e6, 8)


def test_a_request_that_can_never_fit_is_an_error_in_both():
    # 100 prompt tokens + 1 need 7 blocks of 16; the cache holds 4.
    args = (np.zeros(1), np.array([100]), np.array([5]), np.array([0]))
    for run in (simulate, simulate_fast):
        with pytest.raises(SpecError, match="needs 7 KV blocks"):
            run(*args, lambda s, c, t: 0.01, 64, 8)


def test_a_serving_run_is_the_reference_run():
    # phase = "both" runs the compiled loop; the reference with the same step function (seen
    # through the buckets) gives every request the same TTFT and TPOT.
    from podsim.costs.serving_memory import kv_capacity_tokens
    from podsim.engine.requests import poisson_arrivals
    from podsim.front.api import resolve_scenario
    from podsim.front.serve import server_of, with_serve
    from podsim.front.serve_requests import step_function

    scenario = with_serve(
        resolve_scenario("llama3-70b-serve-h100"),
        phase="both",
        arrival_rate=40.0,
        requests=400,
        scheduler="sarathi",
        prefix_hit_rate=0.3,
        max_batch=32,
    )
    server = server_of(scenario)
    plan = server.plan
    n = plan.requests
    arrival = poisson_arrivals(plan.arrival_rate, n, plan.seed)
    inputs = np.full(n, plan.input_len, np.int64)
    outputs = np.full(n, plan.output_len, np.int64)
    cached = np.full(n, int(plan.input_len * plan.prefix_hit_rate), np.int64)
    capacity = kv_capacity_tokens(
        server.model, plan, server.pool, server.chip, plan.max_batch, plan.max_batch
    )
    step = step_function(server)
    args = (capacity, plan.max_batch, plan.scheduler, plan.chunk_tokens, plan.kv_block_tokens)
    ref = simulate(arrival, inputs, outputs, cached, bucketed(step), *args, plan.tokens_per_step)
    fast = simulate_fast(arrival, inputs, outputs, cached, step, *args, plan.tokens_per_step)
    assert _same(ref.ttft_s, fast.ttft_s) and _same(ref.tpot_s, fast.tpot_s)
    assert ref.iterations == fast.iterations > n
