"""Memory per device: ZeRO model states (Rajbhandari et al. SC'20) and activations
(Korthikanti et al. 2022), pipeline stages, MoE expert parallelism, capacity checks."""

from dataclasses import replace

import pytest

from podsim.costs.memory import (
    MemoryBreakdown,
    activation_bytes_per_layer,
    in_flight_microbatches,
    memory_per_device,
    memory_per_stage,
    reserve_bytes,
    stage_layer_counts,
)
from podsim.errors import SpecError
from podsim.plans.training import Plan
from podsim.specs.models import Model, catalog

SEQ, VOCAB = 2048, 51200
KORTHIKANTI = ("korthikanti-22b", "korthikanti-175b", "korthikanti-530b", "korthikanti-1t")
MICRO = {"korthikanti-22b": 4}  # Table 3: micro batch 4 for 22B, 1 for the others


def _plan(**changes) -> Plan:
    # Korthikanti et al.'s formulas describe unfused attention (the s x s scores are kept).
    values = {"seq_len": SEQ, "global_batch": 64, "micro_batch": 1, "flash_attention": False}
    return Plan(**{**values, **changes})


def _states(memory: MemoryBreakdown) -> float:
    return memory.weights + memory.gradients + memory.optimizer


# --- model states: ZeRO ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zero", "per_psi", "paper_gb"),
    [
        # Rajbhandari et al. Figure 1, psi = 7.5B, N_d = 64, K = 12:
        (0, 16.0, 120.0),  # (2 + 2 + K) psi
        (1, 4.0 + 12.0 / 64, 31.4),  # 2 psi + 2 psi + K psi / N_d
        (2, 2.0 + 14.0 / 64, 16.6),  # 2 psi + (2 + K) psi / N_d
        (3, 16.0 / 64, 1.9),  # (2 + 2 + K) psi / N_d
    ],
)
def test_zero_stages_follow_rajbhandari(zero, per_psi, paper_gb):
    model = catalog()["megatron-7.5b"]
    psi = model.params()
    memory = memory_per_device(model, _plan(dp=64, zero=zero))
    assert _states(memory) == pytest.approx(per_psi * psi, rel=1e-12)
    # Scaled to the paper's psi = 7.5e9 it reproduces Figure 1's GB to its rounding.
    assert _states(memory) * 7.5e9 / psi / 1e9 == pytest.approx(paper_gb, abs=0.05)


def test_zero_splits_weights_gradients_optimizer_separately():
    model = catalog()["megatron-7.5b"]
    psi = model.params()
    z1 = memory_per_device(model, _plan(dp=64, zero=1))
    assert (z1.weights, z1.gradients) == (pytest.approx(2 * psi), pytest.approx(2 * psi))
    assert z1.optimizer == pytest.approx(12 * psi / 64)
    z3 = memory_per_device(model, _plan(dp=64, zero=3))
    assert z3.weights == pytest.approx(2 * psi / 64)


@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp8"])
def test_mixed_precision_adam_is_16_bytes_per_param(precision):
    # fp8 keeps bf16 weights, fp32 master weights and Adam moments (documented choice).
    model = catalog()["llama3-8b"]
    memory = memory_per_device(model, _plan(precision=precision, optimizer_moments="fp32"))
    assert _states(memory) == pytest.approx(16 * model.params(), rel=1e-12)


def test_deepseek_fp8_keeps_adam_moments_in_bf16():
    # DeepSeek-V3 section 3.3.3: BF16 moments, so 2 + 2 + (4 + 2 + 2) = 12 bytes per parameter;
    # "auto" picks them with the blockwise recipe (DeepSeek's framework), not per-tensor.
    model = catalog()["llama3-8b"]
    blockwise = memory_per_device(model, _plan(precision="fp8"))
    per_tensor = memory_per_device(model, _plan(precision="fp8", fp8_recipe="per-tensor"))
    assert _states(blockwise) == pytest.approx(12 * model.params(), rel=1e-12)
    assert _states(per_tensor) == pytest.approx(16 * model.params(), rel=1e-12)


