"""Symmetric runs (one representative rank per pipeline stage) against full runs (every rank):
on random plans and clusters, in both network modes, every rank's every op must start and end
as its stage's representative does, to 1e-12; where exactness is not guaranteed the run falls
back to every rank and says why."""

from collections import Counter

import numpy as np
import pytest
from conftest import cluster
from hypothesis import given, settings
from hypothesis import strategies as st
from small_models import SMALL_MOE, small_dense

from podsim import PodsimError, _core
from podsim.engine.core import core_topology, simulate
from podsim.errors import SpecError
from podsim.front.training import simulate_lowered, simulate_step
from podsim.lowering.training import StepBuilder
from podsim.plans.training import Plan

DENSE = small_dense(layers=8)
MOE = SMALL_MOE
SEEN: Counter = Counter()  # (network, simulation) over the random plans, for the coverage check


def assert_same_as_full(lowered, full, symmetric) -> None:
    """Every rank of each stage has its representative's start and end, op for op."""
    layout, base, sym_base = lowered.layout, 0, 0
    for template in lowered.templates:
        n = len(template.ops)
        for column in ("start", "end"):
            everyone = getattr(full, column)[base : base + n * layout.stage_size]
            rep = getattr(symmetric, column)[sym_base : sym_base + n]
            np.testing.assert_allclose(
                everyone.reshape(layout.stage_size, n),
                np.broadcast_to(rep, (layout.stage_size, n)),
                rtol=1e-12,
                atol=0,
            )
        base += n * layout.stage_size
        sym_base += n
    assert symmetric.makespan == pytest.approx(full.makespan, rel=1e-12, abs=0)


def check(model, plan, c, network, v):
    lowered = StepBuilder(model, plan, c, v).lower()
    full = simulate(lowered.program, c, network)
    run = simulate_lowered(lowered, c, network)
    SEEN[network, run.simulation] += 1
    if lowered.symmetry(c)[1]:  # traffic crosses pods
        SEEN[network, run.simulation, "pods"] += 1
    if run.simulation == "full":
        assert run.reason  # it says why
        return None
    assert_same_as_full(lowered, full, run.timeline)
    if network == "analytical":  # the result reports a full run's events
        assert lowered.full_events() == full.events
    return run


@settings(max_examples=120, deadline=None, derandomize=True)
@given(
    model=st.sampled_from([DENSE, MOE]),
    tp=st.sampled_from([1, 2, 3, 4]),
    pp=st.sampled_from([1, 2, 3, 4]),
    dp=st.sampled_from([1, 2, 4]),
    cp=st.sampled_from([1, 2]),
    ep=st.sampled_from([1, 2, 4]),
    zero=st.integers(0, 3),
    schedule=st.sampled_from(["gpipe", "1f1b", "interleaved", "dualpipe"]),
    virtual=st.integers(1, 2),
    batches=st.integers(1, 6),
    recompute=st.sampled_from(["none", "selective", "full"]),
    domain=st.sampled_from([1, 2, 3, 4, 8]),
    pod_domains=st.sampled_from([1, 2, 0]),  # 0: one pod for the whole cluster
    oversubscription=st.sampled_from([1.0, 3.0]),
    network=st.sampled_from(["analytical", "contention"]),
)
def test_symmetric_runs_equal_full_runs_on_random_plans(
    model,
    tp,
    pp,
    dp,
    cp,
    ep,
    zero,
    schedule,
    virtual,
    batches,
    recompute,
    domain,
    pod_domains,
    oversubscription,
    network,
):
    try:
        plan = Plan(
            seq_len=512,
            global_batch=batches * dp * 2,
            micro_batch=1,
            tp=tp,
            pp=pp,
            dp=dp,
            cp=cp,
            ep=ep,
            zero=zero,
            schedule=schedule,
            virtual_stages=virtual if schedule == "interleaved" else 0,
            recompute=recompute,
        )
        extra = {"pod_size": domain * pod_domains} if pod_domains else {}
        c = cluster(plan.devices, domain_size=domain, oversubscription=oversubscription, **extra)
        v = virtual if schedule == "interleaved" else 1
        check(model, plan, c, network, v)
    except PodsimError:
        return  # plans the model or lowering refuses (tests/test_plans_fuzz.py covers them)


