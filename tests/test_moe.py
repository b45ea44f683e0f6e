"""MoE layers as kernels run (podsim.costs.moe): closed forms for the router, permutation and
grouped GEMMs, the load-imbalance model, and one source of truth for expert sharding (etp, EP
folding) shared by memory, gradient reduction and GEMM shapes."""

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest
from conftest import cluster
from hypothesis import given, settings
from hypothesis import strategies as st

from podsim.costs import moe
from podsim.costs.kernels import KERNEL_OVERHEAD_S, KernelModel
from podsim.costs.layers import LayerShape, layer_forward, moe_routing
from podsim.costs.memory import memory_per_stage
from podsim.errors import SpecError
from podsim.lowering.layout import Layout, group_tables
from podsim.lowering.training import StepBuilder
from podsim.plans.training import Plan, check_plan
from podsim.specs.chips import get_chip
from podsim.specs.models import Model, get_model

H800 = get_chip("h800-sxm")
MOE = Model(
    name="moe",
    layers=4,
    hidden=1024,
    heads=8,
    ffn_hidden=4096,
    vocab=1000,
    experts=16,
    top_k=4,
    expert_ffn_hidden=512,
    shared_experts=1,
    mlp="swiglu",
)


def _memory_s(k: KernelModel, nbytes: float) -> float:
    return nbytes / (H800.hbm_bandwidth * k.efficiency("memory")) + KERNEL_OVERHEAD_S


def test_router_is_a_bf16_gemm_and_memory_passes_by_hand():
    # DeepSeek-V3's router: sigmoid scores, then group scores (8 groups), then top-8 of 256.
    model = get_model("deepseek-v3")
    k, tokens = KernelModel(H800, "fp8"), 4096.0
    scores = tokens * 256 * 4
    expected = k.gemm(tokens, 256, 7168, precision="bf16")
    expected += _memory_s(k, 2 * scores) + _memory_s(k, 2 * scores)
    expected += _memory_s(k, scores + tokens * 8 * 2 * 4)
    assert moe.router_forward(model, tokens, k) == pytest.approx(expected, rel=1e-12)
    # The gating GEMM stays in BF16: it runs at the BF16 peak, not the FP8 one.
    assert k.gemm(tokens, 256, 7168, precision="bf16") > k.gemm(tokens, 256, 7168)
    # Without group-limited routing one memory pass fewer.
    flat = replace(model, expert_groups=0, topk_groups=0)
    assert moe.router_forward(flat, tokens, k) == pytest.approx(
        expected - _memory_s(k, 2 * scores), rel=1e-12
    )


def test_permute_bytes_by_hand():
    # Balanced, 1 rank of 4 tokens x top-4 = 16 copies sent and received, hidden 10: dispatch
    # gathers 16 + 16 copies (read and write) in FP8, combine 2 x 16 + 16 copies + 4 outputs.
    route = moe.Routing(tokens=4, sent=16, copies_mean=16, copies=16, local_experts=2, dropped=0)
    assert moe.permute_bytes(route, 10, 1.0, 2.0) == 2 * 32 * 10 * 1 + (32 + 16 + 4) * 10 * 2


def test_grouped_gemm_gets_less_efficient_with_fewer_tokens_per_expert():
    # The same FLOPs spread over more, smaller experts: small-M GEMMs are tile-quantized and
    # read every expert's weights, so the time per FLOP grows as tokens per expert fall.
    k = KernelModel(H800, "bf16")
    flops_per_time = []
    for experts in (1, 8, 64, 512):
        m = 8192 / experts
        time = k.gemm(m, 4096, 2048, "grouped_gemm", experts)
        flops_per_time.append(2 * 8192 * 4096 * 2048 / time)
    assert all(a >= b for a, b in itertools.pairwise(flops_per_time))
    assert flops_per_time[-1] < 0.1 * flops_per_time[0] < flops_per_time[2]
    # At 16 tokens per expert the weights dominate: the roofline's memory side, by hand.
    m, count = 16.0, 512
    nbytes = (m * 2048 + 2048 * 4096 + m * 4096) * 2 * count
    assert k.gemm(m, 4096, 2048, "grouped_gemm", count) == pytest.approx(
        _memory_s(k, nbytes), rel=1e-12
    )


