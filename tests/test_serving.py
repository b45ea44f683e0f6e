"""Serving step costs, memory and `podsim serve`: closed forms, properties, errors, contract."""

import json
from dataclasses import replace

import pytest

from podsim.costs.kernels import KERNEL_OVERHEAD_S
from podsim.costs.serving import (
    DECODE_ATTENTION_MEMORY,
    expected_experts_hit,
    kv_bytes_per_token,
    prefill_work,
    step_work,
)
from podsim.errors import SpecError
from podsim.front.api import serve
from podsim.front.cli import main
from podsim.front.scenario import parse_scenario
from podsim.front.serve import Server, candidates
from podsim.plans.serving import Pool, serve_plan_from_table
from podsim.specs.chips import get_chip
from podsim.specs.clusters import make_cluster, preset_cluster
from podsim.specs.models import get_model

CONTRACT = (
    "ttft_s",
    "tpot_s",
    "prefill_tokens_per_s_per_device",
    "decode_tokens_per_s_per_device",
    "batch",
    "fits_in_memory",
)


def server(model="llama3-8b", chip="h100-sxm", devices=1, **serve_keys) -> Server:
    """A server whose steps are the model's peak (efficiencies 1) unless the keys say."""
    serve_keys = {"decode_efficiency": 1.0, "prefill_efficiency": 1.0, **serve_keys}
    plan = serve_plan_from_table(serve_keys)
    return Server(get_model(model), plan, make_cluster(chip, devices))


def test_decode_at_batch_one_is_bytes_over_bandwidth():
    """Dense model, one device, short context: the step reads every weight once (and a little
    KV), so it is bytes / (HBM bandwidth x memory efficiency) plus the kernels' overheads."""
    s = server(context_len=16)
    point = s.decode_at(1)
    work = point.step.work
    chip = s.chip
    model = s.model
    norms = (2 * model.layers + 1) * model.hidden
    weights = (model.params() - model.embedding_params() - norms) * 2.0
    assert work.weight_bytes == pytest.approx(weights, rel=1e-9)
    # Per layer: q, k, v, out and two MLP GEMMs, the attention core, norms, the MLP's
    # element-wise kernel; then the head.
    kernels = 9 * model.layers + 1
    bound = weights / (chip.hbm_bandwidth * 0.80)
    bound += work.kv_bytes / (chip.hbm_bandwidth * DECODE_ATTENTION_MEMORY)
    assert point.step.compute_s >= bound
    # The rest is the kernels' overheads and a little activation traffic (under 1%).
    rest = point.step.compute_s - bound - kernels * KERNEL_OVERHEAD_S
    assert 0 <= rest < 0.01 * bound


def test_prefill_flops_are_two_active_params_per_token_plus_attention():
    model = get_model("llama3-8b")
    plan = serve_plan_from_table({})
    chip = get_chip("h100-sxm")
    seqs, new = 3, 1000
    work = prefill_work(model, plan, Pool(), chip, seqs, new, 0)
    tokens = seqs * new
    body = model.params() - model.embedding_params() - model.output_params()
    norms = model.layers * 2 * model.hidden + model.hidden
    gemms = 2.0 * (body - norms) * tokens + 2.0 * model.output_params() * seqs
    causal = 2.0 * tokens * (new / 2) * model.heads * 2 * model.head_dim * model.layers
    assert work.flops == pytest.approx(gemms + causal, rel=1e-12)
    # The model's own forward FLOPs (no causal halving, head on every token) bound it.
    assert work.flops < model.forward_flops(tokens, new, mtp=False)


def test_moe_decode_reads_only_the_experts_hit():
    model = get_model("deepseek-v3")
    plan = serve_plan_from_table({"ep": 8, "dp": 8, "precision": "fp8"})
    pool = plan.pool
    chip = get_chip("h800-sxm")
    expert = model.expert_params(model.layers - 1) / model.experts  # one expert, fp8 bytes
    moe_layers = model.layers - model.dense_layers
    one = step_work(model, plan, pool, chip, 1, 1, 100, True)
    many = step_work(model, plan, pool, chip, 64, 1, 100, True)
    for work, tokens in ((one, 1), (many, 64)):
        group = tokens * pool.ep  # tokens of the EP group
        hit = expected_experts_hit(model.experts / pool.ep, model.top_k, model.experts, group)
        shared = step_work(model, replace(plan), pool, chip, tokens, 1, 100, True)
        assert work.weight_bytes == shared.weight_bytes
        routed = moe_layers * hit * expert
        assert routed < work.weight_bytes
    assert many.weight_bytes - one.weight_bytes == pytest.approx(
        moe_layers
        * expert
        * (expected_experts_hit(32, 8, 256, 512) - expected_experts_hit(32, 8, 256, 8)),
        rel=1e-9,
    )
    assert expected_experts_hit(32, 8, 256, 0) == 0.0
    assert expected_experts_hit(32, 8, 256, 1) == pytest.approx(32 * 8 / 256)
    assert expected_experts_hit(32, 8, 256, 10**6) == pytest.approx(32)


