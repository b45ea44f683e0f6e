"""Memory per device for a training plan: weights, gradients, optimizer states, activations.

Model states follow Rajbhandari et al., "ZeRO" (SC'20), Section 3.1: mixed-precision Adam
keeps 2-byte weights and 2-byte gradients plus K = 12 bytes per parameter of fp32 master
weights, momentum and variance. ZeRO-1 shards the optimizer states over the data-parallel
ranks, ZeRO-2 the gradients too, ZeRO-3 the weights too. fp8 training is counted like bf16:
Transformer Engine and DeepSpeed keep bf16 weights (casting to fp8 per GEMM; the transient
fp8 copy is not counted) and fp32 master weights and Adam moments, and DeepSeek-V3 keeps
master weights, gradients and optimizer states in higher precision too.

Parameters per device: the stage's non-expert parameters / tp (the embedding is
vocabulary-parallel, norms are counted as split too, a negligible error) plus its routed
expert parameters / ep (experts are split by expert parallelism, not tensor parallelism).
The data-parallel group that ZeRO shards over is dp x cp for non-expert parameters (context-
parallel ranks hold the same weights, as in Megatron's distributed optimizer) and
dp x cp / ep for expert parameters.

Activations follow Korthikanti et al. 2022, "Reducing Activation Recomputation in Large
Transformer Models", Section 4 and Table 2, bytes per layer and microbatch (16-bit values,
1-byte dropout masks): sbh(34 + 5as/h) without parallelism; sbh/t (34 + 5as/h) with tensor
and sequence parallelism; sbh(10 + 24/t + 5as/(ht)) with tensor parallelism alone;
selective recomputation drops the 5as/h term; full recomputation keeps only the layer input,
2sbh (2sbh/t with sequence parallelism). Context parallelism divides s by cp.

The 34 splits into terms that scale with the model's widths, so other shapes are covered:
10 hidden-wide terms that tensor parallelism alone does not split (two norm inputs 4, two
dropout masks 2, attention input 2, MLP input 2); attention 2(q + k + v + o)/h, which is 8
for MHA (GQA stores narrower keys and values; MLA stores its up-projected heads plus the
two latent vectors); MLP 4f/h for GeLU (input and output of the activation, 16 for f = 4h)
and 6f/h for SwiGLU (gate and up outputs, and their product). An MoE layer stores, for
each of the top_k routed copies of a token, its input (2 per copy) and its expert MLP terms,
plus the shared experts' MLP terms; the tokens a device's experts receive are assumed
balanced, so ep does not change the count, and MoE layers are assumed to run with tokens
split over tp (Megatron requires sequence parallelism for MoE with tp). These width
scalings are an approximation; so is keeping Korthikanti's dropout masks for models that
train without dropout. Flash attention does not store the 5as^2b scores: for memory it
behaves like "selective".

Pipelines: a stage keeps the activations of the microbatches it has started but not yet
finished backward. 1F1B: stage i holds pp - i; interleaved with v chunks per stage: stage i
holds 2(pp - i - 1) + (v - 1)pp + 1 chunk activations, which for the first stage is
pp(1 + (pp - 1)/(pp v)) stage-equivalents (Korthikanti Section 4.2.3); GPipe: all
microbatches; DualPipe (DeepSeek-V3 Table 2): each device holds two mirrored stages (twice
the parameters) and pp + 1 stage-equivalents of activations. All are capped at the number
of microbatches. Interleaving changes which layers a device holds, not how many: the
contiguous split of layers over stages gives the layer mix in every schedule. Extras beyond
the layers (Korthikanti Section 4.3): the first stage's embedding dropout mask (sbh/t,
1 byte) per in-flight microbatch; the last stage's final norm and output-head input
(4sbh/t) and fp32 logits (4sbv/t).
"""

from dataclasses import dataclass, fields, replace
from typing import Any

from podsim.errors import check
from podsim.plans.training import Plan
from podsim.specs.models import Model

