"""Serving step costs: the kernels one device runs in a prefill or decode step, and the bytes its
collectives move (timed by the engine: podsim.engine.serving).

Per device and step (all layers of its pipeline stage):

* GEMMs run at the plan's GEMM precision with weights of `weight_bytes` per parameter, as a
  roofline: max(FLOPs / (peak x efficiency x shape factor), bytes / (HBM x memory efficiency))
  (podsim.costs.kernels). At decode the bytes are the weights: decode is bandwidth-bound.
* Attention cores run in 16 bits. Decode reads the whole KV cache of the rank's sequences:
  MLA's compressed cache (kv_lora_rank + qk_rope_head_dim per token and layer, shared by the
  heads, with the up-projections absorbed into the query and output as DeepSeek-V2 describes,
  so a query head attends over kv_lora + rope dims and reads kv_lora dims of values), GQA's
  kv_heads x head_dim keys and values. Prefill attends causally (half the score matrix of a
  chunk plus the whole cached prefix).
* MoE: each expert-parallel rank holds (experts + redundant) / ep expert slots; a step's
  tokens hit E_local x (1 - (1 - k/E)^T) of them on average (T: tokens of the EP group, k:
  top_k, E: slots), and only those experts' weights are read. Routed tokens are spread
  evenly over the slots (EPLB's aim). Shared experts and dense layers are GEMMs over the
  rank's tokens.
* Multi-token prediction: a decode step verifies 1 + depth tokens per sequence and drafts
  depth tokens with the MTP module (one layer and the head per depth).
* Communication (bytes only, here): per MoE layer an all-to-all dispatch (FP8 with per-128
  scales, or the activation precision) and a combine (BF16) over the ep ranks, priced as the
  training lowering prices them (podsim.lowering.training, podsim.lowering.routing): one
  message per token copy (`message_bytes`), `fanout` copies per node copy. Decode's low-latency
  kernels send every routed copy (top_k per token, DeepEP's one message per (token, expert));
  prefill's normal kernels send one copy per distinct destination rank, node-forwarded from one
  copy per node (`ep_routing`: distinct ranks and nodes per token, from the engine, which knows
  the cluster's domains); two all-reduces per layer with tp > 1.
"""

import math
from dataclasses import dataclass, field

from podsim.costs.kernels import K_HALF, KERNEL_OVERHEAD_S, KernelModel
from podsim.plans.serving import Pool, ServePlan, gemm_precision
from podsim.specs.chips import Chip
from podsim.specs.models import Model

ACTIVATION_BYTES = 2.0  # activations between kernels and attention inputs: 16 bits
# Serving GEMMs are skinny (decode: m = a few tokens per expert). Kernels for them (split-K /
# stream-K, swapped operands) fill the chip, so only the tensor-core tile's rows are lost:
# MMA_ROWS rows per instruction (Hopper wgmma: m = 64). ESTIMATE of the kernel behaviour.
MMA_ROWS = 64
# Decode attention (FlashMLA on H800 SXM5, deepseek-ai/FlashMLA README): up to 3,000 GB/s when
# memory-bound and 580 TFLOP/s BF16 when compute-bound, i.e. 0.90 of 3.35 TB/s and 0.59 of
# 989 TFLOP/s. Used for every chip's decode attention unless the chip gives an "attention"
# efficiency (ESTIMATE for chips other than H800/H100).
DECODE_ATTENTION_COMPUTE = 0.59
DECODE_ATTENTION_MEMORY = 0.90
FP8_SCALE_BYTES = 4.0 / 128  # one fp32 scale per 128 values (DeepSeek-V3's fine-grained FP8)
NORM_TRAFFIC = 5.0  # hidden-wide reads and writes of norms and residuals per token and layer


@dataclass(frozen=True)
class Comm:
    """One collective of a step: `count` of them, each moving `bytes_per_rank` (nccl-tests
    convention) among `group` ranks; `message_bytes` is one token's message and `fanout` the
    ranks one node copy reaches (all-to-all: the engine's optional shape columns)."""

    label: str
    op: str  # "all-to-all" | "all-reduce"
    group: int
    bytes_per_rank: float
    count: int
    message_bytes: float = 0.0
    low_latency: bool = True
    fanout: float = 1.0


@dataclass(frozen=True)
class StepWork:
    """What one device computes in one step (one micro-batch) and what it communicates."""

    compute_s: float
    parts: dict[str, float] = field(default_factory=dict)  # seconds by part
    flops: float = 0.0
    weight_bytes: float = 0.0
    kv_bytes: float = 0.0
    comms: tuple[Comm, ...] = ()
    # Per MoE layer: the compute before the dispatch (attention, norms, router) and between
    # dispatch and combine (experts, shared experts, permutation), for the two-batch overlap.
    moe_layers: float = 0.0
    moe_layer_s: tuple[float, float] = (0.0, 0.0)


