"""Per-microbatch kernel times of one transformer layer on one rank, by pass.

Shapes follow Megatron-LM's tensor parallelism (column-parallel QKV and first MLP matrix,
row-parallel output and second matrix; sequence parallelism shards norms and dropout over tp),
FlashAttention-style fused attention (causal: half the score matrix is computed), and MoE
experts as grouped GEMMs over the experts an expert-parallel rank holds.
"""

from dataclasses import dataclass

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
    # Causal attention computes half of the s x s scores: QK^T and AV.
    core_flops = 2.0 * T * shape.seq_len * heads * (qk + v) * 0.5
    core_bytes = T * heads * (2 * qk + 2 * v) * k.activation_bytes
    norm_and_residual = 5 * T * h * k.activation_bytes / (t if shape.sequence_parallel else 1)
    return PassTimes(gemm, k.attention(core_flops, core_bytes), k.memory(norm_and_residual))


def dense_mlp_forward(model, shape: LayerShape, k: KernelModel, ffn: float) -> PassTimes:
    t, T, h = shape.tp, shape.tokens, model.hidden
    matrices = 2 if model.mlp == "swiglu" else 1  # gate and up projections fused
    gemm = k.gemm(T, matrices * ffn / t, h) + k.gemm(T, h, ffn / t)
    activation = (matrices + 1) * T * ffn / t * k.activation_bytes
    return PassTimes(gemm=gemm, memory=k.memory(activation))


def moe_forward(model, shape: LayerShape, k: KernelModel) -> PassTimes:
    """Router, the routed experts this rank holds as grouped GEMMs, shared experts, and the
    permutation of tokens to and from expert order."""
    t, T, h, fe = shape.tp, shape.tokens, model.hidden, model.expert_ffn_hidden
    local_experts = model.experts / shape.ep
    per_expert = T * model.top_k / local_experts  # tokens each local expert receives
    matrices = 2 if model.mlp == "swiglu" else 1
    gemm = k.gemm(T, model.experts, h)
    gemm += k.gemm(per_expert, matrices * fe / t, h, "grouped_gemm", local_experts)
    gemm += k.gemm(per_expert, h, fe / t, "grouped_gemm", local_experts)
    shared = PassTimes()
    if model.shared_experts:
        shared = dense_mlp_forward(model, shape, k, model.shared_experts * fe)
    permute = 4 * T * model.top_k * h * k.activation_bytes
    return PassTimes(gemm=gemm) + shared + PassTimes(memory=k.memory(permute))


def layer_forward(model, layer: int, shape: LayerShape, k: KernelModel) -> PassTimes:
    mlp = (
        moe_forward(model, shape, k)
        if model.is_moe(layer)
        else dense_mlp_forward(model, shape, k, model.ffn_hidden)
    )
    norm_and_residual = 5 * shape.tokens * model.hidden * k.activation_bytes
    norm = k.memory(norm_and_residual / (shape.tp if shape.sequence_parallel else 1))
    return attention_forward(model, shape, k) + mlp + PassTimes(memory=norm)


def layer_backward(forward: PassTimes, attention_forward_s: float, recompute: str) -> PassTimes:
    """Backward of one layer, plus what the recompute mode runs again first: full recompute
    repeats the whole forward; selective only the attention core (Korthikanti et al. 2022)."""
    backward = forward.scaled(BACKWARD_GEMMS, BACKWARD_ATTENTION, BACKWARD_MEMORY)
    if recompute == "full":
        return backward + forward
    if recompute == "selective":
        return backward + PassTimes(attention=attention_forward_s)
    return backward


def logits_forward(model, shape: LayerShape, k: KernelModel) -> PassTimes:
    """Output projection and cross-entropy (vocabulary split over tp)."""
    T, V = shape.tokens, model.vocab / shape.tp
    return PassTimes(gemm=k.gemm(T, V, model.hidden), memory=k.memory(3 * T * V * 4))


def embedding_forward(model, shape: LayerShape, k: KernelModel) -> PassTimes:
    return PassTimes(memory=k.memory(2 * shape.tokens * model.hidden * k.activation_bytes))
