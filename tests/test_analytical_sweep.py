"""The analytical sweep (docs/engine.md, "Event loop"): after its first complete run, an
analytical engine runs every further step over the order of completions that run handled, with no
event queue. Its timelines must equal the event loop's bit for bit, for every seed: start and end
of every op, the algorithms, the events and the makespan."""

import numpy as np
import pytest
from conftest import cluster
from hypothesis import given, settings
from hypothesis import strategies as st
from test_differential import programs
from test_noise_golden import CASES, NOISES, STEP
from test_noise_reference import NOISES as NOISE_MODELS
from test_noise_reference import noisy_step

from podsim import ProgramBuilder
from podsim.engine.core import _columns, _engine, finish, simulate_steps
from podsim.engine.noise import NoiseModel
from podsim.front.api import parse_scenario
from podsim.lowering.program import Kind
from podsim.lowering.training import lower_step


def swept_and_fresh(program, c, noise, iteration, chunk_events=1 << 20):
    """Step `iteration` twice: swept (after a first run records the order) and by the event loop
    of a fresh engine."""
    engine = _engine(_columns(program), c, "analytical", noise)
    finish(engine)
    assert not engine.swept  # the first run is the event loop's
    engine.restart(iteration)
    swept = finish(engine, chunk_events)
    assert engine.swept
    fresh_engine = _engine(_columns(program), c, "analytical", noise)
    if iteration:
        fresh_engine.restart(iteration)
    fresh = finish(fresh_engine)
    assert not fresh_engine.swept
    return swept, fresh


def assert_same_bits(a, b):
    assert a.start.tobytes() == b.start.tobytes()
    assert a.end.tobytes() == b.end.tobytes()
    assert a.resolved_algorithm.tobytes() == b.resolved_algorithm.tobytes()
    assert (a.events, float(a.makespan).hex()) == (b.events, float(b.makespan).hex())


@settings(max_examples=120, deadline=None, derandomize=True)
@given(case=programs(), noise=NOISE_MODELS, iteration=st.integers(0, 3))
def test_sweep_equals_the_event_loop_on_random_programs(case, noise, iteration):
    # Compute on several streams, collectives on random groups (groups of one, repeats,
    # all-to-all shapes), tagged sends, pods with oversubscription (pod-link waves), every noise.
    program, c = case
    assert_same_bits(*swept_and_fresh(program, c, noise, iteration))


def waits_and_pods():
    """A program with wait ops joining streams, a group of one, repeated collectives across
    oversubscribed pods (waves of concurrent copies) and pipeline sends that cross pods."""
    rng = np.random.default_rng(5)
    n = 16
    b = ProgramBuilder()
    last = {r: [] for r in range(n)}
    dp = [b.group([r, r + 8]) for r in range(8)]
    tp = [b.group(list(range(s, s + 4))) for s in range(0, n, 4)]
    alone = b.group([5])
    for step in range(6):
        for r in range(n):
            a = b.compute(r, float(rng.uniform(1e-4, 2e-3)), 0, last[r][-1:])
            x = b.compute(r, float(rng.uniform(1e-4, 2e-3)), 1)
            w = b.wait(r, 2, [a, x])
            ops = [b.collective(r, "all-reduce", tp[r // 4], 4e6, "auto", 0, [w], repeat=2)]
            ops.append(b.collective(r, "all-gather", dp[r % 8], 8e6, "ring", 1, [w]))
            if r == 5:
                ops.append(b.collective(r, "all-reduce", alone, 1e6, "auto", 2, [w]))
            last[r] = ops
        for r in range(8):  # stage 0 -> stage 1 across pods, one tag per step
            last[r].append(b.send(r, r + 8, 2e6, 2, last[r][-1:], step % 2))
            last[r + 8].append(b.recv(r + 8, r, 2e6, 2, last[r + 8][-1:], step % 2))
    c = cluster(n, domain_size=4, pod_size=8, oversubscription=4.0)
    return b.build(), c


@pytest.mark.parametrize("name", sorted(NOISES))
@pytest.mark.parametrize("iteration", [0, 1, 7])
def test_sweep_equals_the_event_loop_with_waits_and_pods(name, iteration):
    program, c = waits_and_pods()
    assert (program.kind == Kind.WAIT).any() and (program.kind == Kind.SEND).any()
    swept, fresh = swept_and_fresh(program, c, NOISES[name], iteration)
    assert_same_bits(swept, fresh)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("name", sorted(NOISES))
def test_sweep_equals_the_event_loop_on_training_steps(case, name):
    # Pipeline sends, tensor- and data-parallel collectives, stragglers and latency noise; a
    # sweep run in small chunks (as Ctrl-C polling does) gives the same bits.
    scenario = parse_scenario(STEP.format(**CASES[case]), source=case)
    plan = scenario.train
    program = lower_step(scenario.model, plan, scenario.cluster, plan.virtual_stages).program
    for iteration, chunk in ((2, 1 << 20), (5, 97)):
        swept, fresh = swept_and_fresh(program, scenario.cluster, NOISES[name], iteration, chunk)
        assert_same_bits(swept, fresh)


def test_sweep_without_noise_and_monte_carlo_steps():
    # Noise-free: a sweep repeats the first run exactly. A Monte Carlo (sweeps after its first
    # step) gives each step's makespan as a fresh run at that iteration.
    program, c, noise = noisy_step()
    assert_same_bits(*swept_and_fresh(program, c, None, 0))
    makespans = simulate_steps(program, c, "analytical", noise, 4)
    for k in range(4):
        engine = _engine(_columns(program), c, "analytical", noise)
        engine.restart(k)
        assert finish(engine).makespan == makespans[k]
    assert len(set(makespans.tolist())) == 4


def test_contention_mode_keeps_the_event_loop():
    # Flows share links: the order of events changes rates, so no run there is swept.
    program, c, noise = noisy_step()
    engine = _engine(_columns(program), c, "contention", noise)
    finish(engine)
    engine.restart(1)
    finish(engine)
    assert not engine.swept


def test_a_restart_before_the_first_run_ends_runs_the_event_loop():
    # Nothing is recorded until a run completes: an interrupted first run leaves no order.
    b = ProgramBuilder()
    for r in range(4):
        b.compute(r, 1e-3 * (r + 1))
    program, c = b.build(), cluster(4, domain_size=2)
    engine = _engine(_columns(program), c, "analytical", NoiseModel(seed=1, compute_cv=0.1))
    assert not engine.advance(1)
    engine.restart(1)
    finish(engine)
    assert not engine.swept
    engine.restart(2)
    assert not engine.done
    finish(engine)
    assert engine.swept