def test_balanced_routing_is_the_mean_and_imbalance_grows_with_ep():
    # 1024 tokens x top-4 on each of 4 ranks, 16 experts: 4,096 copies per rank on average.
    even = moe.routing(MOE, 1024, ep=4, etp=1, cv=0.0, capacity=0.0)
    assert even.copies_mean == 4096 and even.local_experts == 4
    # Only the multinomial draw is left: expert cv 1/sqrt(1024), rank cv / sqrt(4 experts).
    z4 = moe.expected_max_normal(4)
    assert even.copies == pytest.approx(4096 * (1 + (1 / 32) / 2 * z4), rel=1e-12)
    assert moe.expected_max_normal(1) == 0.0
    assert moe.expected_max_normal(64) > moe.expected_max_normal(8) > 1.0


def test_capacity_caps_the_busiest_rank_and_drops_tokens():
    wild = moe.routing(MOE, 1024, ep=4, etp=1, cv=1.0, capacity=1.25)
    assert wild.copies == pytest.approx(1.25 * wild.copies_mean)
    assert 0 < wild.dropped < 1
    # E[max(0, X - c mu)] / mu for X ~ normal(mu, cv mu) at c = 1 is cv / sqrt(2 pi).
    assert moe.dropped_fraction(0.3, 1.0) == pytest.approx(0.3 / math.sqrt(2 * math.pi))
    assert moe.dropped_fraction(0.0, 1.25) == 0.0


@settings(max_examples=40, deadline=None)
@given(
    low=st.floats(0.0, 2.0),
    extra=st.floats(0.0, 2.0),
    ep=st.sampled_from([1, 2, 4, 8, 16]),
    capacity=st.sampled_from([0.0, 1.0, 1.5, 4.0]),
)
def test_more_imbalance_is_never_faster(low, extra, ep, capacity):
    k = KernelModel(H800, "fp8")

    def layer_s(cv: float) -> float:
        shape = LayerShape(4096, 4096, 1, ep, True, load_cv=cv, capacity_factor=capacity)
        return layer_forward(MOE, 2, shape, k).total

    assert layer_s(low + extra) >= layer_s(low)


def test_a_step_with_more_imbalance_is_never_faster():
    plan = Plan(seq_len=1024, global_batch=8, pp=2, dp=4, ep=4, expert_load_cv=0.0)
    c = cluster(8, domain_size=4)
    times = []
    for cv in (0.0, 0.3, 1.0):
        lowered = StepBuilder(MOE, replace(plan, expert_load_cv=cv), c, 1).lower()
        times.append(sum(lowered.templates[0].ops[i].duration for i in range(5)))
    assert times[0] < times[1] < times[2]


def test_all_to_all_volume_follows_the_busiest_rank():
    plan = Plan(seq_len=1024, global_batch=8, pp=2, dp=4, ep=4, expert_load_cv=0.0)
    c = cluster(8, domain_size=4)

    def dispatch(cv: float, capacity: float = 0.0):
        step = StepBuilder(MOE, replace(plan, expert_load_cv=cv, capacity_factor=capacity), c, 1)
        ops = [op for op in step.lower().templates[0].ops if op.name == "ep dispatch"]
        return ops[0].nbytes, moe_routing(MOE, step.shape)

    balanced, route = dispatch(0.0)
    assert balanced == pytest.approx(
        route.tokens * MOE.hidden * 2 * StepBuilder(MOE, plan, c, 1).routing.ranks
        * route.imbalance
    )  # fmt: skip
    skewed, route = dispatch(0.5)
    assert skewed == pytest.approx(balanced / dispatch(0.0)[1].imbalance * route.imbalance)
    assert skewed > balanced
    capped, route = dispatch(0.5, capacity=1.1)  # a capacity factor caps the busiest rank
    assert route.imbalance == pytest.approx(1.1) and balanced < capped < skewed


# --- one source of truth for expert sharding --------------------------------------------


@pytest.mark.parametrize(
    "split",
    [
        dict(tp=2, dp=4, ep=2),  # etp = tp (Megatron-Core's default)
        dict(tp=2, dp=4, ep=4, etp=1),  # EP folded over tp x dp
        dict(tp=4, dp=2, ep=2, etp=2),
    ],
)
def test_memory_gradients_and_lowering_count_the_same_expert_parameters(split):
    plan = Plan(seq_len=1024, global_batch=16, pp=2, zero=0, **split)
    c = cluster(plan.devices, domain_size=8)
    check_plan(MOE, plan, c)
    builder = StepBuilder(MOE, plan, c, 1)
    stage0 = memory_per_stage(MOE, plan, counts=[len(r) for r in builder.chunks])[0]
    # Memory keeps 2-byte gradients of exactly the parameters the lowering reduces (4 bytes).
    dense, expert = builder.split[0]
    assert stage0.gradients == pytest.approx(2 * (dense + expert), rel=1e-12)
    ops = {op.name: op for op in builder.template(0).ops}
    assert ops["expert dp grads"].nbytes == pytest.approx(4 * expert, rel=1e-12)
    assert ops["dp grads"].nbytes == pytest.approx(4 * dense, rel=1e-12)
    experts_split = plan.expert_tp * plan.ep
    assert expert == pytest.approx(sum(MOE.expert_params(i) for i in range(2)) / experts_split)


