"""One training step: closed-form checks, plan rejections and the result's contract."""

from dataclasses import replace

import pytest

from podsim import SpecError, make_cluster
from podsim.costs.flops import flops_per_step
from podsim.costs.kernels import DEFAULT_EFFICIENCY, K_HALF, KERNEL_OVERHEAD_S
from podsim.costs.layers import moe_routing
from podsim.engine.core import simulate
from podsim.front.training import train
from podsim.lowering.training import StepBuilder, chunk_layers
from podsim.plans.training import Plan
from podsim.results.training import breakdown
from podsim.specs.models import Model, get_model

CONTRACT = {
    "step_time_s",
    "tokens_per_s",
    "mfu",
    "hfu",
    "model_tflops_per_device",
    "hardware_tflops_per_device",
    "memory_per_device_bytes",
    "fits_in_memory",
    "breakdown",
}
BREAKDOWN = {"compute_s", "exposed_comm_s", "bubble_s", "straggler_s"}
TINY_VOCAB = Model(name="uniform", layers=64, hidden=2048, heads=16, ffn_hidden=8192, vocab=8)


def free_network(devices: int, chip: str = "h100-sxm"):
    """Communication that costs (almost) nothing: no latency, enormous bandwidth."""
    return make_cluster(
        chip,
        devices,
        scale_up_bandwidth=1e30,
        scale_out_bandwidth=1e30,
        scale_up_latency=0,
        scale_out_latency=0,
        launch_latency=0,
    )


def pipeline_time(result, builder) -> float:
    """The step less the optimizer update that follows the pipeline."""
    update = next(op for op in builder.template(0).ops if op.name == "optimizer").duration
    return result.step_time_s - update


@pytest.mark.parametrize(("pp", "m"), [(2, 4), (4, 8), (4, 16), (8, 8)])
def test_one_f_one_b_bubble_fraction(pp, m):
    # Narayanan et al. 2021: with free communication and equal stages, 1F1B idles each stage
    # for (p-1) forward+backward slots out of (m+p-1): bubble fraction (p-1)/(m+p-1).
    plan = Plan(seq_len=2048, global_batch=m, pp=pp, schedule="1f1b")
    cluster = free_network(pp)
    result = train(TINY_VOCAB, plan, cluster)
    fraction = result.breakdown.bubble_s / pipeline_time(
        result, StepBuilder(TINY_VOCAB, plan, cluster, 1)
    )
    # Within 5%: the embedding and the logits make the end stages slightly longer.
    assert fraction == pytest.approx((pp - 1) / (m + pp - 1), rel=0.05)


def test_interleaving_shrinks_the_bubble_by_the_virtual_stages():
    # Interleaved 1F1B with v chunks per stage: the bubble is (p-1)/v forward+backward slots
    # of a whole stage, against m slots of work (Narayanan et al. 2021, section 2.2.2).
    pp, m = 4, 8
    cluster = free_network(pp)
    for v in (1, 2, 4):
        plan = Plan(seq_len=2048, global_batch=m, pp=pp, schedule="interleaved", virtual_stages=v)
        result = train(TINY_VOCAB, plan, cluster)
        work = (
            pipeline_time(result, StepBuilder(TINY_VOCAB, plan, cluster, v))
            - result.breakdown.bubble_s
        )
        assert result.breakdown.bubble_s / work == pytest.approx((pp - 1) / (v * m), rel=0.05)


def test_gpipe_bubble_matches_one_f_one_b_without_memory_savings():
    plan = dict(seq_len=2048, global_batch=8, pp=4)
    gpipe = train(TINY_VOCAB, Plan(**plan, schedule="gpipe"), free_network(4))
    ofob = train(TINY_VOCAB, Plan(**plan, schedule="1f1b"), free_network(4))
    assert gpipe.step_time_s == pytest.approx(ofob.step_time_s, rel=1e-9)
    assert gpipe.memory_per_device_bytes > ofob.memory_per_device_bytes


def test_step_without_parallelism_is_the_sum_of_its_kernels():
    # One device: the step is microbatches x (forward + backward) + the optimizer update.
    plan = Plan(seq_len=4096, global_batch=4, micro_batch=2)
    cluster = make_cluster("h100-sxm", 1)
    builder = StepBuilder(TINY_VOCAB, plan, cluster, 1)
    optimizer = next(op for op in builder.template(0).ops if op.name == "optimizer").duration
    expected = 2 * (builder.forward_s[0] + builder.backward_s[0]) + optimizer
    result = train(TINY_VOCAB, plan, cluster)
    assert result.step_time_s == pytest.approx(expected, rel=1e-12)
    assert result.breakdown.compute_s == pytest.approx(expected, rel=1e-12)
    assert result.breakdown.exposed_comm_s == 0 and result.breakdown.bubble_s == 0