# Bytes per parameter: 16-bit weights, 16-bit gradients, 12 bytes of fp32 Adam states
# (master weights, momentum, variance; Rajbhandari et al. K = 12). fp8 keeps bf16 weights.
STATE_BYTES = {
    "bf16": (2.0, 2.0, 12.0),
    "fp16": (2.0, 2.0, 12.0),
    "fp8": (2.0, 2.0, 12.0),
}
ACTIVATION_BYTES = 2.0  # 16-bit activations, as Korthikanti et al. assume
MASK_BYTES = 1.0  # dropout masks
LOGIT_BYTES = 4.0  # fp32 logits for the cross-entropy loss


@dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes on one device: model states and activations; stage is the pipeline stage."""

    weights: float
    gradients: float
    optimizer: float
    activations: float
    stage: int = 0
    in_flight: float = 1.0  # microbatches whose activations the stage holds (stage-equivalents)

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations

    def fits(self, capacity_bytes: float) -> bool:
        """Whether the device's memory holds it all and the reserve (reserve_bytes)."""
        return self.total + reserve_bytes(capacity_bytes) <= capacity_bytes

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["total"] = self.total
        return out


# What a device's memory loses before tensors: the CUDA context and library workspaces
# (cuBLAS, cuDNN), communicator buffers (NCCL: NCCL_BUFFSIZE 4 MiB per channel and peer), and
# the caching allocator's fragmentation. ESTIMATES: 1 GB context, 1 GB communicators, 3% of
# the capacity lost to fragmentation (PyTorch's expandable segments keep it to a few percent).
RESERVE_FIXED_BYTES = 2e9
RESERVE_FRACTION = 0.03


def reserve_bytes(capacity_bytes: float) -> float:
    """Memory a device of this capacity cannot give to tensors (ESTIMATE, see above)."""
    return RESERVE_FIXED_BYTES + RESERVE_FRACTION * capacity_bytes


# --- activations --------------------------------------------------------------------------


def activation_bytes_per_layer(model: Model, plan: Plan, layer: int = 0) -> float:
    """Activation bytes one layer keeps for one microbatch until its backward pass."""
    s = plan.seq_len / plan.cp
    sbh = s * plan.micro_batch * model.hidden
    t = plan.tp
    if plan.recompute == "full":  # only the layer input is kept
        return ACTIVATION_BYTES * sbh / (t if plan.sequence_parallel else 1)
    modules = plan.recompute_set(model)
    width = _attention_width(model, plan, modules) + _mlp_width(model, layer, plan, modules)
    kept = 10 - (4 if "layernorm" in modules else 0)  # recomputed norms: their outputs go
    kept -= 0 if model.dropout else 2  # no dropout masks
    hidden_terms = sbh * (kept + width) / t if plan.sequence_parallel else sbh * (kept + width / t)
    if plan.recompute == "selective" or plan.flash_attention:  # no s x s scores are kept
        return hidden_terms
    # softmax output (2), its dropout mask (1) and dropout output (2): 5 a s^2 b / t
    scores = 5 * model.heads * s * s * plan.micro_batch / t
    return hidden_terms + scores


def _fp8_cached(plan: Plan) -> bool:
    """FP8 training keeps GEMM inputs for backward in FP8 (Transformer Engine saves the cast
    input; DeepSeek-V3 section 3.3.2 caches expert and SwiGLU inputs in FP8)."""
    return plan.precision == "fp8"


def _attention_width(model: Model, plan: Plan, modules: frozenset[str]) -> float:
    """Attention terms in units of sbh: 2 bytes x (q + k + v + output-projection input) / h.
    MLA with recomputed up-projections keeps the latents (query, key-value and rotary key)
    and the attention output; FP8 keeps that output in 1.5 bytes (DeepSeek-V3's E5M6, section
    3.3.2), since the attention's backward needs it too."""
    heads = model.heads
    if model.attention == "mla" and "mla_up_proj" in modules:
        latents = ACTIVATION_BYTES * (
            model.q_lora_rank + model.kv_lora_rank + model.qk_rope_head_dim
        )
        output = (1.5 if _fp8_cached(plan) else ACTIVATION_BYTES) * heads * model.v_dim
        return (latents + output) / model.hidden
    if model.attention == "mla":
        widths = 2 * heads * (model.qk_head_dim + model.v_dim)
        widths += model.q_lora_rank + model.kv_lora_rank  # inputs of the up-projections
    else:
        kv = model.kv_heads * model.head_dim
        widths = 2 * heads * model.head_dim + 2 * kv
    return ACTIVATION_BYTES * widths / model.hidden


