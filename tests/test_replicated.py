"""Replicated runs (docs/engine.md, "Replicated runs"): every rank of a training step with
noise, swept from its stage representatives' order of completions without building the
every-rank program, against the every-rank program run by the engine (whose noisy runs the
Python reference engine checks bit for bit, tests/test_noise_reference.py): every op's start and
end, bit for bit, on random plans and clusters (pods included), any number of threads."""

from dataclasses import replace

import numpy as np
import pytest
from conftest import cluster
from hypothesis import given, settings
from hypothesis import strategies as st
from scenario_texts import GPT3_ON_6144_NPUS
from small_models import SMALL_MOE, small_dense
from test_noise_golden import NOISES as GOLDEN_NOISES

from podsim import PodsimError, _core
from podsim.engine.core import (
    MAX_MONTE_CARLO_OPS,
    MAX_REPLICATED_OPS,
    _columns,
    core_topology,
    replicated_engine,
    replicated_threads,
    simulate,
    simulate_replicated_steps,
    simulate_steps,
)
from podsim.engine.noise import NoiseModel
from podsim.errors import SpecError
from podsim.front.api import parse_scenario
from podsim.front.training import simulate_step
from podsim.lowering.program import MAX_PROGRAM_OPS
from podsim.lowering.training import StepBuilder
from podsim.plans.training import Plan

DENSE = small_dense(layers=8)
NOISES = list(GOLDEN_NOISES.values())  # jitter and latency tails; every kind of noise
SEEN = {"runs": 0, "pods": 0}


def check_every_op(lowered, c, noise, steps=(0, 3)) -> None:
    """Replicated and every-rank runs agree op for op in the given steps."""
    engine = replicated_engine(lowered.symmetric_program, lowered.symmetric_copies(), c, noise)
    program = lowered.program
    assert engine.replicated_ops == program.num_ops
    for step in steps:
        full = simulate(program, c, "analytical", noise=noise, iteration=step)
        start, end, makespan = engine.replicated_times(step)
        assert makespan == full.makespan
        np.testing.assert_array_equal(start, full.start)
        np.testing.assert_array_equal(end, full.end)
    SEEN["runs"] += 1
    SEEN["pods"] += bool(lowered.symmetry(c)[1])


@settings(max_examples=80, deadline=None, derandomize=True)
@given(
    model=st.sampled_from([DENSE, SMALL_MOE]),
    split=st.fixed_dictionaries(
        {
            "tp": st.sampled_from([1, 2, 4]),
            "pp": st.sampled_from([1, 2, 3, 4]),
            "dp": st.sampled_from([1, 2, 4]),
            "cp": st.sampled_from([1, 2]),
            "ep": st.sampled_from([1, 2, 4]),
            "zero": st.integers(0, 3),
            "schedule": st.sampled_from(["gpipe", "1f1b", "interleaved", "dualpipe"]),
        }
    ),
    batches=st.integers(1, 4),
    domain=st.sampled_from([1, 2, 4, 8]),
    pod_domains=st.sampled_from([1, 2, 0]),  # 0: one pod for the whole cluster
    noise=st.sampled_from(NOISES),
)
def test_replicated_runs_equal_every_rank_runs_on_random_plans(
    model, split, batches, domain, pod_domains, noise
):
    v = 2 if split["schedule"] == "interleaved" else 1
    try:
        batch = batches * split["dp"] * 2
        plan = Plan(seq_len=512, global_batch=batch, virtual_stages=v if v > 1 else 0, **split)
        extra = {"pod_size": domain * pod_domains} if pod_domains else {}
        c = cluster(plan.devices, domain_size=domain, oversubscription=3.0, **extra)
        lowered = StepBuilder(model, plan, c, v).lower()
        if lowered.symmetry(c)[0] is not None:
            return  # not symmetric: steps run the every-rank program
        note = simulate(
            lowered.symmetric_program,
            c,
            "analytical",
            symmetric=True,
            copies=lowered.symmetric_copies(),
        ).symmetry_note
    except PodsimError:
        return  # plans the model, lowering or engine refuses (tests/test_plans_fuzz.py)
    if note:
        return  # pod links loaded unevenly: steps run the every-rank program
    if max(noise.straggler_ranks, default=-1) >= plan.devices:
        noise = NOISES[0]
    check_every_op(lowered, c, noise)