def test_mfu_and_tokens_follow_their_definitions():
    model = get_model("llama3-8b")
    plan = Plan(seq_len=8192, global_batch=16, tp=8, dp=2)
    cluster = make_cluster("h100-sxm", 16)
    r = train(model, plan, cluster)
    flops = flops_per_step(model, plan)
    assert r.tokens_per_s == pytest.approx(16 * 8192 / r.step_time_s)
    assert r.mfu == pytest.approx(flops["model"] / (r.step_time_s * 16 * 989e12))
    assert r.hfu >= r.mfu
    assert r.model_tflops_per_device == pytest.approx(r.mfu * 989)
    assert set(r.to_dict()) >= CONTRACT and set(r.to_dict()["breakdown"]) >= BREAKDOWN
    parts = r.breakdown.compute_s + r.breakdown.exposed_comm_s + r.breakdown.bubble_s
    assert parts == pytest.approx(r.step_time_s, rel=1e-9)
    # No pipeline: rank 0 computes its 8 microbatches' kernels and the update, nothing else, so
    # the MFU is the kernels' MFU (test_mfu_of_one_layer_on_one_device_is_the_closed_form) less
    # what the exposed tensor-parallel collectives add to the step.
    builder = StepBuilder(model, plan, cluster, 1)
    update = next(op for op in builder.template(0).ops if op.name == "optimizer").duration
    kernels = 8 * (builder.forward_s[0] + builder.backward_s[0]) + update
    assert r.breakdown.compute_s == pytest.approx(kernels, rel=1e-12)
    assert r.breakdown.bubble_s == pytest.approx(0, abs=1e-12 * r.step_time_s)
    kernels_mfu = flops["model"] / (kernels * 16 * 989e12)
    assert r.mfu == pytest.approx(
        kernels_mfu * kernels / (kernels + r.breakdown.exposed_comm_s), rel=1e-9
    )
    assert r.mfu < kernels_mfu


def test_mfu_of_one_layer_on_one_device_is_the_closed_form(chip):
    # One device, one layer, no parallelism: the step is the sum of the roofline times of its
    # kernels (docs/training.md), derived here from each kernel's FLOPs and bytes:
    #   max(FLOPs / (peak x efficiency x k / (k + 64)), bytes / (HBM x 0.8)) + 4 us,
    # on the round-number test chip (1 PFLOP/s, 3 TB/s, no wave quantization) with every GEMM
    # edge a multiple of the 128 tile. Backward: 2x the forward's GEMMs, 2.5x its attention,
    # 2x its element-wise kernels (layers.py); the embedding has none. Megatron's model FLOPs
    # count the full score matrix; the fused causal kernel computes half of it.
    T = s = h = V = 2048  # tokens of a microbatch, keys, hidden, vocabulary
    heads, ffn, m = 16, 8192, 2
    model = Model(name="one-layer", layers=1, hidden=h, heads=heads, ffn_hidden=ffn, vocab=V)
    plan = Plan(seq_len=s, global_batch=m, micro_batch=1)
    peak, memory_rate = 1e15, 3e12 * DEFAULT_EFFICIENCY["memory"]

    def gemm(n: int, k: int) -> float:
        compute = 2 * T * n * k / (peak * DEFAULT_EFFICIENCY["gemm"] * k / (k + K_HALF))
        return max(compute, 2 * (T * k + k * n + T * n) / memory_rate) + KERNEL_OVERHEAD_S

    def memory(nbytes: float) -> float:
        return nbytes / memory_rate + KERNEL_OVERHEAD_S

    core_flops = 2 * T * s * h  # QK^T and AV over all heads, half the scores (causal)
    attention = (
        max(core_flops / (peak * DEFAULT_EFFICIENCY["attention"]), 4 * T * h * 2 / memory_rate)
        + KERNEL_OVERHEAD_S
    )
    layer_gemms = gemm(3 * h, h) + gemm(h, h) + gemm(ffn, h) + gemm(h, ffn)
    layer_memory = memory(5 * T * h * 2) + memory(2 * T * ffn * 2) + memory(5 * T * h * 2)
    logits, loss = gemm(V, h), memory(3 * T * V * 4)
    forward = layer_gemms + attention + layer_memory + memory(2 * T * h * 2) + logits + loss
    backward = 2 * layer_gemms + 2.5 * attention + 2 * layer_memory + 2 * logits + 2 * loss
    step = m * (forward + backward) + memory(30 * model.params())  # Adam: 30 bytes/parameter

    forward_flops = 2 * T * (4 * h * h + 2 * h * ffn) + 2 * core_flops + 2 * T * h * V
    assert model.forward_flops(T, s) == forward_flops
    r = train(model, plan, make_cluster(chip, 1))
    assert r.step_time_s == pytest.approx(step, rel=1e-12)
    mfu = 3 * m * forward_flops / (step * peak)
    assert mfu == pytest.approx(0.41398, abs=1e-5)  # the value this case pins
    assert r.mfu == pytest.approx(mfu, rel=1e-12)
    assert r.hfu == r.mfu  # no recompute


