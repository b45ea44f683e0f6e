"""FLOPs of one training step (Narayanan et al. SC'21 eq. 3; Korthikanti et al. 2022)."""

from podsim.plans.training import Plan
from podsim.specs.models import Model


def flops_per_step(model: Model, plan: Plan) -> dict[str, float]:
    """FLOPs of one training step of the plan's global batch.

    model: 3 x forward (forward + backward = 2x forward), the MFU numerator.
    recompute: forward work done again: full = all transformer layers (not the logits),
    selective = the attention core only (Korthikanti et al. 2022), none = 0.
    hardware: model + recompute, the HFU numerator.
    """
    tokens = float(plan.global_batch) * plan.seq_len
    useful = 3.0 * model.forward_flops(tokens, plan.seq_len)
    recompute = recompute_flops(model, plan.recompute, tokens, plan.seq_len)
    return {"model": useful, "hardware": useful + recompute, "recompute": recompute}


def recompute_flops(model: Model, mode: str, tokens: float, seq_len: float) -> float:
    """Forward FLOPs done again under a recompute mode ("none", "selective", "full")."""
    if mode == "none":
        return 0.0
    per_kind = model.layers_forward_flops(tokens, seq_len)
    # The MTP block is a transformer layer too and is recomputed like the others.
    mtp = model.layer_forward_flops(model.layers - 1, tokens, seq_len)
    if mode == "selective":
        return per_kind["attention_core"] + model.mtp_depth * mtp["attention_core"]
    return sum(per_kind.values()) + model.mtp_depth * sum(mtp.values())