def test_random_plans_exercised_replicated_runs_across_pods():
    # Runs after the property test above (file order).
    if not SEEN["runs"]:
        pytest.skip("run with the property test")
    assert SEEN["runs"] >= 15 and SEEN["pods"] >= 3, SEEN


def test_threads_change_nothing():
    plan = Plan(seq_len=512, global_batch=16, tp=2, pp=4, dp=2, schedule="interleaved",
                virtual_stages=2)  # fmt: skip
    c = cluster(plan.devices, domain_size=4, pod_size=8, oversubscription=2.0)
    lowered = StepBuilder(DENSE, plan, c, 2).lower()
    program, copies = lowered.symmetric_program, lowered.symmetric_copies()
    noise = NOISES[1]
    one = simulate_replicated_steps(program, copies, c, noise, 7, threads=1)
    three = simulate_replicated_steps(program, copies, c, noise, 7, threads=3)
    np.testing.assert_array_equal(one, three)
    np.testing.assert_array_equal(one, simulate_steps(lowered.program, c, "analytical", noise, 7))
    assert len(set(one.tolist())) == 7  # each step its own draws
    seen = []
    simulate_replicated_steps(program, copies, c, noise, 5, progress=seen.append, threads=2)
    assert seen == [2, 4, 5]


def test_thread_count_follows_cpus_steps_and_memory():
    assert replicated_threads(1, 10) == 1
    assert 1 <= replicated_threads(100, 10) <= 8
    assert replicated_threads(100, 1 << 30) == 1  # 8 GiB a step: one at a time


def test_noisy_steps_give_the_every_rank_result():
    # podsim.train with noise: replicated where the noise-free run is symmetric, the same
    # result as the every-rank program's Monte Carlo (simulation "full").
    plan = Plan(seq_len=512, global_batch=16, tp=2, pp=2, dp=4, zero=1)
    c = cluster(plan.devices, domain_size=4, pod_size=8, oversubscription=2.0)
    noise = NoiseModel(seed=5, compute_cv=0.1, link_latency_p99=20e-6, steps=6)
    auto = simulate_step(DENSE, plan, c, noise=noise).result
    full = simulate_step(DENSE, plan, c, noise=noise, simulation="full").result
    assert (auto.simulation, full.simulation) == ("symmetric", "full")
    same = {k: v for k, v in auto.to_dict().items() if k != "simulation"}
    assert same == {k: v for k, v in full.to_dict().items() if k != "simulation"}
    assert auto.breakdown.straggler_s > 0


def test_the_engine_refuses_what_it_cannot_replicate():
    plan = Plan(seq_len=512, global_batch=8, tp=2, pp=2, dp=2)
    c = cluster(plan.devices, domain_size=4)
    topology, noise = core_topology(c), _core.Noise(seed=1, compute_cv=0.1)
    lowered = StepBuilder(DENSE, plan, c, 1).lower()
    columns, copies = _columns(lowered.symmetric_program), lowered.symmetric_copies()
    engine = _core.Engine(columns, topology, 0, _core.Noise(), True, copies)
    with pytest.raises(SpecError, match="follows a complete run"):
        engine.replicate(noise)
    with pytest.raises(SpecError, match=r"call replicate\(noise\)"):
        engine.replicated_makespans(0, 1)
    while not engine.advance(1 << 20):
        pass
    with pytest.raises(SpecError, match=r"noise.compute_cv = -1"):
        engine.replicate(_core.Noise(compute_cv=-1.0))
    engine.replicate(noise)
    with pytest.raises(SpecError, match="threads = 0"):
        engine.replicated_makespans(0, 1, 0)
    full = _columns(lowered.program)
    for mode, symmetric, with_copies in ((1, True, True), (0, False, False), (0, True, False)):
        other = _core.Engine(
            columns if symmetric else full,
            topology,
            mode,
            _core.Noise(),
            symmetric,
            copies if with_copies else None,
        )
        while not other.advance(1 << 20):
            pass
        with pytest.raises(SpecError, match="symmetric program with rank and group copies"):
            other.replicate(noise)
    # Copies of group 0 that list its own members twice and miss the other copies of its
    # representative.
    members = int(lowered.symmetric_program.group_offsets[1])
    bad = dict(copies, group_ranks=copies["group_ranks"].copy())
    bad["group_ranks"][members : 2 * members] = copies["group_ranks"][:members]
    other = _core.Engine(columns, topology, 0, _core.Noise(), True, bad)
    while not other.advance(1 << 20):
        pass
    with pytest.raises(SpecError, match=r"copies\.group_ranks: the copies of group 0"):
        other.replicate(noise)