def test_tensor_parallel_all_reduces_are_exposed():
    model = get_model("llama3-8b")
    plan = Plan(seq_len=8192, global_batch=8, tp=8)
    r = train(model, plan, make_cluster("h100-sxm", 8))
    free = train(model, plan, free_network(8))
    assert r.breakdown.exposed_comm_s > 0.05 * r.step_time_s
    assert free.breakdown.exposed_comm_s < 1e-3 * free.step_time_s
    assert r.step_time_s > free.step_time_s


def test_slower_links_never_speed_a_step_up():
    model = get_model("llama3-8b")
    plan = Plan(seq_len=8192, global_batch=32, tp=8, pp=2, dp=2)
    fast = train(model, plan, make_cluster("h100-sxm", 32))
    slow = train(
        model,
        plan,
        make_cluster("h100-sxm", 32, scale_out_bandwidth="100 Gb/s", scale_up_bandwidth="100 GB/s"),
    )
    assert slow.step_time_s > fast.step_time_s


def test_time_to_train():
    plan = Plan(seq_len=2048, global_batch=8, tokens=1e9)
    r = train(TINY_VOCAB, plan, make_cluster("h100-sxm", 1))
    steps = 1e9 / (8 * 2048)
    assert r.time_to_train_s == pytest.approx(steps * r.step_time_s)
    assert r.device_hours == pytest.approx(r.time_to_train_s / 3600)


@pytest.mark.parametrize(
    ("plan", "devices", "match"),
    [
        (dict(tp=3), 3, "train.tp = 3 .*divisor of the model's heads"),
        (dict(tp=2, pp=2, dp=2), 4, r"train.tp \* pp \* dp \* cp = 8"),
        (dict(ep=2, dp=2), 2, "train.ep = 2 .*1 for a dense model"),
        (dict(pp=128), 128, r"train.pp \* virtual_stages = 128 .*at most the number of layers"),
    ],
)
def test_impossible_plans_say_why(plan, devices, match):
    with pytest.raises(SpecError, match=match):
        train(
            TINY_VOCAB,
            Plan(seq_len=2048, global_batch=64, **plan),
            make_cluster("h100-sxm", devices),
        )


def test_interleaving_with_more_stages_than_layers_is_refused():
    plan = Plan(seq_len=2048, global_batch=128, pp=128, schedule="interleaved")
    with pytest.raises(SpecError, match="at most the number of layers"):
        train(TINY_VOCAB, plan, make_cluster("h100-sxm", 128))


def test_batch_must_split_over_data_parallel_and_microbatches():
    with pytest.raises(SpecError, match=r"train\.global_batch = 10 .*multiple of dp"):
        Plan(seq_len=2048, global_batch=10, dp=4)
    with pytest.raises(SpecError, match=r"train\.micro_batch = 3"):
        Plan(seq_len=2048, global_batch=8, micro_batch=3)


def test_strict_mode_rejects_a_plan_that_does_not_fit():
    model = get_model("llama3-70b")
    plan = Plan(seq_len=8192, global_batch=8, tp=8)
    r = train(model, plan, make_cluster("h100-sxm", 8))
    assert not r.fits_in_memory
    with pytest.raises(SpecError, match="GB per device"):
        train(model, plan, make_cluster("h100-sxm", 8), strict=True)


def test_layers_split_evenly_over_chunks():
    assert [len(c) for c in chunk_layers(126, 16)] == [8] * 14 + [7] * 2
    assert sum(len(c) for c in chunk_layers(61, 8)) == 61


def uniform_builder(plan: Plan, cluster, f: float, b: float, w: float = 0.0) -> StepBuilder:
    """A builder whose forward passes take f and backward b at every pipeline position; under
    DualPipe w of b is the weight-gradient part (W) and overlapped slots cost the same."""
    builder = StepBuilder(TINY_VOCAB, plan, cluster, 1)
    n = len(builder.forward_s)
    builder.forward_s, builder.backward_s = [f] * n, [b] * n
    if plan.schedule == "dualpipe":
        builder.overlap_forward_s, builder.overlap_backward_s = [f] * n, [b] * n
        builder.input_s, builder.weight_s = [b - w] * n, [w] * n
    return builder