class _Costs:
    """Accumulates kernel times by part."""

    def __init__(self, chip: Chip, plan: ServePlan) -> None:
        self.k = KernelModel(chip, "bf16")
        self.chip = chip
        self.gemm_precision = gemm_precision(plan, dict(chip.peak_flops))
        self.gemm_peak = chip.peak(self.gemm_precision)
        self.attention_peak = chip.peak("bf16")
        self.wbytes = plan.weight_bytes
        eight_bit = self.gemm_precision in ("fp8", "int8", "fp4")
        self.abytes = 1.0 if eight_bit else ACTIVATION_BYTES
        self.parts: dict[str, float] = {}
        self.flops = 0.0
        self.weight_bytes = 0.0
        self.kv_bytes = 0.0

    def total(self) -> float:
        return sum(self.parts.values())

    def _add(self, part: str, seconds: float) -> None:
        self.parts[part] = self.parts.get(part, 0.0) + seconds

    def gemm(
        self,
        part: str,
        m: float,
        n: float,
        k: float,
        count: float = 1.0,
        times: float = 1.0,
        kernel: str = "gemm",
    ) -> None:
        """`count` GEMMs (m x k) @ (k x n) (a grouped GEMM when count > 1), `times` layers."""
        if min(m, n, k, count) <= 0:
            return
        flops = 2.0 * m * n * k * count
        # The chip's efficiency at the GEMM precision (an FP8 GEMM takes "gemm_fp8" /
        # "grouped_gemm_fp8" where the chip gives them, as training does).
        efficiency = self.k.efficiency(kernel, self.gemm_precision)
        rate = self.gemm_peak * efficiency * shape_factor(m, k)
        weights = k * n * count * self.wbytes
        nbytes = weights + (m * k + m * n) * count * self.abytes
        memory = nbytes / (self.chip.hbm_bandwidth * self.k.efficiency("memory"))
        self._add(part, times * (max(flops / rate, memory) + KERNEL_OVERHEAD_S))
        self.flops += times * flops
        self.weight_bytes += times * weights

    def attention(
        self, part: str, flops: float, nbytes: float, kv: float, times: float, decode: bool
    ) -> None:
        if flops <= 0 and nbytes <= 0:
            return
        given = self.chip.kernel_efficiency.get("attention")
        default = DECODE_ATTENTION_COMPUTE if decode else self.k.efficiency("attention")
        compute_eff = given or default
        memory_eff = DECODE_ATTENTION_MEMORY if decode else self.k.efficiency("memory")
        compute = flops / (self.attention_peak * compute_eff)
        memory = nbytes / (self.chip.hbm_bandwidth * memory_eff)
        self._add(part, times * (max(compute, memory) + KERNEL_OVERHEAD_S))
        self.flops += times * flops
        self.kv_bytes += times * kv

    def memory(self, part: str, nbytes: float, times: float = 1.0) -> None:
        if nbytes > 0:
            self._add(part, times * self.k.memory(nbytes))


def shape_factor(m: float, k: float) -> float:
    """What a skinny GEMM keeps of the peak: the used rows of its MMA tiles and a short
    reduction (podsim.costs.kernels.K_HALF)."""
    rows = math.ceil(m / MMA_ROWS) * MMA_ROWS
    return (m / rows) * k / (k + K_HALF)


def kv_bytes_per_token(model: Model, plan: ServePlan, pool: Pool) -> float:
    """KV-cache bytes one token takes on one device (its stage's layers, its tp share; MLA's
    latent is not split over tp). MTP modules keep a cache too (one layer per depth)."""
    layers = model.layers / pool.pp + (model.mtp_depth if plan.mtp_depth else 0)
    if model.attention == "mla":
        width = model.kv_lora_rank + model.qk_rope_head_dim
    else:
        width = 2 * max(1.0, model.kv_heads / pool.tp) * model.head_dim
    return width * layers * plan.kv_bytes


def expected_experts_hit(slots: float, top_k: int, experts: int, tokens: float) -> float:
    """Expected distinct experts among `slots` hit by `tokens` tokens each choosing top_k of
    `experts`: slots x (1 - (1 - k/E)^tokens)."""
    if tokens <= 0:
        return 0.0
    return slots * (1.0 - (1.0 - top_k / experts) ** tokens)


def _layer_counts(model: Model, pool: Pool) -> tuple[float, float]:
    """(dense, MoE) layers on one pipeline stage (the average stage)."""
    moe = (model.layers - model.dense_layers) if model.is_moe_model else 0
    return (model.layers - moe) / pool.pp, moe / pool.pp