def _mlp_width(model: Model, layer: int, plan: Plan, modules: frozenset[str]) -> float:
    """MLP terms in units of sbh (GeLU 4f/h, SwiGLU 6f/h; MoE per routed copy: its input, the
    activation's input and output, the first in FP8 when FP8 caches them, the output not
    when moe_act is recomputed)."""
    if not model.is_moe(layer):
        return _ffn_width(model, model.ffn_hidden)
    expert = model.expert_ffn_hidden
    if not (_fp8_cached(plan) or "moe_act" in modules or "shared_experts" in modules):
        copies = model.top_k + model.shared_experts
        routed_inputs = ACTIVATION_BYTES * model.top_k  # each routed copy of a token's input
        return copies * _ffn_width(model, expert) + routed_inputs
    cached = 1.0 if _fp8_cached(plan) else ACTIVATION_BYTES
    matrices = 2 if model.mlp == "swiglu" else 1
    act_out = 0.0 if "moe_act" in modules else ACTIVATION_BYTES
    per_copy = (matrices * cached + act_out) * expert / model.hidden
    routed = model.top_k * (per_copy + cached)  # and each routed copy's input
    shared = 0.0 if "shared_experts" in modules else model.shared_experts * per_copy
    return routed + shared


def _ffn_width(model: Model, width: int) -> float:
    tensors = 3 if model.mlp == "swiglu" else 2
    return ACTIVATION_BYTES * tensors * width / model.hidden


def in_flight_microbatches(plan: Plan, stage: int = 0) -> float:
    """Microbatches whose activations pipeline stage `stage` holds at its peak, in units of
    the stage's whole layer set (interleaved chunks are converted)."""
    pp, m = plan.pp, plan.microbatches
    check(0 <= stage < pp, "stage", stage, f"in [0, {pp - 1}]")
    if pp == 1:  # gradient accumulation runs microbatches one after another
        return 1.0
    if plan.schedule == "gpipe":
        return float(m)
    if plan.schedule == "dualpipe":  # per mirrored stage: (pp + 1) / 2 of each of the two
        return min((pp + 1) / 2, float(m))
    v = _chunks(plan)
    if v == 1:
        return float(min(pp - stage, m))
    chunks = 2 * (pp - stage - 1) + (v - 1) * pp + 1
    return min(chunks, m * v) / v


def _chunks(plan: Plan) -> int:
    """Model chunks per stage. "auto" (0) under interleaving is taken as 2, the smallest real
    interleaving and so the most memory; a planner that picks v resolves it first."""
    if plan.schedule != "interleaved":
        return 1
    return plan.virtual_stages or 2


# --- pipeline stages ----------------------------------------------------------------------


def stage_layer_counts(model: Model, plan: Plan, stage_layers: int | None = None) -> list[int]:
    """Layers per pipeline stage. stage_layers sets the first stage's count (e.g. fewer, to
    leave room for the embedding); the rest are split evenly, any remainder going to the
    last stages."""
    pp, layers = plan.pp, model.layers
    if stage_layers is None:
        return _even(layers, pp)
    allowed = f"an integer in [0, layers = {layers}]" if pp > 1 else f"layers = {layers}"
    ok = isinstance(stage_layers, int) and 0 <= stage_layers <= layers
    check(ok and (pp > 1 or stage_layers == layers), "stage_layers", stage_layers, allowed)
    return [stage_layers, *_even(layers - stage_layers, pp - 1)] if pp > 1 else [layers]


def _even(layers: int, stages: int) -> list[int]:
    base, extra = divmod(layers, stages)
    return [base + (1 if i >= stages - extra else 0) for i in range(stages)]


def _stage_ranges(counts: list[int]) -> list[range]:
    starts = [sum(counts[:i]) for i in range(len(counts))]
    return [range(start, start + n) for start, n in zip(starts, counts, strict=True)]