def test_mla_kv_cache_is_the_compressed_latent():
    model = get_model("deepseek-v3")
    plan = serve_plan_from_table({})
    # DeepSeek-V3: 576 x 61 x 2 = 70,272 bytes per token in BF16.
    assert kv_bytes_per_token(model, plan, Pool()) == 70272
    llama = get_model("llama3-70b")
    # GQA: 2 x 8 kv heads x 128 x 80 layers x 2 bytes; tp 8 keeps one kv head per device.
    assert kv_bytes_per_token(llama, plan, Pool()) == 2 * 8 * 128 * 80 * 2
    assert kv_bytes_per_token(llama, plan, Pool(tp=8)) == 2 * 1 * 128 * 80 * 2


@pytest.mark.parametrize("batch", [1, 7, 64, 300])
def test_more_hbm_bandwidth_never_slows_decode(batch):
    for model, keys, chip in (
        ("llama3-70b", {"tp": 8, "precision": "fp8"}, "h100-sxm"),
        ("deepseek-v3", {"ep": 16, "dp": 16, "precision": "fp8", "mtp": {}}, "h800-sxm"),
    ):
        base = get_chip(chip)
        times = []
        for factor in (0.5, 1.0, 1.5, 3.0):
            faster = replace(base, hbm_bandwidth=base.hbm_bandwidth * factor)
            devices = 8 if model == "llama3-70b" else 16
            s = Server(get_model(model), serve_plan_from_table(keys), make_cluster(faster, devices))
            times.append(s.decode_at(batch, 4000).step.time_s)
        assert times == sorted(times, reverse=True)
        assert times[0] > times[-1]


def test_a_looser_tpot_limit_never_lowers_throughput():
    s = server("llama3-70b", devices=8, tp=8, precision="fp8", max_batch=2048)
    last = 0.0
    for limit in (0.012, 0.015, 0.02, 0.03, 0.05, 0.1, 1.0):
        point = s.best_decode(limit)
        got = 0.0 if point is None else point.tokens_per_s_per_device
        if point is not None:
            assert point.tpot_s <= limit
        assert got >= last
        last = got
    assert last > 0


def test_a_larger_kv_cache_per_token_never_raises_the_max_batch():
    batches = []
    for kv in ("fp4", "fp8", "bf16"):  # bytes per value grow
        batches.append(server("llama3-70b", devices=8, tp=8, kv_precision=kv).max_batch())
    assert batches == sorted(batches, reverse=True) and batches[0] > batches[-1]
    longer = [server("llama3-8b", context_len=n).max_batch() for n in (1000, 4000, 16000)]
    assert longer == sorted(longer, reverse=True)


def test_fits_in_memory():
    assert serve(_scenario("llama3-8b", "h100-sxm", 1, "batch = 8")).fits_in_memory
    big = serve(_scenario("llama3-405b", "h100-sxm", 1, "batch = 1"))
    assert not big.fits_in_memory and big.max_batch == 0


def test_mtp_divides_tpot_by_expected_tokens_per_step():
    plain = server("deepseek-v3", "h800-sxm", 16, ep=16, dp=16, precision="fp8")
    mtp = server(
        "deepseek-v3",
        "h800-sxm",
        16,
        ep=16,
        dp=16,
        precision="fp8",
        mtp={"depth": 1, "acceptance": 0.85},
    )
    assert mtp.plan.tokens_per_step == pytest.approx(1.85)
    a, b = plain.decode_at(32), mtp.decode_at(32)
    assert b.tpot_s == pytest.approx(b.step.time_s / 1.85)
    assert b.step.time_s > a.step.time_s  # it verifies two tokens and drafts one


def test_two_micro_batches_hide_communication():
    # DeepSeek's decode profile: EP128 with the low-latency kernels, 128 sequences per GPU.
    keys = {"ep": 128, "dp": 128, "precision": "fp8", "ep_algorithm": "low-latency"}
    one = server("deepseek-v3", "h800-sxm", 128, **keys).decode_at(128).step
    two = server("deepseek-v3", "h800-sxm", 128, micro_batches=2, **keys).decode_at(128).step
    assert one.time_s == pytest.approx(one.compute_s + one.comm_s)
    assert two.exposed_comm_s < one.exposed_comm_s
    # Two-batch overlap: per MoE layer four windows, each the longer of a compute part of one
    # micro-batch and an all-to-all of the other (derived by hand from the step's parts).
    work = two.work
    a, e = work.moe_layer_s
    n = work.moe_layers
    d = two.comm_parts["ep_dispatch"] / (2 * n)
    c = two.comm_parts["ep_combine"] / (2 * n)
    windows = max(a, d) + max(e, d) + max(e, c) + max(a, c)
    expected = 2 * (work.compute_s - n * (a + e)) + n * windows
    assert two.time_s == pytest.approx(max(expected, two.compute_s, two.comm_s), rel=1e-12)
    assert two.time_s >= max(two.compute_s, two.comm_s)
    assert expected > max(two.compute_s, two.comm_s)  # here the windows expose some