def _attention(
    c: _Costs,
    model: Model,
    pool: Pool,
    seqs: float,
    q: float,
    context: float,
    decode: bool,
    layers: float,
    plan: ServePlan,
) -> None:
    """Projections and the attention core of `layers` layers for `seqs` sequences of `q` new
    tokens each, attending to `context` keys on average."""
    t, tokens, h = pool.tp, seqs * q, model.hidden
    heads = model.heads / t
    for n_in, n_out in model.qkv_projections():
        c.gemm("attention_proj", tokens, n_out / t, n_in, times=layers)
    c.gemm("attention_proj", tokens, h, heads * model.v_dim, times=layers)
    if model.attention == "mla":
        latent = model.kv_lora_rank + model.qk_rope_head_dim
        kv_token = latent * plan.kv_bytes
        if decode:  # absorbed: scores over the latent + rope dims, values over the latent
            flops = 2.0 * tokens * context * heads * (latent + model.kv_lora_rank)
        else:
            flops = 2.0 * tokens * context * heads * (model.qk_head_dim + model.v_dim)
    else:
        kv_heads = max(1.0, model.kv_heads / t)
        kv_token = 2 * kv_heads * model.head_dim * plan.kv_bytes
        flops = 2.0 * tokens * context * heads * 2 * model.head_dim
    kv = seqs * context * kv_token
    io = tokens * heads * (model.qk_head_dim + model.v_dim) * 2 * ACTIVATION_BYTES
    c.attention("attention_core", flops, kv + io, kv, layers, decode)
    c.memory("norms", NORM_TRAFFIC * tokens * h * ACTIVATION_BYTES, layers)


def _mlp(
    c: _Costs, model: Model, tokens: float, width: float, tp: int, part: str, layers: float
) -> None:
    h = model.hidden
    matrices = 2 if model.mlp == "swiglu" else 1
    c.gemm(part, tokens, matrices * width / tp, h, times=layers)
    c.gemm(part, tokens, h, width / tp, times=layers)
    c.memory(part, (matrices + 1) * tokens * width / tp * ACTIVATION_BYTES, layers)


def _moe(
    c: _Costs, model: Model, plan: ServePlan, pool: Pool, tokens: float, layers: float
) -> None:
    """Router, the hit experts' grouped GEMMs on this rank, shared experts, permutation."""
    if layers <= 0:
        return
    h, fe, k = model.hidden, model.expert_ffn_hidden, model.top_k
    slots = model.experts + plan.redundant_experts
    local = slots / pool.ep
    group_tokens = tokens * pool.ep / pool.tp  # tokens of the EP group
    copies = tokens * k / pool.tp  # routed copies this rank computes
    hit = expected_experts_hit(local, k, slots, group_tokens)
    c.gemm("router", tokens / pool.tp, model.experts, h, times=layers)
    if hit > 0:
        per_expert = copies / hit
        matrices = 2 if model.mlp == "swiglu" else 1
        c.gemm("experts", per_expert, matrices * fe, h, hit, layers, "grouped_gemm")
        c.gemm("experts", per_expert, h, fe, hit, layers, "grouped_gemm")
        c.memory("experts", (matrices + 1) * copies * fe * ACTIVATION_BYTES, layers)
    if model.shared_experts:
        _mlp(c, model, tokens, model.shared_experts * fe, pool.tp, "shared_experts", layers)
    c.memory("permute", 4 * copies * h * ACTIVATION_BYTES, layers)


def _comms(
    model: Model,
    plan: ServePlan,
    pool: Pool,
    tokens: float,
    moe_layers: float,
    layers: float,
    decode: bool,
    ep_routing: tuple[float, float] | None = None,
) -> tuple[Comm, ...]:
    """`ep_routing`: (distinct ranks, distinct nodes) a token reaches in the EP group; without
    it, min(top_k, ep) ranks in one node."""
    out = []
    h = model.hidden
    if pool.tp > 1:
        out.append(
            Comm(
                "tp_all_reduce",
                "all-reduce",
                pool.tp,
                tokens * h * ACTIVATION_BYTES,
                round(2 * layers),
            )
        )
    if model.is_moe_model and pool.ep > 1 and moe_layers > 0:
        low_latency = decode and plan.ep_low_latency
        ranks, nodes = ep_routing or (float(min(model.top_k, pool.ep)), 1.0)
        copies = float(model.top_k) if low_latency else ranks
        fanout = max(copies / max(nodes, 1.0), 1.0)
        sent = tokens / pool.tp * copies
        fp8 = plan.weight_bytes <= 1.0
        dispatch_token = h * (1.0 + FP8_SCALE_BYTES) if fp8 else h * ACTIVATION_BYTES
        combine_token = h * ACTIVATION_BYTES
        n = round(moe_layers)
        out.append(
            Comm(
                "ep_dispatch",
                "all-to-all",
                pool.ep,
                sent * dispatch_token,
                n,
                dispatch_token,
                low_latency,
                fanout,
            )
        )
        out.append(
            Comm(
                "ep_combine",
                "all-to-all",
                pool.ep,
                sent * combine_token,
                n,
                combine_token,
                low_latency,
                fanout,
            )
        )
    return tuple(out)


