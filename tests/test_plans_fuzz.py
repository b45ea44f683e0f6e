"""Any plan, sensible or not, gives a result or a SpecError naming what is wrong: never another
exception, a hang or a nonsensical number (Hypothesis)."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from small_models import SMALL_MOE, small_dense

from podsim import PodsimError, make_cluster
from podsim.front.training import train
from podsim.plans.training import Plan

DENSE = small_dense(layers=6)
MOE = SMALL_MOE


# Share of the drawn plans that train (the rest are refused with a named error). Measured with
# this strategy over 100 Hypothesis seeds of 150 examples: mean 0.27, lowest 0.08 (Hypothesis
# draws correlated examples, so the share spreads far more than a binomial one would). Most
# refusals are tp = 3 (not a divisor of 8 heads), ep > 1 on the dense model and too many stages.
# The bound sits below the lowest share seen yet far from 0: a change that refuses (nearly) every
# plan fails here instead of passing vacuously.
MIN_ACCEPTED_SHARE = 0.05
EXAMPLES = 150


def test_any_plan_gives_a_result_or_a_named_error():
    outcomes: list[bool] = []

    @settings(max_examples=EXAMPLES, deadline=None)
    @given(
        model=st.sampled_from([DENSE, MOE]),
        tp=st.sampled_from([1, 2, 3, 4]),
        pp=st.sampled_from([1, 2, 3, 4, 8]),
        dp=st.sampled_from([1, 2, 4]),
        cp=st.sampled_from([1, 2]),
        ep=st.sampled_from([1, 2, 4]),
        zero=st.integers(0, 3),
        schedule=st.sampled_from(["gpipe", "1f1b", "interleaved", "dualpipe"]),
        virtual=st.integers(0, 4),
        micro=st.sampled_from([1, 2]),
        batches=st.integers(1, 12),
        recompute=st.sampled_from(["none", "selective", "full"]),
        precision=st.sampled_from(["bf16", "fp16", "fp8"]),
        network=st.sampled_from(["analytical", "contention"]),
    )
    def one_plan(
        model,
        tp,
        pp,
        dp,
        cp,
        ep,
        zero,
        schedule,
        virtual,
        micro,
        batches,
        recompute,
        precision,
        network,
    ):
        try:
            plan = Plan(
                seq_len=512,
                global_batch=batches * dp * micro,
                micro_batch=micro,
                tp=tp,
                pp=pp,
                dp=dp,
                cp=cp,
                ep=ep,
                zero=zero,
                schedule=schedule,
                virtual_stages=virtual,
                recompute=recompute,
                precision=precision,
            )
            result = train(model, plan, make_cluster("h100-sxm", plan.devices), network)
        except PodsimError as error:
            assert "=" in str(error) or "needs" in str(error)  # it names what is wrong
            outcomes.append(False)
            return
        outcomes.append(True)
        assert_sane(result, plan)

    one_plan()
    share = sum(outcomes) / len(outcomes)
    assert share >= MIN_ACCEPTED_SHARE, f"{sum(outcomes)} of {len(outcomes)} plans trained"


def assert_sane(result, plan: Plan) -> None:
    """A trained plan's numbers are finite and physical, and the breakdown is the step."""
    step = result.step_time_s
    assert math.isfinite(step) and step > 0
    assert 0 < result.mfu < 1
    assert result.mfu <= result.hfu < math.inf
    assert result.tokens_per_s == plan.global_batch * plan.seq_len / step
    assert math.isfinite(result.memory_per_device_bytes) and result.memory_per_device_bytes > 0
    parts = result.breakdown
    assert parts.compute_s > 0
    assert parts.exposed_comm_s >= 0 and parts.bubble_s >= 0 and parts.straggler_s == 0
    total = parts.compute_s + parts.exposed_comm_s + parts.bubble_s
    assert abs(total - step) <= 1e-9 * step, (total, step)