def test_ep_folding_groups_follow_megatron_core():
    # tp 2 x dp 4 = 8 ranks per stage, etp 1, ep 4: expert rank r -> (ep r % 4, edp r // 4).
    layout = Layout(tp=2, cp=1, dp=4, pp=1)
    tables = group_tables(layout, ep=4, etp=1)
    ep_key, edp_key = tables["ep"][0], tables["edp"][0]
    assert list(ep_key) == [0, 0, 0, 0, 1, 1, 1, 1]
    assert list(edp_key) == [0, 1, 2, 3, 0, 1, 2, 3]
    # etp = tp keeps the old grouping: ep over the dp ranks of one tp index.
    old = group_tables(layout, ep=2, etp=0)["ep"][0]
    assert list(old) == [0, 1, 0, 1, 2, 3, 2, 3]
    assert np.bincount(tables["etp"][0]).max() == 1


def test_expert_sharding_errors_name_the_field():
    c = cluster(8, domain_size=8)
    with pytest.raises(SpecError, match=r"train.ep \* etp"):
        check_plan(MOE, Plan(seq_len=1024, global_batch=8, tp=2, dp=4, ep=16, etp=1), c)
    with pytest.raises(SpecError, match=r"train.etp"):
        Plan(seq_len=1024, global_batch=8, etp=-1)
    with pytest.raises(SpecError, match=r"train.capacity_factor"):
        Plan(seq_len=1024, global_batch=8, capacity_factor=0.5)
    with pytest.raises(SpecError, match=r"train.recompute_modules"):
        Plan(seq_len=1024, global_batch=8, recompute_modules=("attention",))
    with pytest.raises(SpecError, match=r"model.router_score"):
        replace(MOE, router_score="relu")


def test_recompute_modules_trade_memory_for_time():
    plan = Plan(seq_len=4096, global_batch=8, pp=2, dp=4, ep=4, recompute="selective")
    c = cluster(8, domain_size=8)
    core = replace(plan, recompute_modules=("core_attn",))
    more = replace(plan, recompute_modules=("core_attn", "layernorm", "moe_act"))
    mem = [memory_per_stage(MOE, p)[0].activations for p in (core, more)]
    time = [StepBuilder(MOE, p, c, 1).backward_s[0] for p in (core, more)]
    assert mem[1] < mem[0] and time[1] > time[0]


def test_pp2_interleaves():
    plan = Plan(seq_len=1024, global_batch=8, pp=2, dp=1, schedule="interleaved")
    small = replace(MOE, experts=0, top_k=0, shared_experts=0, expert_ffn_hidden=0)
    from podsim.lowering.autotune import virtual_stage_options

    # "auto" keeps Megatron-LM 2021's rule (the calibration rows ran it); asked for, pp = 2
    # interleaves, with a smaller bubble than 1F1B.
    assert virtual_stage_options(small, plan) == [1]
    two = replace(plan, virtual_stages=2)
    assert virtual_stage_options(small, two) == [2]
    c = cluster(2, domain_size=2)
    check_plan(small, two, c)
    from podsim.front.training import train

    one_f = train(small, replace(plan, schedule="1f1b"), c)
    inter = train(small, two, c)
    assert inter.breakdown.bubble_s < one_f.breakdown.bubble_s


def test_new_keys_parse_from_a_scenario():
    from podsim.front.scenario import parse_scenario

    text = """
[cluster]
chip = "h800-sxm"
devices = 16
[model]
preset = "deepseek-v3"
layers = 8
dense_layers = 1
mtp_depth = 0
[train]
seq_len = 4096
global_batch = 16
pp = 2
ep = 8
etp = 1
expert_load_cv = 0.2
capacity_factor = 1.5
recompute = "selective"
recompute_modules = ["core_attn", "moe_act"]
fp8_recipe = "mx"
optimizer_moments = "fp32"
comm_sms = 24
pipeline_split = "balanced"
"""
    plan = parse_scenario(text).train
    assert plan.recompute_modules == ("core_attn", "moe_act")
    assert (plan.etp, plan.expert_dp, plan.moment_bytes, plan.overlap_sms) == (1, 1, 4, 24)
    with pytest.raises(SpecError, match=r"train.fp8_recipe"):
        parse_scenario(text.replace('"mx"', '"nvfp4"'))