def test_efficiencies_stretch_steps_and_show_the_overhead():
    keys = {"ep": 16, "dp": 16, "precision": "fp8", "micro_batches": 2}
    peak = server("deepseek-v3", "h800-sxm", 16, **keys)
    slow = server("deepseek-v3", "h800-sxm", 16, decode_efficiency=0.5, **keys)
    p, s = peak.decode_at(64).step, slow.decode_at(64).step
    assert s.time_s == pytest.approx(2 * p.time_s, rel=1e-12)
    assert s.overhead_s == pytest.approx(p.time_s, rel=1e-12) and p.overhead_s == 0.0
    assert s.to_dict()["deployment_overhead_s"] == s.overhead_s
    # The decode efficiency leaves prefill alone, and the prefill efficiency decode.
    assert slow.prefill_at(1).ttft_s == peak.prefill_at(1).ttft_s
    other = server("deepseek-v3", "h800-sxm", 16, prefill_efficiency=0.25, **keys)
    assert other.prefill_at(1).ttft_s == pytest.approx(4 * peak.prefill_at(1).ttft_s)
    assert other.decode_at(64).step.time_s == p.time_s
    with pytest.raises(SpecError, match=r"serve\.decode_efficiency"):
        serve_plan_from_table({"decode_efficiency": 0.0})


def test_bad_plans_name_the_key():
    with pytest.raises(SpecError, match=r"serve\.precision"):
        server(precision="fp4").decode_at(1)  # H100 has no FP4 peak
    with pytest.raises(SpecError, match=r"serve\.ep"):
        server("deepseek-v3", "h800-sxm", 8, ep=3, dp=8)
    with pytest.raises(SpecError, match=r"serve\.ep"):
        server(ep=2, dp=2, devices=2)  # a dense model
    with pytest.raises(SpecError, match=r"serve\.tp"):
        server(tp=3, devices=3)
    with pytest.raises(SpecError, match=r"serve\.dp"):
        server(dp=3, devices=4)
    with pytest.raises(SpecError, match=r"serve\.mtp\.acceptance"):
        serve_plan_from_table({"mtp": {"acceptance": 1.5}})
    with pytest.raises(SpecError, match=r"serve\.scheduler"):
        serve_plan_from_table({"scheduler": "fifo"})
    with pytest.raises(SpecError, match="unknown"):
        serve_plan_from_table({"batchsize": 3})


def test_candidates_are_a_fixed_increasing_set():
    c = candidates(1000)
    assert c[:64] == list(range(1, 65)) and c[-1] == 1000 and c == sorted(set(c))
    assert set(candidates(300)) <= set(candidates(1000)) | {300}


def _scenario(model: str, chip: str, devices: int, serve_lines: str):
    return parse_scenario(
        f'[cluster]\nchip = "{chip}"\ndevices = {devices}\n[model]\npreset = "{model}"\n'
        f"[serve]\n{serve_lines}\n"
    )