def test_no_replicated_run_where_the_symmetric_one_is_not_exact():
    # Pods of 3 under stages of 4 load the pod links unevenly (tests/test_symmetric.py): the
    # copies of a send would not all take their representative's time.
    plan = Plan(seq_len=512, global_batch=8, tp=1, pp=2, dp=4)
    c = cluster(plan.devices, domain_size=1, pod_size=3, oversubscription=4.0)
    lowered = StepBuilder(DENSE, plan, c, 1).lower()
    with pytest.raises(SpecError, match="would not be exact: send op"):
        replicated_engine(lowered.symmetric_program, lowered.symmetric_copies(), c, NOISES[0])
    noise = replace(NOISES[0], steps=3)
    run = simulate_step(DENSE, plan, c, noise=noise)  # every rank's program instead
    assert run.result.simulation == "full" and "unevenly" in run.result.simulation_note
    copies = dict(lowered.symmetric_copies())
    del copies["rank_offsets"]
    with pytest.raises(SpecError, match=r"copies\.rank_offsets is missing"):
        simulate_replicated_steps(lowered.symmetric_program, copies, c, NOISES[0], 1)


def test_a_step_beyond_the_every_rank_limit_runs_from_its_representatives():
    # GPT-3 175B on 6,144 Ascend 910B (tp 8, pp 16, 6 virtual stages): 75 M ops if every rank
    # were built, over the every-rank limit; the symmetric run never builds them, and the
    # every-rank program is refused where it would be built.
    s = parse_scenario(GPT3_ON_6144_NPUS, source="gpt3 on 6,144 NPUs")
    run = simulate_step(s.model, s.train, s.cluster)
    assert run.result.simulation == "symmetric" and run.result.ops > MAX_PROGRAM_OPS
    assert run.lowered.num_ops == run.result.ops
    with pytest.raises(SpecError, match=f"simulates at most {MAX_PROGRAM_OPS:,}"):
        run.lowered.program  # noqa: B018


def test_a_replicated_step_too_large_is_refused_before_anything_is_built():
    plan = Plan(seq_len=512, global_batch=8, tp=2, pp=2, dp=2)
    c = cluster(plan.devices, domain_size=4)
    lowered = StepBuilder(DENSE, plan, c, 1).lower()
    program = lowered.symmetric_program
    # Representatives standing for far more ranks than the cluster has: refused on the count,
    # before the engine would check the copies.
    each = MAX_REPLICATED_OPS // program.num_ops + 1  # copies per rank: over the limit, under
    assert program.num_ops * each < MAX_MONTE_CARLO_OPS  # the Monte Carlo's
    huge = np.arange(plan.devices + 1, dtype=np.int64) * each
    with pytest.raises(SpecError, match=f"simulates at most {MAX_REPLICATED_OPS:,}"):
        simulate_replicated_steps(program, {"rank_offsets": huge}, c, NOISES[0], 1)


def test_a_monte_carlo_too_large_is_refused_before_it_runs():
    plan = Plan(seq_len=512, global_batch=8, tp=2, pp=2, dp=2)
    c = cluster(plan.devices, domain_size=4)
    lowered = StepBuilder(DENSE, plan, c, 1).lower()
    steps = MAX_MONTE_CARLO_OPS // lowered.num_ops + 1
    with pytest.raises(SpecError, match=r"noise\.steps"):
        simulate_replicated_steps(
            lowered.symmetric_program, lowered.symmetric_copies(), c, NOISES[0], steps
        )
    with pytest.raises(SpecError, match="steps = 0"):
        simulate_replicated_steps(
            lowered.symmetric_program, lowered.symmetric_copies(), c, NOISES[0], 0
        )
