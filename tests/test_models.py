"""Model shapes, parameter counts and FLOPs against the published figures and formulas
(Megatron-LM SC'21, Korthikanti et al. 2022, Llama 3, DeepSeek-V3, GPT-3)."""

import dataclasses
import tomllib
from importlib import resources

import pytest

from podsim.costs.flops import flops_per_step
from podsim.errors import SpecError
from podsim.plans.training import Plan
from podsim.specs.models import Model, catalog, get_model, model_from_table

REQUIRED = (
    "gpt3-175b",
    "llama3-8b",
    "llama3-70b",
    "llama3-405b",
    "deepseek-v3",
    "korthikanti-22b",
    "korthikanti-175b",
    "korthikanti-530b",
    "korthikanti-1t",
)

# Megatron-LM SC'21 Table 1: id suffix, published params (billions), heads, hidden, layers.
MEGATRON_TABLE_1 = (
    ("1.7b", 1.7, 24, 2304, 24),
    ("3.6b", 3.6, 32, 3072, 30),
    ("7.5b", 7.5, 32, 4096, 36),
    ("18.4b", 18.4, 48, 6144, 40),
    ("39.1b", 39.1, 64, 8192, 48),
    ("76.1b", 76.1, 80, 10240, 60),
    ("145.6b", 145.6, 96, 12288, 80),
    ("310.1b", 310.1, 128, 16384, 96),
    ("529.6b", 529.6, 128, 20480, 105),
    ("1t", 1008.0, 160, 25600, 128),
)
# Megatron SC'21 Table 1 global batch per row (for the FLOPs formula).
MEGATRON_BATCH = dict(
    zip(
        [row[0] for row in MEGATRON_TABLE_1],
        (512, 512, 512, 1024, 1536, 1792, 2304, 2160, 2520, 3072),
        strict=True,
    )
)

# Korthikanti et al. 2022 Tables 3 and 5: id, tp, pp, global batch, micro batch,
# present-work iteration time (s), reported MFU.
KORTHIKANTI_RUNS = (
    ("korthikanti-22b", 8, 1, 4, 4, 1.10, 0.415),
    ("korthikanti-175b", 8, 8, 64, 1, 13.75, 0.514),
    ("korthikanti-530b", 8, 35, 280, 1, 37.83, 0.560),
    ("korthikanti-1t", 8, 64, 512, 1, 71.49, 0.563),
)
A100_PEAK = 312e12
SEQ, VOCAB = 2048, 51200