def test_tensor_and_pipeline_parallel_split_the_weights():
    model = catalog()["korthikanti-175b"]
    h, n = model.hidden, model.layers
    memory = memory_per_stage(model, _plan(tp=8, pp=8))
    # First stage: 12 layers and the (vocab + positions) embedding, split 8 ways by tp.
    first = (12 * model.layer_params(0) + model.embedding_params()) / 8
    assert memory[0].weights == pytest.approx(2 * first, rel=1e-12)
    # Middle stages: layers only. Last: layers, final LayerNorm and a copy of the tied head.
    assert memory[3].weights == pytest.approx(2 * 12 * model.layer_params(0) / 8)
    last = 12 * model.layer_params(0) + VOCAB * h + 2 * h
    assert memory[7].weights == pytest.approx(2 * last / 8, rel=1e-12)
    assert n == 96


def test_moe_experts_split_by_ep_and_zero_over_expert_data_parallel():
    model = catalog()["deepseek-v3"]
    # DeepSeek-V3 Section 3.2: PP 16, EP 64, ZeRO-1 data parallel. 2048 devices, dp 128.
    plan = Plan(seq_len=4096, global_batch=1920, pp=16, dp=128, ep=64, zero=1)
    counts = stage_layer_counts(model, plan)
    assert counts == [3] * 3 + [4] * 13 and sum(counts) == 61  # the remainder goes last
    stage = memory_per_stage(model, plan)[5]  # 4 MoE layers, nothing else
    layer = 20
    routed = model.expert_params(layer)
    dense = model.layer_params(layer) - routed
    psi_dense, psi_expert = 4 * dense, 4 * routed / 64
    assert stage.weights == pytest.approx(2 * (psi_dense + psi_expert), rel=1e-12)
    # ZeRO-1: optimizer sharded over dp for dense, over dp / ep = 2 for expert parameters.
    assert stage.optimizer == pytest.approx(12 * (psi_dense / 128 + psi_expert / 2), rel=1e-12)


def test_most_loaded_stage_is_reported():
    model = catalog()["korthikanti-175b"]
    plan = _plan(tp=8, pp=8)
    stages = memory_per_stage(model, plan)
    worst = memory_per_device(model, plan)
    assert worst.total == max(m.total for m in stages)
    assert worst.stage == 0  # the embedding and pp microbatches in flight
    assert [m.stage for m in stages] == list(range(8))


def test_stage_layers_moves_layers_off_the_first_stage():
    model = catalog()["llama3-405b"]
    plan = Plan(seq_len=8192, global_batch=16, pp=16, tp=8)
    assert stage_layer_counts(model, plan) == [7] * 2 + [8] * 14
    assert stage_layer_counts(model, plan, stage_layers=6) == [6] + [8] * 15
    fewer = memory_per_stage(model, plan, stage_layers=6)[0]
    default = memory_per_stage(model, plan)[0]
    assert fewer.weights < default.weights and fewer.activations < default.activations
    for bad in (-1, 127):
        with pytest.raises(SpecError, match="stage_layers"):
            stage_layer_counts(model, plan, stage_layers=bad)
    with pytest.raises(SpecError, match="stage_layers"):
        stage_layer_counts(model, _plan(), stage_layers=3)


# --- activations: Korthikanti Table 2 ---------------------------------------------------------


def _sbh_as(model_id: str) -> tuple[Model, float, float, int]:
    model = catalog()[model_id]
    b = MICRO.get(model_id, 1)
    return model, SEQ * b * model.hidden, model.heads * SEQ / model.hidden, b


@pytest.mark.parametrize("model_id", KORTHIKANTI)
@pytest.mark.parametrize(
    ("recompute", "sp", "formula"),
    [
        # t = 8; bytes per layer per microbatch, Korthikanti et al. 2022 Table 2.
        ("none", True, lambda sbh, a_s_h, t: sbh / t * (34 + 5 * a_s_h)),
        ("none", False, lambda sbh, a_s_h, t: sbh * (10 + 24 / t + 5 * a_s_h / t)),
        ("selective", True, lambda sbh, a_s_h, t: sbh * 34 / t),
        ("selective", False, lambda sbh, a_s_h, t: sbh * (10 + 24 / t)),
        ("full", True, lambda sbh, a_s_h, t: 2 * sbh / t),
        ("full", False, lambda sbh, a_s_h, t: 2 * sbh),
    ],
)
def test_activations_per_layer_follow_korthikanti(model_id, recompute, sp, formula):
    model, sbh, a_s_h, b = _sbh_as(model_id)
    plan = _plan(micro_batch=b, tp=8, recompute=recompute, sequence_parallel=sp)
    assert activation_bytes_per_layer(model, plan) == pytest.approx(
        formula(sbh, a_s_h, 8), rel=1e-12
    )


