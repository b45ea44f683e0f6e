"""Parallel plans: how a model's training step is split over the cluster, validated up front."""

from dataclasses import dataclass, fields
from typing import Any

from podsim.errors import SpecError, check
from podsim.fields import (
    Boolean,
    Choice,
    ChoiceList,
    Integer,
    Number,
    OneOf,
    Table,
    auto,
    check_all,
)
from podsim.plans.stack import MEGATRON_CORE, Stack

SCHEDULES = ("gpipe", "1f1b", "interleaved", "dualpipe")
RECOMPUTE = ("none", "selective", "full")
# Megatron-Core's --recompute-modules names (selective granularity), the ones podsim models.
RECOMPUTE_MODULES = ("core_attn", "layernorm", "mla_up_proj", "moe_act", "shared_experts", "mlp")
PRECISIONS = ("bf16", "fp16", "fp8")
FP8_RECIPES = ("per-tensor", "blockwise", "mx")
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
        OneOf(
            "etp",
            'expert tensor-parallel size; "tp" or 0: the same as tp (Megatron-Core)',
            0,
            options=(
                Choice("etp", "the same as tp", choices=("tp",)),
                Integer("etp", "expert tensor-parallel size", low=0, high=MAX_RANKS),
            ),
        ),
        Number(
            "expert_load_cv",
            "coefficient of variation of tokens per expert (an estimate: 0.05)",
            0.05,
            low=0.0,
            high=10.0,
        ),
        Number(
            "capacity_factor",
            "expert capacity as a multiple of its mean load; 0: dropless",
            0.0,
            low=0.0,
            high=1000.0,
        ),
        OneOf(
            "recompute_modules",
            'modules selective recompute runs again; "default": see docs/training.md',
            "default",
            options=(
                Choice("recompute_modules", "podsim's default set", choices=("default",)),
                ChoiceList("recompute_modules", "modules", choices=RECOMPUTE_MODULES),
            ),
        ),
        Integer(
            "recompute_layers",
            "under full recompute, layers per stage and chunk recomputed (0: all)",
            0,
            low=0,
            high=10_000,
        ),
        Choice("fp8_recipe", "FP8 scaling scheme", "blockwise", choices=FP8_RECIPES),
        Choice(
            "optimizer_moments",
            'precision of Adam\'s moments ("auto": bf16 with blockwise FP8, else fp32)',
            "auto",
            choices=("auto", "fp32", "bf16"),
        ),
        Integer(
            "comm_sms",
            "SMs held by overlapped all-to-all kernels (-1: 20 under DualPipe with ep > 1, "
            "held in its overlapped F&B chunks only)",
            -1,
            low=-1,
            high=100_000,
        ),
        Choice(
            "pipeline_split",
            'layers over stages: "even", "balanced" (embedding and loss count as layers), '
            '"auto" (balanced for DualPipe with MTP)',
            "auto",
            choices=("auto", "even", "balanced"),
        ),
    ),
)
_FIELDS = TRAIN_FIELDS.keys