def _raw_presets() -> dict:
    text = resources.files("podsim").joinpath("data/models.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def _gpt_plan(batch: int, recompute: str = "none", micro: int = 1) -> Plan:
    return Plan(seq_len=SEQ, global_batch=batch, micro_batch=micro, recompute=recompute)


# --- catalog ---------------------------------------------------------------------------------


def test_catalog_has_the_required_presets():
    ids = set(catalog())
    assert set(REQUIRED) <= ids
    assert {f"megatron-{row[0]}" for row in MEGATRON_TABLE_1} <= ids


@pytest.mark.parametrize("model_id", sorted(_raw_presets()))
def test_every_given_field_has_a_source(model_id):
    table = _raw_presets()[model_id]
    given = set(table) - {"sources", "notes"}
    sources = table["sources"]
    missing = sorted(k for k in given if len(str(sources.get(k, "")).strip()) < 10)
    assert not missing, f"{model_id}: no source for {missing}"
    assert set(sources) <= {f.name for f in dataclasses.fields(Model)}
    assert len(table["notes"]) >= 40
    assert catalog()[model_id].name == model_id


def test_catalog_is_cached_and_get_model_accepts_all_forms():
    assert catalog() is catalog()
    llama = get_model("llama3-8b")
    assert llama is catalog()["llama3-8b"]
    assert get_model(llama) is llama
    assert get_model({"preset": "llama3-8b"}) == llama
    with pytest.raises(SpecError, match="not in the catalog"):
        get_model("llama-9000")


# --- parameter counts against published totals ------------------------------------------


@pytest.mark.parametrize(
    ("model_id", "published_billions"),
    [("llama3-8b", 8.0), ("llama3-70b", 70.6), ("llama3-405b", 405.9)],
)
def test_llama3_params_round_to_the_published_totals(model_id, published_billions):
    # Published to one decimal (Meta model cards); vocabulary 128,256 as released.
    assert round(catalog()[model_id].params() / 1e9, 1) == published_billions


def test_llama3_8b_params_by_hand():
    # attention: q and o 4096^2 each, k and v 4096 x (8 x 128) each
    # mlp: 3 x 4096 x 14336; norms 2 x 4096 per layer + a final one; untied 128256 x 4096 twice
    attention = 2 * 4096**2 + 2 * 4096 * 1024
    layer = attention + 3 * 4096 * 14336 + 2 * 4096
    expected = 32 * layer + 2 * 128256 * 4096 + 4096
    assert catalog()["llama3-8b"].params() == expected


def test_deepseek_v3_total_active_and_mtp_params():
    model = catalog()["deepseek-v3"]
    # DeepSeek-V3 report / README_WEIGHTS.md: 671B total, 37B activated per token.
    assert model.params() == pytest.approx(671e9, rel=0.02)
    assert model.active_params() == pytest.approx(37e9, rel=0.02)
    # README_WEIGHTS.md: 36.6B activated "including 0.9B for the output head", i.e. without
    # the input embedding, which is a lookup.
    without_input_embedding = model.active_params() - model.embedding_params()
    assert without_input_embedding == pytest.approx(36.6e9, rel=0.005)
    # The MTP module: 11.5B unique parameters.
    assert model.mtp_params() == pytest.approx(11.5e9, rel=0.02)


def test_deepseek_v3_layer_params_by_hand():
    model = catalog()["deepseek-v3"]
    h, heads = 7168, 128
    # MLA: q down/up, kv down (+ shared rope key), kv up to nope keys and values, output,
    # plus the two latent RMSNorms.
    attention = h * 1536 + 1536 * heads * 192 + h * (512 + 64) + 512 * heads * 256 + heads * 128 * h
    attention += 1536 + 512
    assert model.attention_params() == attention
    expert = 3 * h * 2048
    assert model.mlp_params(0) == 3 * h * 18432  # dense layer
    assert model.mlp_params(3) == 257 * expert + h * 256  # 256 routed + 1 shared + router
    assert model.expert_params(3) == 256 * expert
    assert model.expert_params(2) == 0
    assert model.layer_params(3) == attention + 257 * expert + h * 256 + 2 * h
    assert [model.is_moe(i) for i in (0, 2, 3, 60)] == [False, False, True, True]


def test_gpt3_175b_params():
    model = catalog()["gpt3-175b"]
    assert model.params() == pytest.approx(175e9, rel=0.02)
    assert round(model.params() / 1e9, 1) == 174.6  # SC'21 Table 2 quotes 174.6B
    assert model.embedding_params() == (VOCAB + SEQ) * 12288
    assert model.output_params() == 0  # tied


@pytest.mark.parametrize(("suffix", "published", "heads", "hidden", "layers"), MEGATRON_TABLE_1)
def test_megatron_table_1_params(suffix, published, heads, hidden, layers):
    model = catalog()[f"megatron-{suffix}"]
    assert (model.heads, model.hidden, model.layers) == (heads, hidden, layers)
    # SC'21 Section 5.1: P = 12 l h^2 (1 + 13/(12h) + (V + s)/(12 l h))
    #                      = 12 l h^2 + 13 l h + (V + s) h, plus our final LayerNorm (2h).
    formula = 12 * layers * hidden**2 + 13 * layers * hidden + (VOCAB + SEQ) * hidden
    assert model.params() == formula + 2 * hidden
    # Within 2% of the published figure, or equal to it at its published precision
    # (1.7B: the formula gives 1.652B, which the paper rounds to 1.7).
    billions = model.params() / 1e9
    digits = 0 if published >= 1000 else 1
    assert abs(billions / published - 1) <= 0.02 or round(billions, digits) == published


@pytest.mark.parametrize(
    ("model_id", "published"),
    [("korthikanti-22b", 22), ("korthikanti-175b", 175), ("korthikanti-530b", 530)],
)
def test_korthikanti_params(model_id, published):
    assert catalog()[model_id].params() == pytest.approx(published * 1e9, rel=0.02)


def test_korthikanti_1t_and_175b_shapes():
    assert catalog()["korthikanti-1t"].params() == pytest.approx(1.008e12, rel=0.001)
    k175, gpt3 = catalog()["korthikanti-175b"], catalog()["gpt3-175b"]
    shape = ("layers", "hidden", "heads", "ffn_hidden", "vocab", "kv_heads", "head_dim")
    assert [getattr(k175, f) for f in shape] == [getattr(gpt3, f) for f in shape]


def test_active_params_of_a_dense_model_are_all_params():
    model = catalog()["llama3-70b"]
    assert model.active_params() == model.params()


# --- FLOPs against the published formulas ---------------------------------------------------


@pytest.mark.parametrize(("model_id", "tp", "pp", "batch", "micro", "_t", "_m"), KORTHIKANTI_RUNS)
def test_model_flops_equal_korthikanti_formula(model_id, tp, pp, batch, micro, _t, _m):
    model = catalog()[model_id]
    plan = Plan(seq_len=SEQ, global_batch=batch, micro_batch=micro, tp=tp, pp=pp)
    b, s, n, h = batch, SEQ, model.layers, model.hidden
    # Korthikanti et al. 2022, the model FLOPs of its MFU: 72 B s l h^2 (1 + s/6h + V/12lh)
    expected = 72 * b * s * n * h**2 * (1 + s / (6 * h) + VOCAB / (12 * n * h))
    flops = flops_per_step(model, plan)
    assert flops["model"] == pytest.approx(expected, rel=1e-12)
    assert flops["hardware"] == flops["model"]  # no recompute


@pytest.mark.parametrize(
    ("model_id", "tp", "pp", "batch", "micro", "secs", "mfu"), KORTHIKANTI_RUNS
)
def test_model_flops_reproduce_korthikanti_table_5_mfu(model_id, tp, pp, batch, micro, secs, mfu):
    # MFU = model FLOPs per step / (iteration time x GPUs x A100 peak); Table 5 rounds to 0.1%.
    plan = Plan(seq_len=SEQ, global_batch=batch, micro_batch=micro, tp=tp, pp=pp)
    flops = flops_per_step(catalog()[model_id], plan)["model"]
    assert flops / (secs * tp * pp * A100_PEAK) == pytest.approx(mfu, abs=0.002)


@pytest.mark.parametrize("suffix", [row[0] for row in MEGATRON_TABLE_1])
def test_full_recompute_hardware_flops_equal_megatron_eq_3(suffix):
    model = catalog()[f"megatron-{suffix}"]
    b, s, n, h = MEGATRON_BATCH[suffix], SEQ, model.layers, model.hidden
    flops = flops_per_step(model, _gpt_plan(b, "full"))
    # SC'21 eq. 3: 96 B s l h^2 (1 + s/6h + V/16lh): 4 passes over the layers, 3 over logits.
    expected = 96 * b * s * n * h**2 * (1 + s / (6 * h) + VOCAB / (16 * n * h))
    assert flops["hardware"] == pytest.approx(expected, rel=1e-12)
    assert flops["recompute"] == pytest.approx(expected - flops["model"], rel=1e-12)


def test_selective_recompute_adds_the_attention_core_forward():
    model = catalog()["korthikanti-175b"]
    b, s, n, h = 64, SEQ, model.layers, model.hidden
    flops = flops_per_step(model, _gpt_plan(b, "selective"))
    # QK^T and AV forward once more: 4 B s^2 h per layer.
    assert flops["recompute"] == pytest.approx(4 * b * s * s * h * n, rel=1e-12)
    # Korthikanti's Table 5 HFU/MFU ratios imply (1 + s/3h + ..)/(1 + s/6h + ..), i.e. three
    # times this (the attention core's forward AND backward); we count what is re-executed.
    ratio = flops["hardware"] / flops["model"]
    assert 1.008 < ratio < 1.010


def test_flops_per_token_is_6n_plus_attention_for_llama():
    model = catalog()["llama3-8b"]
    s = 8192
    plan = Plan(seq_len=s, global_batch=16)
    per_token = flops_per_step(model, plan)["model"] / (16 * s)
    # Narayanan / Kaplan / PaLM: 6N + 12 l s (heads x head_dim), with N the parameters that
    # take part in matrix multiplications: all but the input embedding and the norms.
    norms = model.layers * 2 * model.hidden + model.hidden
    n_matmul = model.params() - model.embedding_params() - norms
    attention = 12 * model.layers * s * model.heads * model.head_dim
    assert per_token == pytest.approx(6 * n_matmul + attention, rel=1e-12)
    # ... which is within 1e-4 of 6 x (all parameters but the input embedding) + attention.
    approx = 6 * (model.params() - model.embedding_params()) + attention
    assert per_token == pytest.approx(approx, rel=1e-4)


def test_layer_forward_flops_breakdown_dense():
    model = catalog()["llama3-8b"]
    tokens, seq = 1000, 4096
    flops = model.layer_forward_flops(0, tokens, seq)
    assert set(flops) == {"qkv", "attention_core", "attention_out", "mlp"}
    assert flops["qkv"] == 2 * tokens * (4096 * 4096 + 2 * 4096 * 1024)
    assert flops["attention_core"] == 4 * tokens * seq * 32 * 128
    assert flops["attention_out"] == 2 * tokens * 4096 * 4096
    assert flops["mlp"] == 2 * tokens * 3 * 4096 * 14336
    assert model.logits_forward_flops(tokens) == 2 * tokens * 4096 * 128256
    forward = model.forward_flops(tokens, seq)
    assert forward == pytest.approx(32 * sum(flops.values()) + 2 * tokens * 4096 * 128256)


def test_layer_forward_flops_breakdown_moe_mla():
    model = catalog()["deepseek-v3"]
    tokens, seq, h = 4096, 4096, 7168
    moe = model.layer_forward_flops(10, tokens, seq)
    assert set(moe) == {"qkv", "attention_core", "attention_out", "moe_experts", "router"}
    # MLA: QK^T over 192 (128 nope + 64 rope), AV over 128.
    assert moe["attention_core"] == 2 * tokens * seq * 128 * (192 + 128)
    assert moe["moe_experts"] == 2 * tokens * (8 + 1) * 3 * h * 2048
    assert moe["router"] == 2 * tokens * h * 256
    dense = model.layer_forward_flops(0, tokens, seq)
    assert dense["mlp"] == 2 * tokens * 3 * h * 18432
    assert dense["qkv"] == moe["qkv"]
    # MLA projections: 2 FLOPs per weight of the down and up projections, per token.
    qkv_weights = h * 1536 + 1536 * 128 * 192 + h * 576 + 512 * 128 * 256
    assert moe["qkv"] == 2 * tokens * qkv_weights


def test_moe_forward_flops_follow_active_params_and_mtp():
    model = catalog()["deepseek-v3"]
    tokens, seq = 1.0, 1.0  # one token, context 1: attention core is negligible
    no_mtp = model.forward_flops(tokens, seq, mtp=False)
    core = model.layers * 2 * 128 * 320
    # Forward = 2 FLOPs per active matrix weight (all but input embedding and norms).
    norms = model.layers * 2 * 7168 + 7168 + model.layers * (1536 + 512)
    active_matmul = model.active_params() - model.embedding_params() - norms
    assert no_mtp == pytest.approx(2 * active_matmul + core, rel=1e-12)
    mtp = model.forward_flops(tokens, seq) - no_mtp
    assert mtp == pytest.approx(model.mtp_forward_flops(tokens, seq))
    layer = sum(model.layer_forward_flops(60, tokens, seq).values())
    assert mtp == pytest.approx(2 * 2 * 7168**2 + layer + model.logits_forward_flops(tokens))


def test_flops_scale_with_tokens_and_reject_bad_inputs():
    model = catalog()["llama3-8b"]
    one = model.forward_flops(1024, 2048)
    assert model.forward_flops(2048, 2048) == pytest.approx(2 * one)
    with pytest.raises(SpecError, match="tokens"):
        model.layer_forward_flops(0, -1, 2048)
    with pytest.raises(SpecError, match="layer"):
        model.layer_forward_flops(32, 1, 2048)


# --- validation and scenario tables -----------------------------------------------------------


def _dense(**changes) -> Model:
    values = {"name": "t", "layers": 2, "hidden": 64, "heads": 4, "ffn_hidden": 256, "vocab": 100}
    return Model(**{**values, **changes})


def test_derived_defaults():
    model = _dense()
    assert (model.kv_heads, model.head_dim, model.attention) == (4, 16, "mha")
    gqa = _dense(kv_heads=2)
    assert gqa.attention == "gqa"
    assert _dense(heads=6, head_dim=16).head_dim == 16  # 6 does not divide 64, head_dim given


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"heads": 6}, "model.heads"),
        ({"kv_heads": 3}, "model.kv_heads"),
        ({"kv_heads": 2, "attention": "mha"}, "model.kv_heads"),
        ({"attention": "linear"}, "model.attention"),
        ({"attention": "mla"}, "model.kv_lora_rank"),
        ({"kv_lora_rank": 8}, "model.kv_lora_rank"),
        ({"mlp": "relu"}, "model.mlp"),
        ({"layers": 0}, "model.layers"),
        ({"hidden": 64.0}, "model.hidden"),
        ({"top_k": 2}, "model.top_k"),
        ({"experts": 4, "top_k": 5, "expert_ffn_hidden": 32}, "model.top_k"),
        ({"experts": 4, "top_k": 2}, "model.expert_ffn_hidden"),
        ({"experts": 4, "top_k": 2, "expert_ffn_hidden": 32, "dense_layers": 2}, "dense_layers"),
        ({"ffn_hidden": 0}, "model.ffn_hidden"),
        ({"tied_embeddings": 1}, "model.tied_embeddings"),
    ],
)
def test_bad_fields_are_named(changes, field):
    with pytest.raises(SpecError, match=field.replace(".", r"\.")) as error:
        _dense(**changes)
    assert "not allowed" in str(error.value)


