"""DualPipe as published (plans.schedules.dualpipe_slots, lowering.training): its passes, its
published constraints, no deadlock for any allowed (pp, m), the overlapped F&B slots and the
SMs they give to communication, the reference engine on its programs, and the other schedules
unchanged by it."""

from collections import Counter

import numpy as np
import pytest
from conftest import cluster
from hypothesis import given, settings
from hypothesis import strategies as st
from small_models import SMALL_MOE, small_dense
from test_training import TINY_VOCAB, free_network, uniform_builder

from podsim import SpecError, make_cluster
from podsim.engine.core import simulate
from podsim.engine.reference import Topology
from podsim.engine.reference import simulate as reference_simulate
from podsim.front.training import simulate_step, train
from podsim.lowering.training import StepBuilder, estimate_stage_ops
from podsim.plans.schedules import dualpipe_slots
from podsim.plans.training import Plan
from podsim.results.training import phase_split

SMALL = small_dense(8)


def passes_in_order(pp: int, stage: int, m: int) -> None:
    """Every (chunk, microbatch) of the stage gets one F, one B and one W, in that order;
    an overlapped slot pairs a forward with a full backward of the other chunk."""
    seen: dict[tuple[int, int], list[str]] = {}
    for slot in dualpipe_slots(pp, stage, m):
        assert len(slot) in (1, 2, 3)
        if len(slot) == 3:
            (f, fc, _), (b, bc, bmb), (w, wc, wmb) = slot
            assert (f, b, w) == ("F", "B", "W") and fc != bc and (bc, bmb) == (wc, wmb)
        if len(slot) == 2:
            assert [p[0] for p in slot] == ["B", "W"] and slot[0][1:] == slot[1][1:]
        for kind, chunk, mb in slot:
            seen.setdefault((chunk, mb), []).append(kind)
    expected = {(c, mb) for c in (0, 1) for mb in range(c * m // 2, (c + 1) * m // 2)}
    assert set(seen) == expected
    assert all(kinds == ["F", "B", "W"] for kinds in seen.values())


@pytest.mark.parametrize(("pp", "m"), [(2, 4), (4, 8), (8, 20), (16, 32)])
def test_each_stage_runs_every_pass_once_in_order(pp, m):
    for stage in range(pp):
        passes_in_order(pp, stage, m)


def test_deepseeks_eight_steps_on_one_rank():
    # deepseek-ai/DualPipe, pp = 4, 8 microbatches, rank 1 (h = 1, a middle rank): step 1
    # none, 2: F0 F1 twice, 3: none, 4: F0 then B1 not overlapped, F1&B0, F0&B1, F1&B0,
    # 5: none, 6: B1 B0 twice (the second pair's W deferred), 7: none, 8: W W.
    got = dualpipe_slots(4, 1, 8)
    assert got == [
        (("F", 0, 0),),
        (("F", 1, 4),),
        (("F", 0, 1),),
        (("F", 1, 5),),
        (("F", 0, 2),),
        (("B", 1, 4), ("W", 1, 4)),
        (("F", 1, 6), ("B", 0, 0), ("W", 0, 0)),
        (("F", 0, 3), ("B", 1, 5), ("W", 1, 5)),
        (("F", 1, 7), ("B", 0, 1), ("W", 0, 1)),
        (("B", 1, 6), ("W", 1, 6)),
        (("B", 0, 2), ("W", 0, 2)),
        (("B", 1, 7),),
        (("B", 0, 3),),
        (("W", 1, 7),),
        (("W", 0, 3),),
    ]


@pytest.mark.parametrize(("pp", "m"), [(4, 6), (8, 14), (4, 9), (2, 3), (2, 0)])
def test_microbatches_outside_the_published_constraints_are_refused(pp, m):
    with pytest.raises(SpecError, match=r"train\.global_batch gives .* dualpipe .* 2 x pp"):
        dualpipe_slots(pp, 0, m)
    if m:
        plan = Plan(seq_len=2048, global_batch=m, pp=pp, schedule="dualpipe")
        with pytest.raises(SpecError, match="dualpipe schedule needs an even number"):
            train(TINY_VOCAB, plan, free_network(pp))


def test_an_odd_pipeline_is_refused():
    with pytest.raises(SpecError, match=r"train\.pp = 3 .*even"):
        Plan(seq_len=2048, global_batch=12, pp=3, schedule="dualpipe")


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    pp=st.sampled_from([2, 4, 6, 8, 10, 16]),
    extra=st.integers(0, 10),
    times=st.tuples(*[st.floats(0.05, 3.0)] * 3),
)
def test_no_deadlock_for_any_allowed_pipeline(pp, extra, times):
    # Published constraints: pp even, m even and m >= 2 pp. Any pass times, real sends.
    m = 2 * pp + 2 * extra
    for stage in range(pp):
        passes_in_order(pp, stage, m)
    plan = Plan(seq_len=2048, global_batch=m, pp=pp, schedule="dualpipe")
    c = make_cluster("h100-sxm", pp, domain_size=2)
    f, b_input, w = times
    lowered = uniform_builder(plan, c, f, b_input + w, w).lower()
    timeline = simulate(lowered.program, c)  # raises DeadlockError if it cannot finish
    busy = m * (f + b_input + w)
    assert timeline.makespan >= busy


@pytest.mark.parametrize(("pp", "m"), [(2, 4), (4, 8), (8, 18)])
def test_template_sizes_are_the_estimate(pp, m):
    plan = Plan(seq_len=2048, global_batch=m, pp=pp, schedule="dualpipe")
    lowered = StepBuilder(TINY_VOCAB, plan, free_network(pp), 1).lower()
    assert [len(t.ops) for t in lowered.templates] == estimate_stage_ops(plan, 1)


def test_w_is_the_weight_gradient_gemms():
    # B + W is the whole backward; W is one GEMM per forward GEMM, so less than the forward
    # and more than nothing; the head's position has the vocabulary GEMM on top.
    plan = Plan(seq_len=2048, global_batch=8, pp=4, schedule="dualpipe")
    b = StepBuilder(TINY_VOCAB, plan, free_network(4), 1)
    for q in range(4):
        assert b.input_s[q] + b.weight_s[q] == pytest.approx(b.backward_s[q], rel=1e-12)
        assert 0 < b.weight_s[q] < b.forward_s[q]
    assert b.weight_s[3] > b.weight_s[1]


def moe_step(comm_sms: int):
    plan = Plan(
        seq_len=1024, global_batch=32, pp=2, dp=4, ep=4, schedule="dualpipe", comm_sms=comm_sms
    )
    c = make_cluster("h800-sxm", plan.devices)
    return StepBuilder(SMALL_MOE, plan, c, 1), train(SMALL_MOE, plan, c)


def test_overlapped_slots_run_on_the_sms_communication_leaves():
    # Default under DualPipe with ep > 1: 20 of the H800's 132 SMs (DeepSeek-V3 3.2.2) are
    # held in F&B slots only; lone passes keep them all.
    held, _ = moe_step(-1)
    free, _ = moe_step(0)
    assert held.kernels.reserved_units == 0 and held.plan.overlap_sms == 20
    assert held.forward_s == free.forward_s and held.backward_s == free.backward_s
    for q in range(2):
        assert held.overlap_forward_s[q] > free.overlap_forward_s[q] == free.forward_s[q]
        ratio = held.overlap_backward_s[q] / free.overlap_backward_s[q]
        assert 1.0 < ratio < 132 / 112 * 1.05
    template = held.lower().templates[0]
    pairs = [op for op in template.ops if op.name.startswith("F&B q")]
    assert pairs
    kinds = Counter(op.name.split()[0] for op in template.ops if op.kind == 0)
    assert set(kinds) == {"F", "B", "W", "F&B", "optimizer"}


def test_overlapped_slots_hide_all_to_alls_lone_passes_do_not():
    builder, _ = moe_step(-1)
    template = builder.lower().templates[0]
    streams = Counter(
        (op.name.split()[0] if op.name.startswith("ep") else "", op.stream)
        for op in template.ops
        if op.role == "ep"
    )
    # Both streams carry all-to-alls: the EP stream (3) in F&B slots, compute (0) otherwise.
    assert {s for (_, s) in streams} == {0, 3}


DIFFERENTIAL = [
    (SMALL, dict(tp=1, pp=4, dp=1)),
    (SMALL, dict(tp=2, pp=2, dp=2, zero=3)),
    (SMALL_MOE, dict(tp=1, pp=2, dp=4, ep=4)),
    (SMALL_MOE, dict(tp=2, pp=4, dp=1, ep=2, etp=1, recompute="full")),
]


@pytest.mark.parametrize("network", ["analytical", "contention"])
@pytest.mark.parametrize(("model", "split"), DIFFERENTIAL)
def test_dualpipe_programs_run_alike_on_both_engines(model, split, network):
    plan = Plan(
        seq_len=1024, global_batch=4 * split["pp"] * split["dp"], schedule="dualpipe", **split
    )
    c = cluster(plan.devices, domain_size=4)
    lowered = StepBuilder(model, plan, c, 1).lower()
    timeline = simulate(lowered.program, c, network)
    start, end = reference_simulate(lowered.program, Topology.from_cluster(c), network)
    np.testing.assert_allclose(timeline.start, start, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(timeline.end, end, rtol=1e-9, atol=1e-15)


# (step time, bubble) of other schedules, recorded on the code before DualPipe's B/W split
# (the MoE rows again once expert all-to-alls carried the busiest rank's share): lowering them
# must not change by a bit.
UNCHANGED = [
    (SMALL, dict(tp=2, pp=4, dp=2, schedule="1f1b"), (0.0044210739612391865, 0.000991625780844958)),
    (
        SMALL,
        dict(tp=2, pp=4, dp=2, schedule="interleaved", virtual_stages=2),
        (0.004143473683634176, 0.0006273641699066118),
    ),
    (
        SMALL,
        dict(tp=2, pp=2, dp=2, schedule="gpipe", zero=3),
        (0.0069873946130169055, 0.0006824891391272849),
    ),
    (
        SMALL_MOE,
        dict(tp=1, pp=2, dp=4, ep=4, schedule="1f1b", comm_sms=24, precision="fp8"),
        (0.008772649088929317, 0.0020138373112152386),
    ),
    (
        SMALL_MOE,
        dict(tp=2, pp=2, dp=2, ep=2, etp=1, schedule="interleaved", virtual_stages=2, zero=1),
        (0.009093552774581737, 0.00177157528317122),
    ),
]


@pytest.mark.parametrize(("model", "split", "expected"), UNCHANGED)
def test_other_schedules_are_unchanged(model, split, expected):
    plan = Plan(seq_len=1024, global_batch=8 * split["dp"], **split)
    result = train(model, plan, make_cluster("h100-sxm", plan.devices, domain_size=4))
    assert (result.step_time_s, result.breakdown.bubble_s) == expected


def test_phase_split_adds_up_to_the_step():
    # podsim.results.training.phase_split: every second of a rank's step in one phase; with
    # free communication a middle rank's F&B time is its overlapped slots' compute.
    plan = Plan(seq_len=2048, global_batch=16, pp=4, schedule="dualpipe")
    cluster = free_network(4)
    run = simulate_step(TINY_VOCAB, plan, cluster)
    b = StepBuilder(TINY_VOCAB, plan, cluster, 1)
    pairs = sum(len(s) == 3 for s in dualpipe_slots(4, 1, 16))
    for stage in range(4):
        phases = phase_split(run.lowered, run.timeline, stage)
        assert sum(phases.values()) == pytest.approx(run.result.step_time_s, rel=1e-12)
        assert min(phases.values()) >= 0
    phases = phase_split(run.lowered, run.timeline, 1)
    expected = [b.forward_s[q] + b.backward_s[3 - q] for q in (1, 2)]  # chunk 0 at 1, 1 at 2
    assert pairs * min(expected) <= phases["F&B"] * (1 + 1e-12)
    assert phases["F&B"] <= pairs * max(expected) * (1 + 1e-12)