def test_random_plans_exercised_both_simulations_in_both_modes():
    # Runs after the property test above (file order): the random plans must have taken the
    # symmetric path in both modes, and fallen back at least once.
    if not SEEN:
        pytest.skip("run with the property test")
    for network in ("analytical", "contention"):
        assert SEEN[network, "symmetric"] >= 10, SEEN
    assert SEEN["analytical", "full"] + SEEN["contention", "full"] >= 1, SEEN
    # Analytical runs stay symmetric across pods (the engine charges every copy's traffic).
    assert SEEN["analytical", "symmetric", "pods"] >= 5, SEEN


SPLITS = [
    dict(tp=2, pp=4, dp=2, schedule="1f1b"),
    dict(tp=4, pp=2, dp=4, schedule="interleaved", virtual_stages=2),
    dict(tp=1, pp=2, dp=4, schedule="dualpipe", ep=2),
    dict(tp=2, pp=2, dp=4, schedule="gpipe", zero=3),
    dict(tp=2, pp=1, dp=2, cp=2, zero=1),
    dict(tp=4, pp=3, dp=2, schedule="1f1b", zero=2),
]


@pytest.mark.parametrize("network", ["analytical", "contention"])
@pytest.mark.parametrize("split", SPLITS, ids=lambda s: "-".join(f"{k}{v}" for k, v in s.items()))
def test_symmetric_where_domains_hold_whole_groups(split, network):
    model = MOE if split.get("ep", 1) > 1 else DENSE
    plan = Plan(seq_len=512, global_batch=4 * split["dp"], **split)
    c = cluster(plan.devices, domain_size=4)
    run = check(model, plan, c, network, split.get("virtual_stages", 1))
    if network == "analytical":
        assert run is not None, "analytical runs of these plans must be symmetric"


def test_uneven_domains_fall_back_to_every_rank():
    # tp 3 on domains of 4: some tensor-parallel groups straddle two domains, others do not.
    plan = Plan(seq_len=512, global_batch=8, tp=3, pp=2, dp=4)
    c = cluster(plan.devices, domain_size=4)
    lowered = StepBuilder(DENSE, plan, c, 1).lower()
    run = simulate_lowered(lowered, c, "analytical")
    assert run.simulation == "full" and "tp groups" in run.reason
    assert run.timeline.makespan == simulate(lowered.program, c, "analytical").makespan
    with pytest.raises(SpecError, match="not be exact"):
        simulate_lowered(lowered, c, "analytical", "symmetric")


def test_traffic_across_pods_is_symmetric_in_the_analytical_mode_only():
    # The analytical mode charges each collective and send the wave of all its concurrent
    # copies (docs/engine.md, "Pod links"): the engine is told what each representative stands
    # for and charges their traffic too. Without that, the representatives' waves alone make the
    # step shorter than the full run's. Contention shares the pod uplinks between a stage's
    # groups, which the representatives alone do not see: it runs every rank.
    plan = Plan(seq_len=512, global_batch=8, tp=2, pp=2, dp=4)
    c = cluster(plan.devices, domain_size=2, pod_size=4, oversubscription=4.0)
    lowered = StepBuilder(DENSE, plan, c, 1).lower()
    assert lowered.symmetry(c) == (None, True)
    run = check(DENSE, plan, c, "analytical", 1)
    assert run is not None and run.simulation == "symmetric"
    full = simulate(lowered.program, c, "analytical").makespan
    representatives = simulate(lowered.symmetric_program, c, "analytical", symmetric=True)
    assert representatives.makespan < full * 0.99
    run = simulate_lowered(lowered, c, "contention")
    assert run.simulation == "full" and "pods" in run.reason
    with pytest.raises(SpecError, match="not be exact"):
        simulate_lowered(lowered, c, "contention", "symmetric")