def _held_stages(plan: Plan, stage: int) -> list[int]:
    """Stages whose layers a device of pipeline rank `stage` holds (DualPipe: two)."""
    mirror = plan.pp - 1 - stage
    if plan.schedule == "dualpipe" and mirror != stage:
        return [stage, mirror]
    return [stage]


def _moe_flags(model: Model) -> tuple[bool, ...]:
    """Whether each layer is an MoE layer, once per model object (see _layer_param_table)."""
    flags = model.__dict__.get("_moe_flags")
    if flags is None:
        flags = tuple(model.is_moe(i) for i in range(model.layers))
        model.__dict__["_moe_flags"] = flags
    return flags


def _layer_param_table(model: Model) -> tuple[tuple[int, int], ...]:
    """(routed expert, all) parameters of each layer, computed once per model object (kept on
    it, as it is immutable): a planner asks for thousands of plans of one model."""
    table = model.__dict__.get("_layer_param_table")
    if table is None:
        table = tuple((model.expert_params(i), model.layer_params(i)) for i in range(model.layers))
        model.__dict__["_layer_param_table"] = table
    return table


def _device_params(
    model: Model, plan: Plan, stages: list[int], ranges: list[range]
) -> tuple[int, int]:
    """(non-expert, expert) parameters of the stages a device holds, before any split."""
    dense = expert = 0
    table = _layer_param_table(model)
    for layer in (i for s in stages for i in ranges[s]):
        routed, whole = table[layer]
        dense += whole - routed
        expert += routed
    first, last = 0 in stages, plan.pp - 1 in stages
    if first:
        dense += model.embedding_params()
    if last:
        # A tied head still needs a copy on the last stage when it is not the first one.
        head = model.vocab * model.hidden if model.tied_embeddings and not first else 0
        dense += model.output_params() + head + model.final_norm_params()
        if model.mtp_depth:  # DeepSeek places the MTP module after the last stage
            mtp_experts = model.mtp_depth * model.expert_params(model.layers - 1)
            dense += model.mtp_params() - mtp_experts
            expert += mtp_experts
    return dense, expert


def _model_states(model: Model, plan: Plan, dense: int, expert: int) -> tuple[float, float, float]:
    """(weights, gradients, optimizer) bytes after tp/ep splits and ZeRO sharding."""
    w_bytes, g_bytes, o_bytes = STATE_BYTES[plan.precision]
    o_bytes += 2 * (plan.moment_bytes - 4)  # BF16 moments (DeepSeek-V3) save 2 x 2 bytes
    dense_dp = plan.dp * plan.cp
    parts = ((dense / plan.tp, dense_dp), (expert / (plan.expert_tp * plan.ep), plan.expert_dp))
    zero = plan.zero

    def sharded(nbytes: float, from_stage: int) -> float:
        return sum(nbytes * psi / (n if zero >= from_stage else 1) for psi, n in parts)

    return sharded(w_bytes, 3), sharded(g_bytes, 2), sharded(o_bytes, 1)


