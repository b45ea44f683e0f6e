"""Per-microbatch kernel times of one transformer layer on one rank, by pass.

Shapes follow Megatron-LM's tensor parallelism (column-parallel QKV and first MLP matrix,
row-parallel output and second matrix; sequence parallelism shards norms and dropout over tp),
FlashAttention-style fused attention (causal: half the score matrix is computed), and MoE
experts as grouped GEMMs over the experts an expert-parallel rank holds.
"""

from dataclasses import dataclass

from podsim.costs import moe as moe_costs
from podsim.costs.kernels import KernelModel

BACKWARD_GEMMS = 2.0  # data and weight gradients: two GEMMs of the forward's FLOPs
BACKWARD_ATTENTION = 2.5  # FlashAttention-2 backward: 5 matmuls against the forward's 2
BACKWARD_MEMORY = 2.0  # element-wise backward reads and writes about twice the forward


@dataclass(frozen=True)
class PassTimes:
    """Seconds of one microbatch through one layer, by kernel class."""

    gemm: float = 0.0
    attention: float = 0.0
    memory: float = 0.0

    @property
    def total(self) -> float:
        return self.gemm + self.attention + self.memory

    def scaled(self, gemm: float, attention: float, memory: float) -> "PassTimes":
        return PassTimes(self.gemm * gemm, self.attention * attention, self.memory * memory)

    def __add__(self, other: "PassTimes") -> "PassTimes":
        return PassTimes(
            self.gemm + other.gemm, self.attention + other.attention, self.memory + other.memory
        )


@dataclass(frozen=True)
class LayerShape:
    """What one rank computes of a layer: tokens and the tp / ep / cp split."""

    tokens: float  # tokens of the microbatch on this rank (micro_batch * seq_len / cp)
    seq_len: int  # keys each query attends to (the full sequence)
    tp: int
    ep: int
    sequence_parallel: bool
    etp: int = 0  # expert tensor parallelism; 0 = tp
    load_cv: float = 0.0  # spread of tokens per expert (podsim.costs.moe.routing)
    capacity_factor: float = 0.0  # 0 = dropless
    count_latency: float = 0.0  # one latency of the token-count exchange's all-to-all
    fp8_recipe: str = "blockwise"
    flash_attention: bool = True  # False: unfused attention (unfused_attention_core)

    @property
    def expert_tp(self) -> int:
        return self.etp or self.tp

    @property
    def moe_tokens(self) -> float:
        """Tokens entering an MoE layer on one rank: sequence parallelism splits them over tp."""
        return self.tokens / self.tp


def attention_forward(model, shape: LayerShape, k: KernelModel) -> PassTimes:
    t, T, h = shape.tp, shape.tokens, model.hidden
    heads = model.heads / t
    qk, v = model.qk_head_dim, model.v_dim
    if model.attention == "mla":
        gemm = k.gemm(T, model.q_lora_rank, h) if model.q_lora_rank else 0.0
        gemm += k.gemm(T, heads * qk, model.q_lora_rank or h)
        gemm += k.gemm(T, model.kv_lora_rank + model.qk_rope_head_dim, h)
        gemm += k.gemm(T, heads * (model.qk_nope_head_dim + v), model.kv_lora_rank)
    else:
        gemm = k.gemm(T, (model.heads + 2 * model.kv_heads) * qk / t, h)
    gemm += k.gemm(T, h, heads * v)
    if shape.flash_attention:  # causal attention computes half of the s x s scores
        core_flops = 2.0 * T * shape.seq_len * heads * (qk + v) * 0.5
        core_bytes = T * heads * (2 * qk + 2 * v) * k.activation_bytes
        core = k.attention(core_flops, core_bytes)
    else:
        core = unfused_attention_core(model, shape, k)
    norm_and_residual = 5 * T * h * k.activation_bytes / (t if shape.sequence_parallel else 1)
    norm_and_residual += quantize_bytes(k, shape, T * (h + heads * v))  # QKV and output inputs
    return PassTimes(gemm, core, k.memory(norm_and_residual))


