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


# Unfused attention as Megatron-LM ran it in 2021-22 (SC'21; Korthikanti et al. 2022), read
# from NVIDIA/Megatron-LM megatron/model/transformer.py (CoreAttention / ParallelAttention) and
# megatron/model/fused_softmax.py with its CUDA kernel scaled_upper_triang_masked_softmax.h:
#   forward:  torch.baddbmm(beta=0) writes the s x s scores; the fused causal scale-mask-softmax
#             (ScaledUpperTriangMaskedSoftmax) reads the lower triangle of each row and writes
#             the whole row; torch dropout (_fused_dropout) reads the probabilities and writes
#             them and a 1-byte mask; torch.bmm reads them.
#   backward: bmm's backward writes dP (dC V^T) and reads P (P^T dC); dropout's backward
#             (_masked_scale) reads dP and the mask and writes its gradient; the softmax
#             backward reads the lower triangle of that gradient and of the saved probabilities
#             and writes the whole row (in place); baddbmm's backward reads dS twice (dS K and
#             dS^T Q).
# The batched GEMMs' own reads and writes of the scores are in their roofline (KernelModel.gemm
# counts m x n outputs and m x k inputs), so only the softmax and dropout kernels are counted
# here: activation-sized passes per score element (a causal half-row read is half a pass).
UNFUSED_FORWARD_PASSES = 0.5 + 1 + 1 + 1  # softmax read (causal half), write; dropout read, write
UNFUSED_BACKWARD_PASSES = 1 + 1 + 0.5 + 0.5 + 1  # dropout read, write; softmax 2 half reads, write
DROPOUT_MASK_BYTES = 1  # written in the forward, read in the backward


def unfused_score_bytes(k: KernelModel, passes: float = UNFUSED_FORWARD_PASSES) -> float:
    """HBM bytes per score element of the unfused softmax and dropout kernels in one pass
    (8 in the forward, 9 in the backward with 2-byte activations)."""
    return passes * k.activation_bytes + DROPOUT_MASK_BYTES


def unfused_attention_core(model, shape: LayerShape, k: KernelModel) -> float:
    """The unfused attention core of one layer's forward on one rank: QK^T and AV as batched
    GEMMs (one per head) over the whole s x s matrix (the causal mask is applied to it, not
    skipped), and the softmax and dropout passes over the scores."""
    T, s, heads = shape.tokens, shape.seq_len, model.heads / shape.tp
    qk = k.gemm(T, s, model.qk_head_dim, count=heads)
    av = k.gemm(T, model.v_dim, s, count=heads)
    return qk + av + k.memory(T * s * heads * unfused_score_bytes(k))


def unfused_attention_backward(model, shape: LayerShape, k: KernelModel) -> float:
    """Its backward: the four batched GEMMs of the gradients (dP = dC V^T, dV = P^T dC,
    dQ = dS K, dK = dS^T Q) and the dropout and softmax backward passes over the scores."""
    T, s, heads = shape.tokens, shape.seq_len, model.heads / shape.tp
    qk, v = model.qk_head_dim, model.v_dim
    gemms = k.gemm(T, s, v, count=heads) + k.gemm(s, v, T, count=heads)
    gemms += k.gemm(T, qk, s, count=heads) + k.gemm(s, qk, T, count=heads)
    return gemms + k.memory(T * s * heads * unfused_score_bytes(k, UNFUSED_BACKWARD_PASSES))


def attention_backward(model, shape: LayerShape, k: KernelModel, forward_core: float) -> float:
    """The attention core's backward given its forward time: BACKWARD_ATTENTION times it
    when fused, the unfused kernels' own backward otherwise."""
    if shape.flash_attention:
        return forward_core * BACKWARD_ATTENTION
    return unfused_attention_backward(model, shape, k)


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
    attention_backward_s: float | None = None,
) -> PassTimes:
    """Backward of one layer, plus what the recompute mode runs again first: full recompute
    repeats the whole forward; selective the attention core (Korthikanti et al. 2022), or
    the modules' kernels in `selective` when given (selective_recompute). The attention
    core's backward is `attention_backward_s` when given (attention_backward), else
    BACKWARD_ATTENTION times its forward."""
    backward = forward.scaled(BACKWARD_GEMMS, BACKWARD_ATTENTION, BACKWARD_MEMORY)
    if attention_backward_s is not None:
        backward = PassTimes(backward.gemm, attention_backward_s, backward.memory)
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