def _held_microbatches(plan: Plan, stage: int, position: int) -> float:
    """Microbatches whose activations a device of pipeline rank `stage` keeps for the layers
    of model stage `position`. DualPipe: position q holds pp - q of its direction's m / 2, in
    both directions (so a device holds pp + 1 in all, DeepSeek-V3 Table 2)."""
    if plan.schedule == "dualpipe" and plan.pp > 1:
        return float(min(plan.pp - position, max(plan.microbatches // 2, 1)))
    return in_flight_microbatches(plan, stage)


def _activations(
    model: Model,
    plan: Plan,
    stage: int,
    stages: list[int],
    ranges: list[range],
    per_kind: dict[bool, float] | None = None,
) -> float:
    s = plan.seq_len / plan.cp
    sb = s * plan.micro_batch
    t_hidden = plan.tp if plan.sequence_parallel else 1
    total = 0.0
    for position in stages:
        held = _held_microbatches(plan, stage, position)
        layers = _layers_activations(model, plan, ranges[position], per_kind)
        total += held * layers
        if position == 0 and model.dropout:  # embedding dropout mask
            total += held * MASK_BYTES * sb * model.hidden / t_hidden
        if position == plan.pp - 1:
            total += held * _head_activations(model, plan, sb, t_hidden)
    return total + dispatch_buffers(model, plan)


def _layers_activations(
    model: Model, plan: Plan, layers: range, per_kind: dict[bool, float] | None = None
) -> float:
    """A slice of layers; with recompute_layers under full recompute (Megatron's block
    method) only the first that many are recomputed, the rest keep everything. `per_kind`
    caches a layer's bytes by whether it is an MoE layer (all that sets them apart)."""
    if plan.recompute != "full" or not plan.recompute_layers:
        if per_kind is None:
            return sum(activation_bytes_per_layer(model, plan, i) for i in layers)
        flags = _moe_flags(model)
        for i in layers:
            if flags[i] not in per_kind:
                per_kind[flags[i]] = activation_bytes_per_layer(model, plan, i)
        return sum(per_kind[flags[i]] for i in layers)
    kept = replace(plan, recompute="none")
    return sum(
        activation_bytes_per_layer(model, plan if n < plan.recompute_layers else kept, i)
        for n, i in enumerate(layers)
    )


def dispatch_buffers(model: Model, plan: Plan) -> float:
    """Receive buffers of the expert all-to-all, allocated once: one layer's routed copies
    (mean load x 1.25 headroom, an ESTIMATE) in the dispatch precision plus the combine's
    BF16; DualPipe overlaps two microbatches' all-to-alls, so it keeps two sets."""
    if not model.experts or plan.ep == 1:
        return 0.0
    tokens = plan.seq_len / plan.cp * plan.micro_batch / plan.tp
    copies = plan.expert_tp * tokens * model.top_k * 1.25
    dispatch = 1.0 if plan.precision == "fp8" else ACTIVATION_BYTES
    sets = 2 if plan.schedule == "dualpipe" else 1
    return sets * copies * model.hidden * (dispatch + ACTIVATION_BYTES)


def _head_activations(model: Model, plan: Plan, sb: float, t_hidden: int) -> float:
    """Final norm and head input (4sbh/t) and fp32 logits (4sbv/t, vocabulary-parallel);
    each MTP depth adds its layer and another head."""
    head = 2 * ACTIVATION_BYTES * sb * model.hidden / t_hidden
    head += LOGIT_BYTES * sb * model.vocab / plan.tp
    mtp_layer = activation_bytes_per_layer(model, plan, model.layers - 1)
    return head + model.mtp_depth * (mtp_layer + head)


def memory_per_stage(
    model: Model, plan: Plan, stage_layers: int | None = None, counts: list[int] | None = None
) -> tuple[MemoryBreakdown, ...]:
    """Memory of one device of each pipeline stage (devices of a stage are alike); counts
    gives every stage's layers (as the lowering splits them) instead of stage_layers."""
    ranges = _stage_ranges(counts or stage_layer_counts(model, plan, stage_layers))
    out = []
    per_kind: dict[bool, float] = {}  # a layer's activation bytes, the same at every stage
    for stage in range(plan.pp):
        stages = _held_stages(plan, stage)
        dense, expert = _device_params(model, plan, stages, ranges)
        weights, grads, optimizer = _model_states(model, plan, dense, expert)
        activations = _activations(model, plan, stage, stages, ranges, per_kind)
        held = in_flight_microbatches(plan, stage)
        out.append(MemoryBreakdown(weights, grads, optimizer, activations, stage, held))
    return tuple(out)


def memory_per_device(
    model: Model, plan: Plan, stage_layers: int | None = None, counts: list[int] | None = None
) -> MemoryBreakdown:
    """Memory of a device of the most loaded pipeline stage: usually the first, which holds
    the embedding and the most in-flight microbatches; for an MoE model whose first layers
    are dense, or a GPipe schedule, another stage can hold more, so all are compared."""
    stages = memory_per_stage(model, plan, stage_layers, counts)
    return max(stages, key=lambda m: (m.total, -m.stage))
