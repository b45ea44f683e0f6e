"""Software stacks ([stack], podsim.plans.stack): the megatron-core default is podsim's model as
it was, each setting changes exactly what it names (by closed forms where there is one), and
bad input names the key, the value and what is allowed."""

from dataclasses import replace

import numpy as np
import pytest
from conftest import cluster
from small_models import small_dense
from test_symmetric import check

from podsim import SpecError, make_cluster
from podsim.costs.kernels import KernelModel
from podsim.costs.layers import (
    BACKWARD_ATTENTION,
    LayerShape,
    attention_backward,
    attention_forward,
)
from podsim.engine.core import simulate
from podsim.engine.reference import Topology
from podsim.engine.reference import simulate as reference_simulate
from podsim.front.api import resolve_scenario, train
from podsim.front.collective import collective
from podsim.front.scenario import parse_scenario
from podsim.front.stack_calibration import deepspeed_2021_efficiency
from podsim.front.training import train as train_plan
from podsim.lowering.training import StepBuilder
from podsim.plans.stack import MEGATRON_CORE, PRESETS, Stack, preset, stack_from_table
from podsim.plans.training import Plan
from podsim.results.training import COMM_KINDS

MODEL = small_dense(4)


def run(stack: Stack | None = None, devices: int = 4, **plan):
    values = dict(seq_len=4096, global_batch=4 * devices, micro_batch=4, dp=devices) | plan
    p = Plan(**values)
    if stack is not None:
        p = replace(p, stack=stack)
    return train_plan(MODEL, p, make_cluster("h100-sxm", p.devices))


def comm(result) -> dict[str, float]:
    return result.breakdown.exposed_comm_by_kind_s


# -- the default is podsim as it was ---------------------------------------------------------


def test_megatron_core_is_the_default_and_its_settings_are_pinned():
    # podsim's model before stacks existed; changing any of these changes published results
    # (docs/validation.md, tests/validation), so this test names them one by one.
    assert Plan(seq_len=8, global_batch=1).stack == MEGATRON_CORE == preset("megatron-core")
    assert MEGATRON_CORE.to_dict() == {
        "preset": "megatron-core",
        "overlap_grad_reduce": False,
        "overlap_param_gather": False,
        "overlap_tp_comm": False,
        "overlap_cp_comm": False,
        "overlap_ep_comm": "auto",
        "layer_overhead_s": 0.0,
        "collective_library": "nccl",
        "collective_efficiency": 1.0,
        "zero3_granularity": "chunk",
        "zero3_prefetch": -1,
        "zero3_regather": True,
        "kernel_efficiency": {},
    }
    assert stack_from_table({}) == MEGATRON_CORE


@pytest.mark.parametrize("name", ["llama3-70b-h100", "deepseek-v3-h800"])
def test_an_explicit_megatron_core_stack_changes_no_result(name):
    scenario = resolve_scenario(name)
    scenario = replace(scenario, failures=None)
    plain = train(scenario).to_dict()
    table = {"preset": "megatron-core", "overlap_ep_comm": "auto", "collective_efficiency": 1.0}
    plan = replace(scenario.train, stack=stack_from_table(table))
    explicit = train(replace(scenario, train=plan))
    assert explicit.to_dict() == plain
    assert plain["stack"] == MEGATRON_CORE.to_dict()


# -- each setting changes what it names -------------------------------------------------------


def test_overlapped_gradient_reduction_exposes_only_the_last_layers_bucket():
    # pp 1, dp 4 in one NVLink domain, one microbatch: without overlap the whole gradient
    # all-reduce (FP32, 4 bytes per parameter) follows the backward; with it each layer's
    # share is reduced as its backward ends, and only the last one's is on the path.
    plain = run()
    overlapped = run(replace(MEGATRON_CORE, overlap_grad_reduce=True))
    cluster = make_cluster("h100-sxm", 4)
    grads = MODEL.params() * 4
    assert comm(plain)["dp"] == pytest.approx(
        collective(cluster, "all-reduce", grads).time_s, rel=1e-9
    )
    assert comm(overlapped)["dp"] == pytest.approx(
        collective(cluster, "all-reduce", grads / MODEL.layers).time_s, rel=1e-9
    )
    for kind in set(COMM_KINDS) - {"dp"}:
        assert comm(overlapped)[kind] == comm(plain)[kind] == 0.0
    saved = comm(plain)["dp"] - comm(overlapped)["dp"]
    assert plain.step_time_s - overlapped.step_time_s == pytest.approx(saved, rel=1e-6)