def uniform_bubble(pp: int, m: int, schedule: str, f: float, b: float, w: float = 0.0) -> float:
    """Rank 0's bubble with uniform pass times (uniform_builder), communication free."""
    plan = Plan(seq_len=2048, global_batch=m, pp=pp, schedule=schedule)
    cluster = free_network(pp)
    lowered = uniform_builder(plan, cluster, f, b, w).lower()
    return breakdown(lowered, simulate(lowered.program, cluster)).bubble_s


@pytest.mark.parametrize(("f", "b"), [(1.0, 2.0), (0.3, 0.5)])
@pytest.mark.parametrize(("pp", "m"), [(2, 2), (4, 8), (8, 6)])
def test_one_f_one_b_bubble_with_uniform_stages_is_the_closed_form(pp, m, f, b):
    # Narayanan et al. 2021: (p - 1)(f + b), whatever the number of microbatches.
    assert uniform_bubble(pp, m, "1f1b", f, b) == pytest.approx((pp - 1) * (f + b), rel=1e-9)


@pytest.mark.parametrize(("pp", "m"), [(2, 4), (4, 8), (8, 16)])
def test_dualpipe_runs_both_directions_with_a_smaller_bubble(pp, m):
    # DualPipe (DeepSeek-V3 report): two pipelines in opposite directions over two copies of
    # the model fill each other's bubbles; it costs a second copy of the weights. Its bubble
    # against the report's formula: tests/test_dualpipe_bubble.py.
    cluster = free_network(pp)
    ofob = train(TINY_VOCAB, Plan(seq_len=2048, global_batch=m, pp=pp, schedule="1f1b"), cluster)
    dual = train(
        TINY_VOCAB, Plan(seq_len=2048, global_batch=m, pp=pp, schedule="dualpipe"), cluster
    )
    assert dual.breakdown.bubble_s < ofob.breakdown.bubble_s
    assert dual.step_time_s < ofob.step_time_s
    assert dual.memory["weights"] == pytest.approx(2 * ofob.memory["weights"], rel=0.05)


def test_node_limited_routing_cuts_expert_traffic():
    # DeepSeek-V3 sends a token over the network once per node (at most 4), not per expert:
    # the all-to-all carries one copy per distinct rank, and node-forwarding one per node.
    model = get_model("deepseek-v3")
    plan = Plan(seq_len=4096, global_batch=64, pp=8, ep=8, dp=8, schedule="1f1b", precision="fp8")
    step = StepBuilder(model, plan, make_cluster("h800-sxm", 64), 1)
    nbytes, token = step._all_to_all_bytes(1 + 4 / 128)
    assert token == pytest.approx(7168 * (1 + 4 / 128))
    busiest = moe_routing(model, step.shape).imbalance  # the busiest expert rank's share
    assert nbytes == pytest.approx(4096 * token * step.routing.ranks * busiest)
    assert 5 < step.routing.ranks < 8  # 8 experts, 32 per rank: some share a rank
    wide = StepBuilder(model, replace(plan, ep=64, dp=8), make_cluster("h800-sxm", 512), 1)
    free = replace(model, max_routed_nodes=0)
    unlimited = StepBuilder(free, replace(plan, ep=64, dp=8), make_cluster("h800-sxm", 512), 1)
    assert wide.routing.nodes <= 4 < unlimited.routing.nodes
    assert wide.routing.fanout > unlimited.routing.fanout


def test_the_autotuner_times_only_candidates_that_fit_when_one_does():
    # Llama 3 70B, pp 8 interleaved: 43-72 GB per device over v = 1..8. On a chip of 56 GB
    # some fit; a fake makespan makes the largest v fastest, so the rule (fitting first, then
    # the fastest) must pick the fastest that fits, having timed only those.
    from podsim.lowering.autotune import choose_virtual_stages, stage_memory

    model = get_model("llama3-70b")
    plan = Plan(seq_len=8192, global_batch=64, tp=8, pp=8, schedule="interleaved")
    base = make_cluster("h100-sxm", plan.devices)
    cluster = replace(base, chip=replace(base.chip, hbm_bytes=56e9))
    fits = {v: stage_memory(model, plan, v).fits(56e9) for v in range(1, 9)}
    assert 0 < sum(fits.values()) < 8
    timed = []

    def makespan(candidate, on, v):
        timed.append(v)
        assert candidate.dp == 1 and on.devices == plan.devices // plan.dp  # one replica
        return 1.0 / v

    chosen = choose_virtual_stages(model, plan, cluster, makespan)
    assert timed == [v for v in range(1, 9) if fits[v]]
    assert chosen == max(timed)
    # None fits: every candidate is timed and the fastest overall is chosen.
    small = replace(cluster, chip=replace(base.chip, hbm_bytes=1e9))
    timed.clear()
    assert choose_virtual_stages(model, plan, small, makespan) == 8 and timed == list(range(1, 9))
