"""Any plan, sensible or not, gives a result or a SpecError naming what is wrong: never another
exception, a hang or a nonsensical number (Hypothesis)."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from podsim import PodsimError, make_cluster
from podsim.front.training import train
from podsim.plans.training import Plan
from podsim.specs.models import Model

DENSE = Model(name="fuzz-dense", layers=6, hidden=256, heads=8, ffn_hidden=512, vocab=500)
MOE = Model(
    name="fuzz-moe",
    layers=6,
    hidden=256,
    heads=8,
    ffn_hidden=512,
    vocab=500,
    experts=8,
    top_k=2,
    expert_ffn_hidden=128,
    dense_layers=1,
    mlp="swiglu",
)


@settings(max_examples=150, deadline=None)
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
def test_any_plan_gives_a_result_or_a_named_error(
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
        return
    assert math.isfinite(result.step_time_s) and result.step_time_s > 0
    assert 0 < result.mfu < 1
    parts = result.breakdown.compute_s + result.breakdown.exposed_comm_s + result.breakdown.bubble_s
    assert parts <= result.step_time_s * (1 + 1e-9)