def test_overlapped_weight_gather_leaves_the_end_of_a_zero1_step():
    plain = run(zero=1)
    overlapped = run(replace(MEGATRON_CORE, overlap_param_gather=True), zero=1)
    cluster = make_cluster("h100-sxm", 4)
    gather = collective(cluster, "all-gather", MODEL.params() * 2).time_s
    scatter = collective(cluster, "reduce-scatter", MODEL.params() * 4).time_s
    assert comm(plain)["dp"] == pytest.approx(scatter + gather, rel=1e-9)
    # The gather that followed the optimizer moves before the first forward, layer by layer:
    # only the first layer's share waits; the rest hides behind the layers before it.
    first = collective(cluster, "all-gather", MODEL.params() * 2 / MODEL.layers).time_s
    assert comm(overlapped)["dp"] == pytest.approx(scatter + first, rel=1e-9)
    assert overlapped.step_time_s < plain.step_time_s


def test_overlapped_tensor_parallel_comm_moves_only_tp_time():
    plain = run(tp=4, dp=1, global_batch=8, micro_batch=1)
    overlapped = run(
        replace(MEGATRON_CORE, overlap_tp_comm=True), tp=4, dp=1, global_batch=8, micro_batch=1
    )
    assert comm(plain)["tp"] > 0
    assert comm(overlapped)["tp"] < 0.2 * comm(plain)["tp"]
    # The same kernels: only the optimizer may leave the path (it overlaps the last TP op).
    optimizer = plain.breakdown.optimizer_s
    assert abs(overlapped.breakdown.compute_s - plain.breakdown.compute_s) <= optimizer * 1.000001
    saved_tp = comm(plain)["tp"] - comm(overlapped)["tp"]
    assert plain.step_time_s - overlapped.step_time_s >= 0.9 * saved_tp
    for kind in ("cp", "ep", "pp", "dp"):
        assert comm(overlapped)[kind] == comm(plain)[kind]


def test_collective_efficiency_scales_the_bandwidth_terms():
    # One all-reduce of the gradients at efficiency e takes what podsim gives bytes / e.
    half = run(replace(MEGATRON_CORE, collective_efficiency=0.5))
    cluster = make_cluster("h100-sxm", 4)
    expected = collective(cluster, "all-reduce", MODEL.params() * 4 / 0.5).time_s
    assert comm(half)["dp"] == pytest.approx(expected, rel=1e-9)


def test_layer_overhead_adds_its_time_per_layer_and_pass():
    # One device, no communication: each microbatch's forward and backward pay it per layer
    # (full recompute runs the forward again in backward).
    for recompute, passes in (("none", 2), ("full", 3)):
        base = run(devices=1, global_batch=8, micro_batch=2, recompute=recompute)
        slow = run(
            replace(MEGATRON_CORE, layer_overhead=1e-3),
            devices=1,
            global_batch=8,
            micro_batch=2,
            recompute=recompute,
        )
        grown = slow.step_time_s - base.step_time_s
        assert grown == pytest.approx(4 * MODEL.layers * passes * 1e-3, rel=1e-9)


def test_kernel_efficiencies_override_the_chips_per_chip_and_class():
    lower = stack_from_table({"kernel_efficiency": {"gemm": 0.35}})
    other_chip = stack_from_table({"kernel_efficiency": {"b200": {"gemm": 0.35}}})
    own_chip = stack_from_table({"kernel_efficiency": {"h100-sxm": {"gemm": 0.35}}})
    base, slow = run(devices=1), run(lower, devices=1)
    assert slow.step_time_s > base.step_time_s
    assert run(other_chip, devices=1).step_time_s == base.step_time_s
    assert run(own_chip, devices=1).step_time_s == slow.step_time_s
    chip = lower.chip(make_cluster("h100-sxm", 1).chip)
    assert chip.kernel_efficiency["gemm"] == 0.35


def test_zero3_gathers_per_layer_without_prefetch_are_all_exposed():
    # dp 4, ZeRO-3, prefetch 0: every layer's gather waits for the previous layer's compute,
    # so the forward and the backward each expose one gather per layer (plus the reduction
    # of the last layer's gradients).
    serial = replace(MEGATRON_CORE, zero3_granularity="layer", zero3_prefetch=0)
    hidden = replace(serial, zero3_prefetch=-1)
    slow, fast = run(serial, zero=3), run(hidden, zero=3)
    cluster = make_cluster("h100-sxm", 4)
    gather = collective(cluster, "all-gather", MODEL.params() * 2 / MODEL.layers).time_s
    assert comm(slow)["dp"] >= 2 * MODEL.layers * gather * (1 - 1e-9)
    assert comm(fast)["dp"] < comm(slow)["dp"]
    # Without the backward's gathers the step saves them: all but the first, which overlaps
    # the forward's last layer (nothing holds it back but the stream's order).
    no_regather = replace(serial, zero3_regather=False)
    saved = slow.step_time_s - run(no_regather, zero=3).step_time_s
    assert (MODEL.layers - 1) * gather * (1 - 1e-9) <= saved <= MODEL.layers * gather