@dataclass(frozen=True)
class Plan:
    """A training plan. Batch sizes count sequences; dp = devices / (tp * pp * cp).

    ep x etp split each MoE layer's experts over ranks folded from the tp x cp x dp ranks of
    a stage (Megatron-Core's MoE parallel folding); it does not multiply the device count.
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
    # Expert sharding (Megatron-Core's MoE parallel folding): experts are split over
    # etp x ep ranks taken from a stage's tp x cp x dp ranks; 0 = tp (Megatron-Core's default).
    etp: int = 0
    # Router: tokens per expert vary with this coefficient of variation (0 = perfectly
    # balanced); with capacity_factor > 0 an expert takes at most that multiple of its mean
    # share and drops the rest (0 = dropless, as Megatron-Core's default and DeepSeek-V3).
    expert_load_cv: float = 0.05
    capacity_factor: float = 0.0
    # Selective recompute: the modules run again in backward ("default": see recompute_set).
    recompute_modules: tuple[str, ...] | str = "default"
    # Full recompute of only this many layers per stage and chunk (Megatron's
    # --recompute-num-layers, block method); 0 = all of them.
    recompute_layers: int = 0
    # FP8 scaling: "per-tensor" (Transformer Engine current scaling), "blockwise" (1 x 128
    # activation tiles and 128 x 128 weight blocks, DeepSeek-V3) or "mx" (MXFP8, 32-element
    # blocks, Blackwell); sets the bytes its quantize kernels move.
    fp8_recipe: str = "blockwise"
    # Adam's two moments: "fp32", or "bf16" as DeepSeek-V3 keeps them (report section 3.3.3);
    # "auto" = bf16 with the blockwise FP8 recipe (DeepSeek's framework), else fp32.
    optimizer_moments: str = "auto"
    # SMs the expert all-to-all kernels hold while compute overlaps them (DeepEP: 20 of 132 on
    # H800, DeepSeek-V3 section 3.2.2); -1 = auto: 20 under DualPipe with ep > 1, else 0.
    # DualPipe holds them in its overlapped F&B chunks only; other schedules in every kernel.
    comm_sms: int = -1
    # How layers are split over pipeline stages: "even", or "balanced" (the embedding and the
    # loss, i.e. the head and each MTP module, count as a layer each, as Megatron-Core's
    # account_for_embedding/loss_in_pipeline_split); "auto" = balanced for a DualPipe model
    # with MTP modules (both heavy ends of the model sit on the same devices), else even.
    pipeline_split: str = "auto"
    # The software that runs the plan ([stack]; podsim.plans.stack): overlaps, ZeRO-3 gathers,
    # framework and collective-library costs. Not a [train] key, so not in to_dict.
    stack: Stack = MEGATRON_CORE

    def __post_init__(self) -> None:
        values = {name: getattr(self, name) for name in _FIELDS if name != "virtual_stages"}
        check_all(values, _FIELDS, "train")
        check(isinstance(self.stack, Stack), "stack", self.stack, "a podsim.plans.stack.Stack")
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
            self._check_dualpipe_stack()
        self._check_moe_fields()

    def _check_dualpipe_stack(self) -> None:
        """DualPipe runs a forward and a backward of two chunks as one overlapped compute op and
        splits backward into input and weight gradients: the stack's layer-by-layer splits of a
        pass (ZeRO-3 gathers and reductions by layer or module, a bounded prefetch, no backward
        gather; overlapped ZeRO-1/2 gathers and gradient reductions) have no place in it, and
        no published DualPipe run uses them (DeepSeek-V3: ZeRO-1, gradients reduced after the
        backward). Refused rather than silently dropped."""
        # Gradients and ZeRO states go over dp and, for routed experts apart, expert dp.
        apart = self.ep > 1 or self.expert_tp != self.tp
        ranks = max(self.dp, self.expert_dp) if apart else self.dp
        key = dualpipe_stack_conflict(self.stack, self.zero, ranks)
        if key is not None:
            check(
                False,
                f"stack.{key}",
                getattr(self.stack, key),
                f"{_toml(getattr(MEGATRON_CORE, key))} (megatron-core's) with train.schedule = "
                f"'dualpipe' and train.zero = {self.zero} over more than one rank: DualPipe's "
                "overlapped forward-and-backward chunks have no place for the stack's "
                "layer-by-layer split of a pass (docs/training.md)",
            )

    def _check_moe_fields(self) -> None:
        # Types and ranges come from TRAIN_FIELDS (check_all above); what they cannot say:
        check(
            self.capacity_factor == 0 or self.capacity_factor >= 1,
            "train.capacity_factor",
            self.capacity_factor,
            "0 (dropless) or a number >= 1",
        )
        if self.recompute_modules != "default":
            object.__setattr__(self, "recompute_modules", tuple(self.recompute_modules))

    @property
    def moment_bytes(self) -> int:
        """Bytes of each of Adam's two moments."""
        moments = self.optimizer_moments
        if moments == "auto":
            deepseek = self.precision == "fp8" and self.fp8_recipe == "blockwise"
            moments = "bf16" if deepseek else "fp32"
        return 2 if moments == "bf16" else 4

    @property
    def overlap_sms(self) -> int:
        """SMs held by all-to-all kernels that overlap compute (comm_sms resolved)."""
        if self.comm_sms >= 0:
            return self.comm_sms
        return 20 if self.schedule == "dualpipe" and self.ep > 1 else 0

    @property
    def expert_tp(self) -> int:
        """Expert tensor-parallel size (etp; 0 resolves to tp)."""
        return self.etp or self.tp

    @property
    def expert_dp(self) -> int:
        """Expert data-parallel size: the ranks of a stage (tp x cp x dp) over etp x ep. Expert
        gradients are reduced and ZeRO shards expert states over these (Megatron-Core)."""
        return max(1, self.tp * self.cp * self.dp // (self.expert_tp * self.ep))

    @property
    def moe_token_split(self) -> int:
        """Ranks that split a microbatch's tokens before the MoE layer: tp (sequence
        parallelism shards tokens over tp, as Megatron-Core requires for MoE with tp > 1)."""
        return self.tp

    def recompute_set(self, model) -> frozenset[str]:
        """The modules selective recompute runs again. "default": the attention core
        (Korthikanti et al. 2022); for MLA models also the norms and MLA up-projections, and for
        MoE models the expert activation (SwiGLU), as DeepSeek-V3 does (report section 3.2.3 and
        3.3.2)."""
        if self.recompute != "selective":
            return frozenset()
        if self.recompute_modules != "default":
            return frozenset(self.recompute_modules)
        modules = {"core_attn"}
        if model.attention == "mla":
            modules |= {"layernorm", "mla_up_proj"}
        if model.experts:
            modules.add("moe_act")
        return frozenset(modules)

    @property
    def devices(self) -> int:
        return self.tp * self.pp * self.dp * self.cp

    @property
    def microbatches(self) -> int:
        """Microbatches per pipeline per step."""
        return self.global_batch // (self.dp * self.micro_batch)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "stack"}


def plan_from_table(table: dict[str, Any], devices: int) -> Plan:
    """A plan from a scenario's [train] table; dp defaults to devices / (tp * pp * cp)."""
    values = TRAIN_FIELDS.check(table, "train")
    for required in ("seq_len", "global_batch"):
        if required not in values:
            raise SpecError(f"train.{required} is missing")
    if values.get("virtual_stages") == "auto":
        values["virtual_stages"] = 0
    if values.get("etp") == "tp":
        values["etp"] = 0
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


def _toml(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else repr(value)


def dualpipe_stack_conflict(stack: Stack, zero: int, dp: int) -> str | None:
    """The first [stack] key that would split a pass layer by layer under this ZeRO stage over
    `dp` ranks (what podsim.lowering.training's StepBuilder._split applies outside DualPipe),
    or None."""
    if dp <= 1:
        return None
    if zero == 3:
        for key in ("zero3_granularity", "zero3_prefetch", "zero3_regather"):
            if getattr(stack, key) != getattr(MEGATRON_CORE, key):
                return key
        return None
    for key in ("overlap_param_gather", "overlap_grad_reduce"):
        if getattr(stack, key) and (zero > 0 or key == "overlap_grad_reduce"):
            return key
    return None


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
    stage = plan.tp * plan.cp * plan.dp
    check(
        stage % (plan.expert_tp * plan.ep) == 0,
        "train.ep * etp",
        plan.expert_tp * plan.ep,
        f"a divisor of tp * cp * dp ({stage}): experts are split over a stage's ranks",
    )
    if model.experts:
        width = model.expert_ffn_hidden
        check(
            width % plan.expert_tp == 0,
            "train.etp",
            plan.expert_tp,
            f"a divisor of the model's expert_ffn_hidden ({width})",
        )
        check(
            plan.tp == 1 or plan.sequence_parallel,
            "train.sequence_parallel",
            plan.sequence_parallel,
            "true for an MoE model with tp > 1 (Megatron-Core requires it)",
        )
    check(
        plan.schedule != "interleaved" or plan.virtual_stages <= 1 or plan.pp >= 2,
        "train.virtual_stages",
        plan.virtual_stages,
        "1 when pp = 1",
    )