# Unfused attention (Megatron-LM before FlashAttention; Korthikanti et al. 2022, section 4.1):
# the s x s scores of every head go through HBM. Bytes per score element in the forward, with
# 2-byte activations: QK^T writes it (2), the fused scale-mask-softmax reads and writes it
# (2 + 2), dropout reads and writes it (2 + 2) and writes a 1-byte mask, AV reads it (2).
UNFUSED_SCORE_PASSES = 6  # activation-sized reads and writes per score element
DROPOUT_MASK_BYTES = 1


def unfused_score_bytes(k: KernelModel) -> float:
    """HBM bytes per score element of the unfused forward (13 with 2-byte activations)."""
    return UNFUSED_SCORE_PASSES * k.activation_bytes + DROPOUT_MASK_BYTES


def unfused_attention_core(model, shape: LayerShape, k: KernelModel) -> float:
    """The unfused attention core of one layer's forward on one rank: QK^T and AV as batched
    GEMMs (one per head) over the whole s x s matrix (the causal mask is applied to it, not
    skipped), and the memory-bound passes over the scores. Its backward takes
    BACKWARD_ATTENTION times it, as the fused core's does."""
    T, s, heads = shape.tokens, shape.seq_len, model.heads / shape.tp
    qk = k.gemm(T, s, model.qk_head_dim, count=heads)
    av = k.gemm(T, model.v_dim, s, count=heads)
    return qk + av + k.memory(T * s * heads * unfused_score_bytes(k))


def dense_mlp_forward(model, shape: LayerShape, k: KernelModel, ffn: float) -> PassTimes:
    t, T, h = shape.tp, shape.tokens, model.hidden
    matrices = 2 if model.mlp == "swiglu" else 1  # gate and up projections fused
    gemm = k.gemm(T, matrices * ffn / t, h) + k.gemm(T, h, ffn / t)
    activation = (matrices + 1) * T * ffn / t * k.activation_bytes
    activation += quantize_bytes(k, shape, T * (h + ffn / t))  # inputs of both matrices
    return PassTimes(gemm=gemm, memory=k.memory(activation))


def moe_forward(model, shape: LayerShape, k: KernelModel) -> PassTimes:
    """Router, token-count exchange, permutation, the busiest rank's routed experts
    (podsim.costs.moe), and the shared experts (tensor-parallel like a dense MLP)."""
    route = moe_routing(model, shape)
    gemm_and_act = moe_costs.experts_forward(model, route, shape.expert_tp, k)
    dispatch = 1 if k.precision == "fp8" else k.activation_bytes
    permute = moe_costs.permute_bytes(route, model.hidden, dispatch, k.activation_bytes)
    router = moe_costs.router_forward(model, shape.moe_tokens, k)
    overhead = router + moe_costs.count_exchange(shape.count_latency) + k.memory(permute)
    shared = PassTimes()
    if model.shared_experts:
        width = model.shared_experts * model.expert_ffn_hidden
        shared = dense_mlp_forward(model, shape, k, width)
    quantize = quantize_bytes(k, shape, route.copies * model.hidden)  # expert inputs, FP8
    return PassTimes(gemm=gemm_and_act, memory=overhead + k.memory(quantize)) + shared


def moe_routing(model, shape: LayerShape) -> moe_costs.Routing:
    return moe_costs.routing(
        model,
        shape.moe_tokens,
        shape.ep,
        shape.expert_tp,
        shape.load_cv,
        shape.capacity_factor,
    )


# Bytes per element of a quantize kernel: read BF16, write FP8 (plus scales, 4 bytes per block).
# Per-tensor current scaling reads the tensor once more for its amax (Transformer Engine);
# blockwise (1 x 128 tiles, DeepSeek-V3) and MX (32-element blocks) quantize in one pass.
QUANTIZE_BYTES = {"per-tensor": 2 + 2 + 1, "blockwise": 2 + 1 + 4 / 128, "mx": 2 + 1 + 1 / 32}


def quantize_bytes(k: KernelModel, shape: LayerShape, elements: float) -> float:
    """Bytes that quantizing `elements` GEMM-input values to FP8 moves (0 unless FP8)."""
    if k.precision != "fp8":
        return 0.0
    return QUANTIZE_BYTES[shape.fp8_recipe] * elements