def step_work(
    model: Model,
    plan: ServePlan,
    pool: Pool,
    chip: Chip,
    seqs: float,
    q: float,
    context: float,
    decode: bool,
    ep_routing: tuple[float, float] | None = None,
) -> StepWork:
    """One device's work in one step of `seqs` sequences on its attention rank, each with `q`
    new tokens attending to `context` keys on average (decode: q = 1 + MTP depth; prefill:
    the chunk, context = cached prefix + q / 2 for causal attention). `ep_routing`: see
    _comms."""
    c = _Costs(chip, plan)
    tokens = seqs * q
    dense, moe = _layer_counts(model, pool)
    layers = dense + moe
    _attention(c, model, pool, seqs, q, context, decode, layers, plan)
    attention_layer = c.total() / layers
    if dense:
        _mlp(c, model, tokens, model.ffn_hidden, pool.tp, "dense_mlp", dense)
    moe_layer_s = (0.0, 0.0)
    if moe:
        before = c.total()
        _moe(c, model, plan, pool, tokens, moe)
        router = c.parts.get("router", 0.0) / moe
        moe_layer_s = (attention_layer + router, (c.total() - before) / moe - router)
    # The head: every verified token at decode, the last token of each sequence at prefill.
    head_tokens = tokens if decode else seqs
    c.gemm("logits", head_tokens, model.vocab / pool.tp, model.hidden)
    if plan.mtp_depth and model.mtp_depth:
        _mtp(c, model, plan, pool, seqs, tokens, context, decode)
    comms = _comms(model, plan, pool, tokens, moe, layers, decode, ep_routing)
    return StepWork(
        compute_s=sum(c.parts.values()),
        parts=dict(c.parts),
        flops=c.flops,
        weight_bytes=c.weight_bytes,
        kv_bytes=c.kv_bytes,
        comms=comms,
        moe_layers=moe,
        moe_layer_s=moe_layer_s,
    )


def _mtp(
    c: _Costs,
    model: Model,
    plan: ServePlan,
    pool: Pool,
    seqs: float,
    tokens: float,
    context: float,
    decode: bool,
) -> None:
    """Drafting with the MTP module: per depth its 2h -> h projection, one (MoE) layer and the
    shared head, over one token per sequence at decode and the prompt at prefill."""
    drafts = plan.mtp_depth if decode else 1
    n = seqs if decode else tokens
    for _ in range(drafts):
        c.gemm("mtp", n, model.hidden, 2 * model.hidden)
        _attention(
            c,
            model,
            pool,
            n if decode else seqs,
            1 if decode else tokens / seqs,
            context,
            decode,
            1.0,
            plan,
        )
        if model.is_moe_model:
            _moe(c, model, plan, pool, n, 1.0)
        else:
            _mlp(c, model, n, model.ffn_hidden, pool.tp, "mtp", 1.0)
        c.gemm("mtp", seqs, model.vocab / pool.tp, model.hidden)


def decode_work(
    model: Model,
    plan: ServePlan,
    pool: Pool,
    chip: Chip,
    batch: float,
    context: float,
    ep_routing: tuple[float, float] | None = None,
) -> StepWork:
    """One decode step of `batch` sequences per attention rank with `context` KV each."""
    q = 1 + plan.mtp_depth
    return step_work(model, plan, pool, chip, batch, q, context, True, ep_routing)


def prefill_work(
    model: Model,
    plan: ServePlan,
    pool: Pool,
    chip: Chip,
    seqs: float,
    new_tokens: float,
    cached: float = 0.0,
    ep_routing: tuple[float, float] | None = None,
) -> StepWork:
    """A prefill step of `seqs` sequences per attention rank, each computing `new_tokens`
    after `cached` tokens already in the cache (prefix hits or earlier chunks)."""
    context = cached + new_tokens / 2
    return step_work(model, plan, pool, chip, seqs, new_tokens, context, False, ep_routing)


def prefill_flops(model: Model, tokens: float, context: float) -> float:
    """Closed form: 2 x active parameters (without embedding) x tokens plus attention, i.e.
    the model's forward FLOPs of the layers and the head, for checks."""
    return model.forward_flops(tokens, context, mtp=False)