def test_every_preset_runs_and_states_itself():
    for name in PRESETS:
        result = run(preset(name), zero=3, tp=2, dp=2, global_batch=8, micro_batch=2)
        assert result.stack["preset"] == name
        assert result.to_dict()["stack"] == preset(name).to_dict()


# Every preset on plans where it acts (ZeRO-3 gathers, ZeRO-1 overlaps, TP and CP overlap):
# the symmetric run equals every rank's, and the C++ engine equals the Python reference.
STACKED = [
    dict(tp=2, pp=2, dp=2, zero=3, schedule="interleaved", virtual_stages=2),
    dict(tp=2, pp=2, dp=2, zero=1, cp=2),
]


@pytest.mark.parametrize("network", ["analytical", "contention"])
@pytest.mark.parametrize("split", STACKED, ids=["zero3", "zero1-cp"])
@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_is_exact_symmetric_and_on_the_reference_engine(name, split, network):
    plan = replace(Plan(seq_len=512, global_batch=8 * split["dp"], **split), stack=preset(name))
    c = cluster(plan.devices, domain_size=4)
    v = split.get("virtual_stages", 1)
    assert check(small_dense(8), plan, c, network, v) is not None or network == "contention"
    lowered = StepBuilder(small_dense(8), plan, c, v).lower()
    timeline = simulate(lowered.program, c, network)
    start, end = reference_simulate(lowered.program, Topology.from_cluster(c), network)
    np.testing.assert_allclose(timeline.start, start, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(timeline.end, end, rtol=1e-9, atol=1e-15)


def test_deepspeed_2021_efficiency_is_the_calibration_scripts():
    assert PRESETS["deepspeed-2021"]["collective_efficiency"] == round(
        deepspeed_2021_efficiency(), 3
    )


# -- unfused attention -------------------------------------------------------------------------


def test_unfused_attention_costs_its_score_matrix_traffic():
    model, k = MODEL, KernelModel(make_cluster("a100-sxm-80gb", 1).chip, "bf16")
    tokens, seq, heads = 4096.0, 4096, MODEL.heads
    fused = attention_forward(model, LayerShape(tokens, seq, 1, 1, True), k)
    unfused_shape = LayerShape(tokens, seq, 1, 1, True, flash_attention=False)
    unfused = attention_forward(model, unfused_shape, k)
    # Forward (Megatron-LM 2021-22): QK^T and AV as batched GEMMs over the whole s x s matrix
    # (their own score writes and reads are in their roofline), and 8 bytes per score of the
    # kernels between them: the causal fused softmax reads half of each row and writes all
    # of it (1 + 2), dropout reads and writes it (2 + 2) and writes a 1-byte mask.
    d = model.hidden // model.heads
    matmuls = k.gemm(tokens, seq, d, count=heads) + k.gemm(tokens, d, seq, count=heads)
    assert unfused.attention == pytest.approx(matmuls + k.memory(tokens * seq * heads * 8))
    assert unfused.gemm == fused.gemm and unfused.memory == fused.memory
    # Backward: dP = dC V^T, dV = P^T dC, dQ = dS K, dK = dS^T Q, and 9 bytes per score:
    # dropout's backward reads dP and the mask and writes (2 + 1 + 2), the softmax backward
    # reads half rows of its gradient and of the probabilities and writes the row (1 + 1 + 2).
    grads = k.gemm(tokens, seq, d, count=heads) + k.gemm(seq, d, tokens, count=heads)
    grads += k.gemm(tokens, d, seq, count=heads) + k.gemm(seq, d, tokens, count=heads)
    backward = grads + k.memory(tokens * seq * heads * 9)
    assert attention_backward(model, unfused_shape, k, unfused.attention) == pytest.approx(
        backward, rel=1e-12
    )
    # Fused attention keeps its FlashAttention-2 ratio.
    shape = LayerShape(tokens, seq, 1, 1, True)
    assert attention_backward(model, shape, k, fused.attention) == (
        BACKWARD_ATTENTION * fused.attention
    )
    # On one device the step grows by the cores' difference in every forward and backward.
    fast = run(devices=1, seq_len=4096, global_batch=2, micro_batch=1)
    slow = run(devices=1, seq_len=4096, global_batch=2, micro_batch=1, flash_attention=False)
    k = KernelModel(make_cluster("h100-sxm", 1).chip, "bf16")
    core = attention_forward(model, shape, k).attention
    unfused_core = attention_forward(model, unfused_shape, k).attention
    unfused_pass = unfused_core + attention_backward(model, unfused_shape, k, unfused_core)
    per_pass = model.layers * (unfused_pass - (1 + BACKWARD_ATTENTION) * core)
    assert slow.step_time_s - fast.step_time_s == pytest.approx(2 * per_pass, rel=1e-9)


def test_unfused_attention_costs_less_than_the_scaled_forward_did():
    # The backward over the scores moves 9 bytes per element (not 2.5 x the forward's) and
    # runs 4 GEMMs (2 x the forward's, as every other GEMM's backward), so it is below what
    # BACKWARD_ATTENTION x the forward gave before.
    k = KernelModel(make_cluster("a100-sxm-80gb", 1).chip, "bf16")
    shape = LayerShape(2048.0, 2048, 8, 1, True, flash_attention=False)
    model = MODEL
    forward = attention_forward(model, shape, k).attention
    backward = attention_backward(model, shape, k, forward)
    assert 1.5 * forward < backward < BACKWARD_ATTENTION * forward


# -- bad input ---------------------------------------------------------------------------------

BASE = """
[cluster]
chip = "h100-sxm"
devices = 8
[model]
preset = "llama3-8b"
[train]
seq_len = 4096
global_batch = 8
"""


@pytest.mark.parametrize(
    "table, words",
    [
        ('preset = "deepspeed"', ["stack.preset", "'deepspeed'", "megatron-core", "fsdp2"]),
        ("overlap_dp = true", ["stack", "overlap_dp", "overlap_grad_reduce"]),
        ("collective_efficiency = 0", ["stack.collective_efficiency", "(0, 1]"]),
        ("zero3_prefetch = -2", ["stack.zero3_prefetch", "[-1, 10_000]"]),
        ('zero3_granularity = "tensor"', ["stack.zero3_granularity", "module"]),
        ("kernel_efficiency = { gem = 0.5 }", ["stack.kernel_efficiency.gem", "gemm"]),
        ("kernel_efficiency = { h100-sxm = { gem = 0.5 } }", ["gem", "grouped_gemm"]),
        ('layer_overhead = "2 h"', ["stack.layer_overhead", "a time in"]),
    ],
)
def test_bad_stack_keys_name_the_key_and_what_is_allowed(table, words):
    with pytest.raises(SpecError) as error:
        parse_scenario(BASE + "[stack]\n" + table + "\n", source="my.toml")
    for word in words:
        assert word in str(error.value)


def test_a_stack_needs_a_training_plan():
    text = '[cluster]\nchip = "h100-sxm"\ndevices = 8\n[stack]\npreset = "fsdp2"\n'
    with pytest.raises(SpecError, match=r"\[stack\] needs a \[train\] table"):
        parse_scenario(text)


# -- DualPipe and the stack's layer-by-layer splits ----------------------------------------------

DUALPIPE = BASE.replace("global_batch = 8", "global_batch = 32") + 'pp = 2\nschedule = "dualpipe"\n'


@pytest.mark.parametrize(
    "train, stack, key",
    [
        ("zero = 1", "overlap_grad_reduce = true", "stack.overlap_grad_reduce = True"),
        ("zero = 0", "overlap_grad_reduce = true", "stack.overlap_grad_reduce = True"),
        ("zero = 2", 'preset = "mindspeed"', "stack.overlap_param_gather = True"),
        ("zero = 3", 'preset = "deepspeed-2021"', "stack.zero3_granularity = 'module'"),
        ("zero = 3", "zero3_prefetch = 2", "stack.zero3_prefetch = 2"),
        ("zero = 3", "zero3_regather = false", "stack.zero3_regather = False"),
    ],
)
def test_dualpipe_refuses_a_stack_that_splits_passes(train, stack, key):
    # Outside DualPipe these split a pass layer by layer (StepBuilder._split); DualPipe's
    # overlapped F&B chunks have no place for that, so the plan is refused, never costed
    # without the stack's gathers and reductions.
    with pytest.raises(SpecError) as error:
        parse_scenario(DUALPIPE + train + "\n[stack]\n" + stack + "\n")
    message = str(error.value)
    assert key in message and "train.schedule = 'dualpipe'" in message
    assert "megatron-core's" in message
    # The same stack and ZeRO stage with 1F1B is accepted.
    parse_scenario(DUALPIPE.replace("dualpipe", "1f1b") + train + "\n[stack]\n" + stack + "\n")


@pytest.mark.parametrize(
    "train, stack",
    [
        ("zero = 3", 'preset = "megatron-core"'),  # ZeRO-3 gathers per chunk: no split
        ("zero = 0", "overlap_param_gather = true"),  # no ZeRO gather to overlap
        ("zero = 1\ndp = 1\ntp = 4", "overlap_grad_reduce = true"),  # no dp reduction
    ],
)
def test_dualpipe_accepts_a_stack_that_splits_nothing(train, stack):
    scenario = parse_scenario(DUALPIPE + train + "\n[stack]\n" + stack + "\n")
    assert scenario.train.schedule == "dualpipe"