def test_all_moe_model_needs_no_dense_width():
    model = _dense(ffn_hidden=0, experts=4, top_k=2, expert_ffn_hidden=32)
    assert model.mlp_params(0) == 4 * 2 * 64 * 32 + 64 * 4  # gelu experts + router
    # 2 layers x (4 - 2) unused experts x (64 x 32 + 32 x 64) weights each
    assert model.active_params() == model.params() - 2 * 2 * (2 * 64 * 32)


def test_model_from_table_explicit_and_errors():
    model = model_from_table(
        {"name": "mine", "layers": 2, "hidden": 64, "heads": 4, "ffn_hidden": 256, "vocab": 100}
    )
    assert model.name == "mine" and model.params() > 0
    with pytest.raises(SpecError, match=r"unknown key\(s\) \['heeds'\].*allowed"):
        model_from_table({"preset": "llama3-8b", "heeds": 4})
    with pytest.raises(SpecError, match="missing key"):
        model_from_table({"layers": 2, "hidden": 64})
    with pytest.raises(SpecError, match=r"model\.preset"):
        model_from_table({"preset": "gpt-5"})


def test_preset_overrides_rederive_fields_and_sources():
    model = model_from_table({"preset": "llama3-8b", "hidden": 2048, "layers": 16})
    base = catalog()["llama3-8b"]
    assert model.head_dim == 2048 // 32  # re-derived, not the preset's 128
    assert (model.kv_heads, model.mlp, model.vocab) == (8, "swiglu", base.vocab)
    assert model.name == "llama3-8b-custom"
    assert "scenario" in model.sources["hidden"]
    assert model.sources["vocab"] == base.sources["vocab"]
    same = model_from_table({"preset": "llama3-8b"})
    assert same == base and same.name == "llama3-8b"


def test_to_dict_has_sources_and_counts():
    out = catalog()["deepseek-v3"].to_dict()
    assert out["sources"]["experts"].startswith("deepseek-ai/DeepSeek-V3")
    assert out["params"] == catalog()["deepseek-v3"].params()
    assert out["active_params"] < out["params"]
