"""Parallel plans: how a model's training step is split over the cluster, validated up front."""

from dataclasses import dataclass, fields
from typing import Any

from podsim.errors import SpecError, check
from podsim.fields import Boolean, Choice, Integer, Number, Table, auto, check_all

SCHEDULES = ("gpipe", "1f1b", "interleaved", "dualpipe")
RECOMPUTE = ("none", "selective", "full")
PRECISIONS = ("bf16", "fp16", "fp8")
MAX_RANKS = 2**31 - 1  # any parallel degree: at most a cluster's devices
MAX_TOKENS = 1e18  # tokens to train (Llama 3 405B: 1.5e13)


def _degree(name: str, doc: str) -> Integer:
    return Integer(name, doc, 1, low=1, high=MAX_RANKS)


TRAIN_FIELDS = Table(
    "train",
    "the training plan: batch, parallelism, schedule, precision",
    fields=(
        Integer("seq_len", "tokens per sequence", low=1, high=10_000_000),
        Integer("global_batch", "sequences per step", low=1, high=100_000_000),
        Integer("micro_batch", "sequences per microbatch", 1, low=1, high=100_000_000),
        Choice("precision", "compute precision", "bf16", choices=PRECISIONS),
        _degree("tp", "tensor parallel degree"),
        _degree("pp", "pipeline stages"),
        _degree("dp", "data parallel degree (default: devices / (tp * pp * cp))"),
        _degree("ep", "expert parallel degree (taken from the dp x cp ranks)"),
        _degree("cp", "context parallel degree"),
        Integer("zero", "ZeRO stage", 0, low=0, high=3),
        Choice("schedule", "pipeline schedule", "1f1b", choices=SCHEDULES),
        auto(
            Integer(
                "virtual_stages",
                'model chunks per pipeline stage (interleaved); "auto" or 0: the fastest that fits',
                "auto",
                low=0,
                high=10_000,
            )
        ),
        Choice("recompute", "activation recomputation", "none", choices=RECOMPUTE),
        Boolean("sequence_parallel", "Megatron sequence parallelism with tp", True),
        Boolean("flash_attention", "fused attention: no s x s scores in memory", True),
        Number(
            "tokens",
            "tokens to train, for time to train (0: not asked)",
            0.0,
            low=0.0,
            high=MAX_TOKENS,
            unit="tokens",
        ),
    ),
)
_FIELDS = TRAIN_FIELDS.keys


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
        values = {name: getattr(self, name) for name in _FIELDS if name != "virtual_stages"}
        check_all(values, _FIELDS, "train")
        _FIELDS["virtual_stages"].inner.check(self.virtual_stages, "train.virtual_stages")
        check(
            self.tokens == 0 or self.tokens >= 1,
            "train.tokens",
            self.tokens,
            "0 (not asked) or a number of tokens >= 1",
        )
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
    values = TRAIN_FIELDS.check(table, "train")
    for required in ("seq_len", "global_batch"):
        if required not in values:
            raise SpecError(f"train.{required} is missing")
    if values.get("virtual_stages") == "auto":
        values["virtual_stages"] = 0
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