def test_unevenly_loaded_pod_links_fall_back_to_every_rank():
    # Pods of 3 under stages of 4: stage 0 (ranks 0-3) sends to stage 1 (4-7) over pod links
    # that carry 3 sends (pod 0 up) and 1 (pod 1 up), so the copies of one send do not all take
    # the representative's time: the engine notes it and the step runs every rank.
    plan = Plan(seq_len=512, global_batch=8, tp=1, pp=2, dp=4)
    c = cluster(plan.devices, domain_size=1, pod_size=3, oversubscription=4.0)
    lowered = StepBuilder(DENSE, plan, c, 1).lower()
    assert lowered.symmetry(c) == (None, True)  # the layout alone does not see it
    run = simulate_lowered(lowered, c, "analytical")
    assert run.simulation == "full" and "unevenly" in run.reason
    assert run.timeline.makespan == simulate(lowered.program, c, "analytical").makespan
    with pytest.raises(SpecError, match="unevenly"):
        simulate_lowered(lowered, c, "analytical", "symmetric")


def test_the_engine_checks_copies():
    plan = Plan(seq_len=512, global_batch=8, tp=2, pp=2, dp=4)
    c = cluster(plan.devices, domain_size=2, pod_size=4, oversubscription=4.0)
    lowered = StepBuilder(DENSE, plan, c, 1).lower()
    program, copies = lowered.symmetric_program, lowered.symmetric_copies()
    columns = {name: getattr(program, name) for name in program.__dataclass_fields__}
    topology = core_topology(c)
    with pytest.raises(SpecError, match="only for a symmetric program"):
        _core.Engine(columns, topology, 0, _core.Noise(), False, copies)
    bad = dict(copies, group_ranks=copies["group_ranks"][::-1].copy())
    with pytest.raises(SpecError, match=r"copies\.group_ranks of group 0 .* itself first"):
        _core.Engine(columns, topology, 0, _core.Noise(), True, bad)
    bad = dict(copies, ranks=np.full_like(copies["ranks"], 99))
    with pytest.raises(SpecError, match=r"copies\.ranks\[0\] = 99 is not a rank in \[0, 16\)"):
        _core.Engine(columns, topology, 0, _core.Noise(), True, bad)
    bad = dict(copies, rank_offsets=copies["rank_offsets"][:-1].copy())
    with pytest.raises(SpecError, match=r"copies\.rank_offsets has 16 entries; expected 17"):
        _core.Engine(columns, topology, 0, _core.Noise(), True, bad)
    bad = dict(copies, rank_offsets=copies["rank_offsets"].astype(np.int32))
    with pytest.raises(PodsimError, match=r"copies\.rank_offsets must be a 1-D array of int64"):
        _core.Engine(columns, topology, 0, _core.Noise(), True, bad)
    # A representative standing for fewer ranks than its pipeline peer: its sends cannot pair.
    offsets = copies["rank_offsets"].copy()
    offsets[1:] -= 1  # rank 0 stands for 7 ranks, rank 8 still for 8
    bad = dict(copies, rank_offsets=offsets, ranks=np.delete(copies["ranks"], 7))
    with pytest.raises(SpecError, match="standing for 7 ranks"):
        _core.Engine(columns, topology, 0, _core.Noise(), True, bad)


def test_results_say_how_they_ran():
    plan = Plan(seq_len=512, global_batch=8, tp=2, pp=2, dp=4)
    c = cluster(plan.devices, domain_size=4)
    auto = simulate_step(DENSE, plan, c).result
    full = simulate_step(DENSE, plan, c, simulation="full").result
    assert (auto.simulation, full.simulation) == ("symmetric", "full")
    same = {k: v for k, v in auto.to_dict().items() if k != "simulation"}
    assert same == {k: v for k, v in full.to_dict().items() if k != "simulation"}
    with pytest.raises(SpecError, match="simulation"):
        simulate_step(DENSE, plan, c, simulation="half")


def test_the_engine_refuses_noise_on_a_symmetric_program():
    plan = Plan(seq_len=512, global_batch=8, tp=2, pp=2, dp=2)
    c = cluster(plan.devices, domain_size=4)
    program = StepBuilder(DENSE, plan, c, 1).lower().symmetric_program
    columns = {name: getattr(program, name) for name in program.__dataclass_fields__}
    noise = _core.Noise(seed=1, compute_cv=0.1)
    with pytest.raises(SpecError, match="symmetric"):
        _core.Engine(columns, core_topology(c), 0, noise, True)
