"""Serving memory per device: weights + KV cache + activations + a reserve, and the largest
batch that fits.

* Weights: a stage's non-expert parameters (attention, dense MLPs, shared experts, router,
  norms) / tp at the plan's weight precision, its routed expert slots ((experts + redundant) /
  ep per MoE layer) at the same precision, the embedding and output head in 16 bits / tp
  (quantized deployments keep them in BF16), the MTP modules when the plan drafts with them.
* KV cache: podsim.costs.serving.kv_bytes_per_token per token, in whole paged blocks.
* Activations: the transient buffers of one step: about 16 hidden-wide 16-bit values per token
  in flight, the routed copies' dispatch and combine buffers, and FP32 logits of the tokens
  that reach the head. An ESTIMATE (frameworks profile this at start-up).
* Reserve: `memory_reserve` of HBM (vLLM's gpu_memory_utilization = 0.9 leaves 0.1) for the
  runtime, CUDA graphs and fragmentation.
"""

from dataclasses import dataclass

from podsim.costs.serving import kv_bytes_per_token
from podsim.plans.serving import Pool, ServePlan
from podsim.specs.chips import Chip
from podsim.specs.models import Model

EMBEDDING_BYTES = 2.0
HIDDEN_VALUES_PER_TOKEN = 16.0
LOGIT_BYTES = 4.0


@dataclass(frozen=True)
class ServeMemory:
    """Bytes on one device."""

    weights: float
    kv_cache: float
    activations: float
    reserve: float
    capacity: float

    @property
    def total(self) -> float:
        return self.weights + self.kv_cache + self.activations + self.reserve

    @property
    def fits(self) -> bool:
        return self.total <= self.capacity

    def to_dict(self) -> dict[str, float | bool]:
        return {
            "weights_bytes": self.weights,
            "kv_cache_bytes": self.kv_cache,
            "activations_bytes": self.activations,
            "reserve_bytes": self.reserve,
            "total_bytes": self.total,
            "capacity_bytes": self.capacity,
            "fits_in_memory": self.fits,
        }


def weight_bytes(model: Model, plan: ServePlan, pool: Pool) -> float:
    """Weights on one device of a stage (the average stage)."""
    w = plan.weight_bytes
    moe_layers = (model.layers - model.dense_layers) if model.is_moe_model else 0
    routed_per_layer = model.expert_params(model.layers - 1) if moe_layers else 0
    slots = model.experts + plan.redundant_experts if moe_layers else 0
    per_slot = routed_per_layer / model.experts if moe_layers else 0
    layer_params = sum(model.layer_params(i) for i in range(model.layers))
    non_expert = layer_params - moe_layers * routed_per_layer
    routed = moe_layers * slots * per_slot / pool.ep
    mtp = 0.0
    if plan.mtp_depth and model.mtp_depth:
        mtp_routed = model.mtp_depth * slots * per_slot / pool.ep
        mtp = (model.mtp_params() - model.mtp_depth * routed_per_layer) / pool.tp + mtp_routed
    head = (model.embedding_params() + model.output_params()) * EMBEDDING_BYTES / pool.tp
    return (non_expert / pool.tp + routed + mtp) * w / pool.pp + head


def activation_bytes(
    model: Model, plan: ServePlan, pool: Pool, tokens: float, head_tokens: float
) -> float:
    """Transient buffers of a step with `tokens` tokens on an attention rank, `head_tokens` of
    which reach the output head."""
    h = model.hidden
    per_token = HIDDEN_VALUES_PER_TOKEN * h * 2.0
    routed = 0.0
    if model.is_moe_model:
        routed = tokens * model.top_k / pool.tp * h * (1.0 + 2.0) * 2  # dispatch + combine, x2
    logits = head_tokens * model.vocab / pool.tp * LOGIT_BYTES
    return tokens * per_token + routed + logits


def blocks(tokens: float, block: int) -> float:
    """Tokens rounded up to whole paged blocks."""
    return -(-tokens // block) * block


def serve_memory(
    model: Model,
    plan: ServePlan,
    pool: Pool,
    chip: Chip,
    batch: float,
    kv_tokens: float,
    step_tokens: float,
    head_tokens: float,
) -> ServeMemory:
    """Memory of one device holding `batch` sequences of `kv_tokens` cached tokens each, with
    steps of `step_tokens` tokens (`head_tokens` of them through the head)."""
    per_seq = blocks(kv_tokens, plan.kv_block_tokens)
    kv = batch * per_seq * kv_bytes_per_token(model, plan, pool)
    return ServeMemory(
        weights=weight_bytes(model, plan, pool),
        kv_cache=kv,
        activations=activation_bytes(model, plan, pool, step_tokens, head_tokens),
        reserve=plan.memory_reserve * chip.hbm_bytes,
        capacity=chip.hbm_bytes,
    )


def kv_capacity_tokens(
    model: Model, plan: ServePlan, pool: Pool, chip: Chip, step_tokens: float, head_tokens: float
) -> float:
    """KV tokens one device can hold after weights, a step's activations and the reserve."""
    free = chip.hbm_bytes * (1.0 - plan.memory_reserve) - weight_bytes(model, plan, pool)
    free -= activation_bytes(model, plan, pool, step_tokens, head_tokens)
    return max(0.0, free / kv_bytes_per_token(model, plan, pool))


def max_batch(
    model: Model, plan: ServePlan, pool: Pool, chip: Chip, kv_tokens: float, q: float = 1.0
) -> int:
    """The most sequences of `kv_tokens` cached tokens one attention rank holds (decode steps
    of q tokens per sequence); 0 when not even one fits."""
    per_seq_kv = blocks(kv_tokens, plan.kv_block_tokens) * kv_bytes_per_token(model, plan, pool)
    per_seq_act = activation_bytes(model, plan, pool, q, q)
    free = chip.hbm_bytes * (1.0 - plan.memory_reserve) - weight_bytes(model, plan, pool)
    if free <= 0:
        return 0
    return int(free // (per_seq_kv + per_seq_act))