@pytest.mark.parametrize("model_id", KORTHIKANTI)
def test_activations_without_parallelism(model_id):
    model, sbh, a_s_h, b = _sbh_as(model_id)
    plan = _plan(micro_batch=b)
    assert activation_bytes_per_layer(model, plan) == pytest.approx(sbh * (34 + 5 * a_s_h))


def test_korthikanti_175b_numbers():
    # s b h = 2048 x 12288; a s / h = 96 x 2048 / 12288 = 16, so 5as/h = 80 > 34: the
    # attention scores dominate, as the paper points out. With t = 8 and sp: (34 + 80)/8.
    model = catalog()["korthikanti-175b"]
    plan = _plan(tp=8, recompute="none")
    assert activation_bytes_per_layer(model, plan) == pytest.approx(2048 * 12288 * 114 / 8)


def test_first_stage_activations_1f1b():
    # Korthikanti Section 4.2.3: with 1F1B the first stage holds pp microbatches of L/pp
    # layers, i.e. one microbatch of all L layers; plus the embedding dropout mask sbhp/t.
    model, sbh, _, _ = _sbh_as("korthikanti-1t")
    plan = _plan(global_batch=512, tp=8, pp=64, recompute="selective")
    first = memory_per_stage(model, plan)[0]
    per_layer = activation_bytes_per_layer(model, plan)
    assert first.in_flight == 64
    assert first.activations == pytest.approx(per_layer * 128 + sbh * 64 / 8, rel=1e-12)


@pytest.mark.parametrize(("model_id", "pp"), [("korthikanti-175b", 8), ("korthikanti-530b", 35)])
def test_first_stage_activations_interleaved(model_id, pp):
    # Korthikanti Section 4.2.3: the interleaved schedule's first stage holds activations of
    # pp (1 + (pp - 1)/(pp v)) microbatches of its L/pp layers (v = 3 chunks per stage).
    model, sbh, _, _ = _sbh_as(model_id)
    plan = _plan(global_batch=280, tp=8, pp=pp, schedule="interleaved", virtual_stages=3)
    factor = pp * (1 + (pp - 1) / (pp * 3))
    first = memory_per_stage(model, plan)[0]
    per_layer = activation_bytes_per_layer(model, plan)
    stage_layers = model.layers // pp
    assert first.in_flight == pytest.approx(factor, rel=1e-12)
    expected = factor * (stage_layers * per_layer + sbh / 8)
    assert first.activations == pytest.approx(expected, rel=1e-12)


def test_last_stage_holds_the_logits():
    model, sbh, _, _ = _sbh_as("korthikanti-175b")
    plan = _plan(tp=8, pp=8)
    last = memory_per_stage(model, plan)[7]
    # One microbatch in flight: 12 layers + 4sbh/t (final norm, head input) + 4sbv/t logits.
    per_layer = activation_bytes_per_layer(model, plan)
    expected = 12 * per_layer + 4 * sbh / 8 + 4 * SEQ * VOCAB / 8
    assert last.in_flight == 1
    assert last.activations == pytest.approx(expected, rel=1e-12)


