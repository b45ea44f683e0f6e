"""Parallel plans: how a model's training step is split over the cluster, validated up front."""

from dataclasses import dataclass, fields
from typing import Any

from podsim.errors import SpecError, check

SCHEDULES = ("gpipe", "1f1b", "interleaved", "dualpipe")
RECOMPUTE = ("none", "selective", "full")
PRECISIONS = ("bf16", "fp16", "fp8")


@dataclass(frozen=True)
class Plan:
    """A training plan. Batch sizes count sequences; dp = devices / (tp * pp * cp).

    ep splits each MoE layer's experts over ep ranks taken from the dp x cp ranks of a stage
    (as Megatron and DeepSeek do); it does not multiply the device count.
    virtual_stages: model chunks per pipeline stage (interleaved schedule); 0 = "auto".
    """

    seq_len: int
    global_batch: int
    micro_batch: int = 1
    precision: str = "bf16"
    tp: int = 1
    pp: int = 1
    dp: int = 1
    ep: int = 1
    cp: int = 1
    zero: int = 0
    schedule: str = "1f1b"
    virtual_stages: int = 0
    recompute: str = "none"
    sequence_parallel: bool = True
    # Fused attention (FlashAttention) keeps no s x s scores: the compute model assumes it,
    # and so does memory unless this is False (Korthikanti et al.'s unfused kernels).
    flash_attention: bool = True
    tokens: float = 0.0  # for time-to-train; 0 = not asked

    def __post_init__(self) -> None:
        for name in ("seq_len", "global_batch", "micro_batch", "tp", "pp", "dp", "ep", "cp"):
            value = getattr(self, name)
            check(
                isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                f"train.{name}",
                value,
                "an integer >= 1",
            )
        check(self.zero in (0, 1, 2, 3), "train.zero", self.zero, "0, 1, 2 or 3")
        check(self.schedule in SCHEDULES, "train.schedule", self.schedule, " | ".join(SCHEDULES))
        check(self.recompute in RECOMPUTE, "train.recompute", self.recompute, " | ".join(RECOMPUTE))
        check(
            self.precision in PRECISIONS, "train.precision", self.precision, " | ".join(PRECISIONS)
        )
        check(
            isinstance(self.virtual_stages, int) and self.virtual_stages >= 0,
            "train.virtual_stages",
            self.virtual_stages,
            '"auto" or an integer >= 1',
        )
        check(self.tokens >= 0, "train.tokens", self.tokens, "a number >= 0")
        per_replica = self.global_batch / self.dp
        check(
            per_replica == int(per_replica),
            "train.global_batch",
            self.global_batch,
            f"a multiple of dp ({self.dp})",
        )
        check(
            int(per_replica) % self.micro_batch == 0,
            "train.micro_batch",
            self.micro_batch,
            f"a divisor of global_batch / dp ({int(per_replica)})",
        )
        check(
            self.seq_len % self.cp == 0,
            "train.cp",
            self.cp,
            f"a divisor of seq_len ({self.seq_len})",
        )
        if self.schedule == "dualpipe":
            check(self.pp % 2 == 0, "train.pp", self.pp, "even for the dualpipe schedule")

    @property
    def devices(self) -> int:
        return self.tp * self.pp * self.dp * self.cp

    @property
    def microbatches(self) -> int:
        """Microbatches per pipeline per step."""
        return self.global_batch // (self.dp * self.micro_batch)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def plan_from_table(table: dict[str, Any], devices: int) -> Plan:
    """A plan from a scenario's [train] table; dp defaults to devices / (tp * pp * cp)."""
    values = dict(table)
    known = {f.name for f in fields(Plan)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SpecError(f"train: unknown key(s) {unknown}; allowed: {sorted(known)}")
    for required in ("seq_len", "global_batch"):
        if required not in values:
            raise SpecError(f"train.{required} is missing")
    if values.get("virtual_stages") == "auto":
        values["virtual_stages"] = 0
    if "tokens" in values:
        tokens = values["tokens"]
        check(
            isinstance(tokens, int | float) and not isinstance(tokens, bool),
            "train.tokens",
            tokens,
            "a number of tokens",
        )
        values["tokens"] = float(tokens)
    if "dp" not in values:
        Plan(**{**values, "dp": 1, "global_batch": 1, "micro_batch": 1})  # checks the types
        split = values.get("tp", 1) * values.get("pp", 1) * values.get("cp", 1)
        check(
            devices % split == 0,
            "train.tp * pp * cp",
            split,
            f"a divisor of cluster.devices ({devices})",
        )
        values["dp"] = devices // split
    plan = Plan(**values)
    check(
        plan.devices == devices,
        "train.tp * pp * dp * cp",
        plan.devices,
        f"equal to cluster.devices ({devices})",
    )
    return plan


def check_plan(model, plan: Plan, cluster) -> None:
    """Rejects plans that cannot run, saying why."""
    check(
        plan.devices == cluster.devices,
        "train.tp * pp * dp * cp",
        plan.devices,
        f"equal to cluster.devices ({cluster.devices})",
    )
    check(
        model.heads % plan.tp == 0,
        "train.tp",
        plan.tp,
        f"a divisor of the model's heads ({model.heads})",
    )
    if model.experts:
        check(
            model.experts % plan.ep == 0,
            "train.ep",
            plan.ep,
            f"a divisor of the model's experts ({model.experts})",
        )
    else:
        check(plan.ep == 1, "train.ep", plan.ep, "1 for a dense model")
    check(
        (plan.dp * plan.cp) % plan.ep == 0,
        "train.ep",
        plan.ep,
        f"a divisor of dp * cp ({plan.dp * plan.cp}): experts are split over those ranks",
    )
    check(
        plan.schedule != "interleaved" or plan.virtual_stages <= 1 or plan.pp >= 3,
        "train.virtual_stages",
        plan.virtual_stages,
        "1 when pp < 3",
    )