def test_serve_cli_json_has_the_contract_keys(capsys):
    assert main(["serve", "llama3-70b-serve-h100", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in CONTRACT:
        assert key in out
    assert out["tpot_s"] <= 0.05 and out["fits_in_memory"] is True
    assert out["decode_tokens_per_s_per_device"] > 0 and out["batch"] >= 1


def test_serve_trace_of_one_decode_step(tmp_path, capsys):
    path = tmp_path / "step.json"
    assert main(["serve", "deepseek-r1-decode-cloudmatrix384", "--trace", str(path)]) == 0
    events = json.loads(path.read_text())["traceEvents"]
    names = {e["name"] for e in events if e["ph"] == "X"}
    assert {"attention_core", "experts", "ep_dispatch", "ep_combine"} <= names


def test_serving_is_deterministic():
    a = serve("deepseek-r1-decode-cloudmatrix384").to_dict()
    b = serve("deepseek-r1-decode-cloudmatrix384").to_dict()
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_compare_serving_scenario_on_chips():
    from podsim.front.api import compare

    rows = compare("llama3-70b-serve-h100", ["h100-sxm", "h200-sxm"])
    assert [r["chip"] for r in rows] == ["h100-sxm", "h200-sxm"]
    # More HBM bandwidth and capacity: at least as fast under the same TPOT limit.
    assert rows[1]["decode_tokens_per_s_per_device"] >= rows[0]["decode_tokens_per_s_per_device"]


def test_dp_attention_cluster_preset():
    s = Server(
        get_model("deepseek-v3"),
        serve_plan_from_table({"ep": 32, "dp": 32, "precision": "fp8", "micro_batches": 2}),
        preset_cluster("hgx-h800", 32),
    )
    point = s.prefill_at(4)
    assert point.tokens_per_s_per_device > 0 and point.step.comm_s > 0


def test_ep_all_to_alls_carry_the_training_lowerings_shape():
    """The EP dispatch/combine go to the engine's collective_time with one token's message and
    the fanout of the hypergeometric routing (podsim.lowering.routing), as training's do: decode
    (low-latency kernels) sends top_k copies per token, prefill one per distinct rank."""
    import numpy as np

    from podsim.engine.core import collective_time
    from podsim.lowering.program import Algorithm, Collective
    from podsim.lowering.routing import routing

    keys = dict(model="deepseek-v3", chip="h800-sxm", tp=1, ep=32, dp=32, precision="fp8")
    s = server(devices=32, redundant_experts=32, **keys)
    cluster, model = s.deployment.cluster, s.model
    r = routing(288, model.top_k, 32, cluster.domain_size, model.max_routed_nodes)
    assert s.deployment.ep_routing == pytest.approx((r.ranks, r.nodes))
    token = model.hidden * (1 + 4 / 128)  # FP8 with one fp32 scale per 128 values
    decode, prefill = s.deployment.decode(64, 1000), s.deployment.prefill(4, 1024)
    for step, tokens, copies in ((decode, 64, model.top_k), (prefill, 4 * 1024, r.ranks)):
        dispatch = next(c for c in step.work.comms if c.label == "ep_dispatch")
        assert dispatch.message_bytes == pytest.approx(token)
        assert dispatch.fanout == pytest.approx(copies / r.nodes)
        assert dispatch.bytes_per_rank == pytest.approx(tokens * copies * token)
        ranks = np.arange(32, dtype=np.int32)
        op, auto = int(Collective.ALL_TO_ALL), int(Algorithm.AUTO)
        shape = (dispatch.bytes_per_rank, token, copies / r.nodes)
        _, seconds = collective_time(cluster, op, auto, ranks, *shape)
        assert s.deployment.comm_seconds(dispatch) == pytest.approx(seconds)
    # The algorithm is a parameter: forcing the low-latency kernel prices it as such.
    low = server(devices=32, redundant_experts=32, ep_algorithm="low-latency", **keys)
    dispatch = next(c for c in low.deployment.decode(64, 1000).work.comms if c.op == "all-to-all")
    ranks = np.arange(32, dtype=np.int32)
    code, seconds = collective_time(
        cluster,
        int(Collective.ALL_TO_ALL),
        int(Algorithm.parse("low-latency")),
        ranks,
        dispatch.bytes_per_rank,
        dispatch.message_bytes,
        dispatch.fanout,
    )
    assert Algorithm(code).label == "low-latency"
    assert low.deployment.comm_seconds(dispatch) == pytest.approx(seconds)


def test_low_latency_kernels_serve_decode_only():
    # ep_algorithm = "low-latency" names DeepEP's decode kernels: decode steps take them,
    # prefill steps the normal kernels (the engine's choice), as with "auto".
    keys = {"ep": 32, "dp": 32, "precision": "fp8", "micro_batches": 2}
    ll = server("deepseek-v3", "h800-sxm", 32, ep_algorithm="low-latency", **keys)
    auto = server("deepseek-v3", "h800-sxm", 32, **keys)
    assert ll.prefill_at(2).step.comm_parts == auto.prefill_at(2).step.comm_parts
    assert ll.decode_at(64).step.comm_parts != auto.decode_at(64).step.comm_parts


@pytest.mark.parametrize("phase, slo", [("decode", "tpot_slo"), ("prefill", "ttft_slo")])
def test_a_batch_is_the_plans_else_the_best_under_the_slo_else_one(phase, slo):
    base = f'phase = "{phase}"\ncontext_len = 2048\ninput_len = 2048\n'
    given = serve(_scenario("llama3-8b", "h100-sxm", 1, base + "batch = 3"))
    assert given.batch == 3 and given.notes == ()
    loose = serve(_scenario("llama3-8b", "h100-sxm", 1, base + f'{slo} = "10 s"'))
    assert loose.batch > 1 and loose.notes == ()
    tight = serve(_scenario("llama3-8b", "h100-sxm", 1, base + f'{slo} = "1 us"'))
    assert tight.batch == 1
    assert tight.notes == (f"no batch meets {slo} and fits: batch 1 shown",)