def layer_forward(model, layer: int, shape: LayerShape, k: KernelModel) -> PassTimes:
    mlp = (
        moe_forward(model, shape, k)
        if model.is_moe(layer)
        else dense_mlp_forward(model, shape, k, model.ffn_hidden)
    )
    norm_and_residual = 5 * shape.tokens * model.hidden * k.activation_bytes
    norm = k.memory(norm_and_residual / (shape.tp if shape.sequence_parallel else 1))
    return attention_forward(model, shape, k) + mlp + PassTimes(memory=norm)


def layer_backward(
    forward: PassTimes,
    attention_forward_s: float,
    recompute: str,
    selective: PassTimes | None = None,
) -> PassTimes:
    """Backward of one layer, plus what the recompute mode runs again first: full recompute
    repeats the whole forward; selective the attention core (Korthikanti et al. 2022), or
    the modules' kernels in `selective` when given (selective_recompute)."""
    backward = forward.scaled(BACKWARD_GEMMS, BACKWARD_ATTENTION, BACKWARD_MEMORY)
    if recompute == "full":
        return backward + forward
    if recompute == "selective":
        return backward + (selective or PassTimes(attention=attention_forward_s))
    return backward


def weight_gradient(model, layer: int, shape: LayerShape, k: KernelModel) -> float:
    """The weight-gradient GEMMs of one layer's backward (the W of a zero-bubble split): one
    per forward GEMM, of the same FLOPs (dW = X^T dY against Y = X W), timed as the forward's.
    The rest of layer_backward (input-gradient GEMMs, attention, element-wise) is the B part.
    The router's gating GEMM is left in B (podsim times it with the router's memory-bound
    kernels)."""
    gemm = attention_forward(model, shape, k).gemm
    if not model.is_moe(layer):
        return gemm + dense_mlp_forward(model, shape, k, model.ffn_hidden).gemm
    gemm += moe_costs.experts_gemms(model, moe_routing(model, shape), shape.expert_tp, k)
    if model.shared_experts:
        width = model.shared_experts * model.expert_ffn_hidden
        gemm += dense_mlp_forward(model, shape, k, width).gemm
    return gemm


def selective_recompute(
    model, layer: int, shape: LayerShape, k: KernelModel, modules: frozenset[str]
) -> PassTimes:
    """Forward kernels that selective recompute runs again, by Megatron-Core module name:
    core_attn, layernorm (both norms), mla_up_proj (MLA's query and key-value
    up-projections), moe_act (the experts' activation function), shared_experts, mlp."""
    t, T, h = shape.tp, shape.tokens, model.hidden
    out = PassTimes()
    if "core_attn" in modules:
        out += PassTimes(attention=attention_forward(model, shape, k).attention)
    if "layernorm" in modules:  # read the input, write the output, two norms
        out += PassTimes(memory=k.memory(4 * T * h * k.activation_bytes / t))
    if "mla_up_proj" in modules and model.attention == "mla":
        heads = model.heads / t
        up = k.gemm(T, heads * model.qk_head_dim, model.q_lora_rank) if model.q_lora_rank else 0
        up += k.gemm(T, heads * (model.qk_nope_head_dim + model.v_head_dim), model.kv_lora_rank)
        out += PassTimes(gemm=up)
    if model.is_moe(layer):
        if "moe_act" in modules:
            route, width = moe_routing(model, shape), model.expert_ffn_hidden / shape.expert_tp
            matrices = 2 if model.mlp == "swiglu" else 1
            nbytes = (matrices + 1) * route.copies * width * k.activation_bytes
            out += PassTimes(memory=k.memory(nbytes))
        if "shared_experts" in modules and model.shared_experts:
            width = model.shared_experts * model.expert_ffn_hidden
            out += dense_mlp_forward(model, shape, k, width)
    elif "mlp" in modules:
        out += dense_mlp_forward(model, shape, k, model.ffn_hidden)
    return out


def logits_forward(model, shape: LayerShape, k: KernelModel) -> PassTimes:
    """Output projection and cross-entropy (vocabulary split over tp)."""
    T, V = shape.tokens, model.vocab / shape.tp
    return PassTimes(gemm=k.gemm(T, V, model.hidden), memory=k.memory(3 * T * V * 4))


def embedding_forward(model, shape: LayerShape, k: KernelModel) -> PassTimes:
    return PassTimes(memory=k.memory(2 * shape.tokens * model.hidden * k.activation_bytes))