def test_context_parallel_divides_the_sequence():
    model = catalog()["korthikanti-22b"]
    cp2 = activation_bytes_per_layer(model, _plan(cp=2, recompute="selective"))
    half = activation_bytes_per_layer(model, _plan(seq_len=SEQ // 2, recompute="selective"))
    assert cp2 == pytest.approx(half)


def test_widths_scale_the_terms_for_swiglu_gqa_and_moe():
    s, h = 4096, 4096
    plan = Plan(seq_len=s, global_batch=8, recompute="selective")
    base = {"name": "w", "layers": 2, "hidden": h, "heads": 32, "ffn_hidden": 4 * h, "vocab": 1000}
    gelu = activation_bytes_per_layer(Model(**base), plan)
    assert gelu == pytest.approx(s * h * 34)
    # SwiGLU with the same inner width stores 6f/h instead of 4f/h: 16 -> 24.
    swiglu = activation_bytes_per_layer(Model(**{**base, "mlp": "swiglu"}), plan)
    assert swiglu == pytest.approx(s * h * 42)
    # GQA with 8 of 32 KV heads: keys and values are a quarter as wide: 8 -> 2 + 2 + 1 = 5.
    gqa = activation_bytes_per_layer(Model(**{**base, "kv_heads": 8}), plan)
    assert gqa == pytest.approx(s * h * 31)
    # MoE, top-2 of 8 experts of width h (gelu): 2 x 4 + 2 routed inputs x 2 = 12 for the MLP.
    moe = {**base, "experts": 8, "top_k": 2, "expert_ffn_hidden": h}
    core = replace(plan, recompute_modules=("core_attn",))
    assert activation_bytes_per_layer(Model(**moe), core, 1) == pytest.approx(s * h * 30)
    # The default for MoE also recomputes the experts' activation (moe_act): each copy keeps
    # its input (2) and the activation's input (2), not its output: 2 x 4 = 8 for the MLP.
    assert activation_bytes_per_layer(Model(**moe), plan, 1) == pytest.approx(s * h * 26)


# --- pipeline in-flight microbatches --------------------------------------------------------


def test_in_flight_microbatches_per_schedule():
    one_f = _plan(pp=4, global_batch=16)
    assert [in_flight_microbatches(one_f, i) for i in range(4)] == [4, 3, 2, 1]
    few = _plan(pp=8, global_batch=3)  # 3 microbatches < pp: only 3 can be in flight
    assert in_flight_microbatches(few, 0) == 3
    gpipe = _plan(pp=4, global_batch=16, schedule="gpipe")
    assert in_flight_microbatches(gpipe, 3) == 16
    assert in_flight_microbatches(_plan(global_batch=16, schedule="gpipe"), 0) == 1
    dual = _plan(pp=4, global_batch=16, schedule="dualpipe")
    assert in_flight_microbatches(dual, 0) == 2.5  # (pp + 1) / 2 for each mirrored stage
    auto = _plan(pp=4, global_batch=16, schedule="interleaved")
    assert in_flight_microbatches(auto, 0) == pytest.approx(4 * (1 + 3 / 8))  # v = 2
    with pytest.raises(SpecError, match="stage"):
        in_flight_microbatches(one_f, 4)


def test_dualpipe_holds_two_stages_of_parameters():
    model = catalog()["korthikanti-175b"]
    plain = memory_per_stage(model, _plan(tp=8, pp=8))
    dual = memory_per_stage(model, _plan(tp=8, pp=8, schedule="dualpipe"))
    # Device 3 holds stages 3 and 4: twice a middle stage's weights (DeepSeek-V3 Table 2).
    assert dual[3].weights == pytest.approx(2 * plain[3].weights)
    # Activations: (pp + 1) stage-equivalents, vs pp for 1F1B's first stage.
    per_stage = 12 * activation_bytes_per_layer(model, _plan(tp=8, pp=8))
    assert dual[3].activations == pytest.approx(9 * per_stage)


# --- capacity -------------------------------------------------------------------------------


def test_fits_compares_the_total_and_the_reserve_with_capacity():
    gb = 1e9
    memory = MemoryBreakdown(
        weights=10 * gb, gradients=10 * gb, optimizer=40 * gb, activations=4 * gb
    )
    assert memory.total == 64 * gb
    # Reserve: 2 GB of context and communicators plus 3% of 80 GB = 4.4 GB; 64 + 4.4 <= 80.
    assert reserve_bytes(80 * gb) == pytest.approx(4.4 * gb)
    assert memory.fits(80 * gb) and not memory.fits(68 * gb)
    assert memory.to_dict()["total"] == 64 * gb


def test_llama3_405b_fits_only_when_split_enough():
    model = catalog()["llama3-405b"]
    hbm = 80e9
    # tp 8 alone: 405.9B x 16 bytes / 8 = 812 GB of model states per device.
    assert not memory_per_device(model, Plan(seq_len=8192, global_batch=8, tp=8)).fits(hbm)
    # Llama 3 Section 3.3.2 style split: tp 8, pp 16, dp 8, ZeRO-1, 1F1B.
    split = {"seq_len": 8192, "global_batch": 64, "tp": 8, "pp": 16, "dp": 8, "zero": 1}
    fits = {
        mode: memory_per_device(model, Plan(**split, recompute=mode, flash_attention=False)).fits(
            hbm
        )
        for mode in ("none", "selective", "full")
    }
    # Stored attention scores, 5 a s^2 b / t = 5 x 128 x 8192^2 / 8 = 5.4 GB per layer,
    # cannot fit; without them it does.
    assert fits == {"none": False, "selective": True, "full": True}
    # FlashAttention keeps no scores: no recomputation is needed to fit.
    assert memory_per_device(model, Plan(**split)).fits(hbm)
