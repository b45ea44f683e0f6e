"""Serving plans: how one deployment of a model splits over devices and what it is asked to do.

A deployment is dp x tp x pp devices: attention runs data parallel over dp ranks (each a tp
group holding its own sequences: DeepSeek's "DP attention"; dp = 1 with tp = 8 is the classic
tensor-parallel replica), routed experts are split over ep of the dp x tp ranks of a stage
(ep = dp x tp is DeepSeek's pure EP), layers over pp stages. `batch` is the sequences one
attention rank (a tp group) decodes at once: per replica for plain tensor parallelism, per
device for DeepSeek's DP attention.

Precisions (`precision`): weights and GEMM inputs. bf16 / fp16: 2-byte weights; fp8: 1-byte
weights, FP8 GEMMs; int8: weight-only INT8 (dequantized to 16 bits for the GEMM); w8a8: 8-bit
weights and activations (the chip's INT8 peak, else its FP8 peak); w4a8: 4-bit weights with
8-bit activations; fp4: 4-bit weights and FP4 GEMMs (chips with an fp4 peak only). The KV cache
has its own precision (`kv_precision`). Attention cores run in 16 bits (FlashMLA and
FlashAttention-3 do).
"""

from dataclasses import dataclass, fields
from typing import Any

from podsim.errors import SpecError, check
from podsim.fields import (
    Boolean,
    Choice,
    Integer,
    Number,
    Quantity,
    String,
    Table,
    auto,
    fraction,
)

MAX_DEVICES = 357_913_941  # the cluster's bound (podsim.specs.clusters)
MAX_TOKENS_PER_SEQUENCE = 10_000_000
MAX_BATCH = 100_000_000
MAX_SLO_S = 3600.0
MAX_REQUESTS = 100_000_000

PHASES = ("prefill", "decode", "both")
SCHEDULERS = ("vllm", "sarathi", "orca")
SERVE_PRECISIONS = ("bf16", "fp16", "fp8", "int8", "w8a8", "w4a8", "fp4")
KV_PRECISIONS = ("bf16", "fp16", "fp8", "int8", "fp4")

# Bytes per weight and the GEMM input precisions to try, in order, per serving precision.
WEIGHT_BYTES = {
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "w8a8": 1.0,
    "w4a8": 0.5,
    "fp4": 0.5,
}
GEMM_PRECISIONS = {
    "bf16": ("bf16",),
    "fp16": ("fp16", "bf16"),
    "fp8": ("fp8",),
    "int8": ("bf16", "fp16"),
    "w8a8": ("int8", "fp8"),
    "w4a8": ("int8", "fp8"),
    "fp4": ("fp4",),
}
KV_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "fp4": 0.5}
# vLLM's default gpu_memory_utilization is 0.9: a tenth of HBM is left to the runtime.
DEFAULT_MEMORY_RESERVE = 0.1
# vLLM's default max_num_seqs (sequences per scheduler step).
DEFAULT_MAX_BATCH = 256
DEFAULT_BLOCK_TOKENS = 16  # vLLM's default KV block (FlashMLA uses 64)
DEFAULT_INPUT_LEN = 2048
DEFAULT_OUTPUT_LEN = 512
DEFAULT_REQUESTS = 10_000
# CALIBRATED (tools/calibrate.py serving): the share of the modelled step rate a deployment
# sustains, fitted on DeepSeek's 24-hour H800 production averages (open-infra-index day 6):
# decode on infer_deepseek_online_h800_decode (1,850 tokens/s per GPU at 20-22 tokens/s per
# user), prefill on infer_deepseek_online_h800_prefill (4,026 uncached tokens/s per GPU). What
# they hold: expert and DP-attention imbalance (DeepSeek's profiles route perfectly evenly),
# host and scheduling gaps, and, for prefill, load below peak (docs/serving.md).
DECODE_EFFICIENCY = 0.748
PREFILL_EFFICIENCY = 0.556


def _degree(name: str, doc: str) -> Integer:
    return Integer(name, doc, 1, low=1, high=MAX_DEVICES)


def _length(name: str, doc: str, default: object = None) -> Integer:
    return Integer(name, doc, default, low=1, high=MAX_TOKENS_PER_SEQUENCE, unit="tokens")


def _slo(name: str, doc: str) -> Quantity:
    return Quantity(name, doc, None, low=0.0, high=MAX_SLO_S, low_open=True, kind="time")


def _pool_fields() -> tuple:
    return (
        _degree("tp", "tensor parallel degree"),
        _degree("ep", "expert parallel degree"),
        _degree("dp", "attention data parallel degree"),
        _degree("pp", "pipeline stages"),
        Integer("micro_batches", "micro-batches overlapping compute and EP comm", 1, low=1, high=2),
    )


SERVE_FIELDS = Table(
    "serve",
    "prefill / decode of one deployment",
    fields=(
        Choice("phase", "what to simulate", "decode", choices=PHASES),
        _length("context_len", "decode: KV length per sequence (default input + output / 2)"),
        *_pool_fields(),
        Choice("precision", "weights and activations", "bf16", choices=SERVE_PRECISIONS),
        Choice("kv_precision", "KV cache", "bf16", choices=KV_PRECISIONS),
        _slo("tpot_slo", "time per output token to meet; with it, batch = the largest that does"),
        _slo("ttft_slo", "time to first token to meet"),
        auto(Integer("batch", "sequences per attention rank", "auto", low=1, high=MAX_BATCH)),
        _length("input_len", "prompt tokens per request", DEFAULT_INPUT_LEN),
        _length("output_len", "generated tokens per request", DEFAULT_OUTPUT_LEN),
        Table(
            "mtp",
            "multi-token prediction (speculative decoding with the MTP modules)",
            None,
            fields=(
                Integer("depth", "tokens drafted per step", 1, low=0, high=16),
                fraction("acceptance", "chance a drafted token is accepted", 0.8),
            ),
        ),
        Number(
            "arrival_rate",
            "requests per second to the deployment (Poisson arrivals)",
            None,
            low=0.0,
            high=1e9,
            low_open=True,
            unit="1/s",
        ),
        String("trace", "a request trace file (CSV: arrival_s, input_len, output_len)", None),
        Integer("requests", "requests to simulate", DEFAULT_REQUESTS, low=1, high=MAX_REQUESTS),
        Integer("seed", "random seed of the arrivals", 0, low=0, high=2**63 - 1),
        Choice("scheduler", "continuous batching policy", "vllm", choices=SCHEDULERS),
        Integer(
            "chunk_tokens",
            "prefill tokens per step (chunked prefill; sarathi's token budget)",
            None,
            low=1,
            high=MAX_TOKENS_PER_SEQUENCE,
        ),
        Integer(
            "max_batch", "sequences per step at most", DEFAULT_MAX_BATCH, low=1, high=MAX_BATCH
        ),
        Integer(
            "kv_block_tokens", "tokens per paged KV block", DEFAULT_BLOCK_TOKENS, low=1, high=4096
        ),
        fraction("prefix_hit_rate", "share of prompt tokens found in the prefix cache", 0.0),
        fraction(
            "decode_efficiency",
            "share of the modelled decode step rate sustained (CALIBRATED default)",
            DECODE_EFFICIENCY,
            low_open=True,
        ),
        fraction(
            "prefill_efficiency",
            "share of the modelled prefill step rate sustained (CALIBRATED default)",
            PREFILL_EFFICIENCY,
            low_open=True,
        ),
        fraction("memory_reserve", "share of HBM left to the runtime", DEFAULT_MEMORY_RESERVE),
        Integer("redundant_experts", "extra expert replicas (EPLB)", 0, low=0, high=1_000_000),
        String(
            "ep_algorithm",
            "all-to-all algorithm of EP dispatch/combine (low-latency: decode steps only)",
            "auto",
        ),
        Boolean("ep_low_latency", "decode dispatch sends every routed copy (no dedup)", True),
        Integer("prefill_devices", "devices of the prefill pool", None, low=1, high=MAX_DEVICES),
        Integer("decode_devices", "devices of the decode pool", None, low=1, high=MAX_DEVICES),
        Table("prefill", "the prefill pool's plan (disaggregation)", None, fields=_pool_fields()),
    ),
)
_FIELDS = SERVE_FIELDS.keys


@dataclass(frozen=True)
class Pool:
    """How one pool of devices splits the model: tp, ep, dp (attention), pp, micro-batches."""

    tp: int = 1
    ep: int = 1
    dp: int = 1
    pp: int = 1
    micro_batches: int = 1

    def __post_init__(self) -> None:
        for f in fields(self):
            _FIELDS[f.name].check(getattr(self, f.name), f"serve.{f.name}")

    @property
    def devices(self) -> int:
        """Devices of one deployment: dp x tp x pp."""
        return self.dp * self.tp * self.pp


@dataclass(frozen=True)
class ServePlan:
    """One deployment and its workload; checked at construction (SpecError names the key)."""

    pool: Pool = Pool()
    phase: str = "decode"
    precision: str = "bf16"
    kv_precision: str = "bf16"
    batch: int | None = None  # None: auto (the largest that fits, or meets tpot_slo)
    input_len: int = DEFAULT_INPUT_LEN
    output_len: int = DEFAULT_OUTPUT_LEN
    context_len: int | None = None
    tpot_slo: float | None = None
    ttft_slo: float | None = None
    mtp_depth: int = 0
    mtp_acceptance: float = 0.8
    arrival_rate: float | None = None
    trace: str | None = None
    requests: int = DEFAULT_REQUESTS
    seed: int = 0
    scheduler: str = "vllm"
    chunk_tokens: int | None = None
    max_batch: int = DEFAULT_MAX_BATCH
    kv_block_tokens: int = DEFAULT_BLOCK_TOKENS
    prefix_hit_rate: float = 0.0
    decode_efficiency: float = DECODE_EFFICIENCY
    prefill_efficiency: float = PREFILL_EFFICIENCY
    memory_reserve: float = DEFAULT_MEMORY_RESERVE
    redundant_experts: int = 0
    ep_algorithm: str = "auto"
    ep_low_latency: bool = True
    prefill_devices: int | None = None
    decode_devices: int | None = None
    prefill_pool: Pool | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name in ("pool", "prefill_pool", "mtp_depth", "mtp_acceptance"):
                continue
            value = getattr(self, f.name)
            if value is None:
                continue
            field = _FIELDS[f.name]
            (field.inner if f.name == "batch" else field).check(value, f"serve.{f.name}")
        mtp = _FIELDS["mtp"].keys
        mtp["depth"].check(self.mtp_depth, "serve.mtp.depth")
        mtp["acceptance"].check(self.mtp_acceptance, "serve.mtp.acceptance")
        if self.trace is not None and self.arrival_rate is not None:
            raise SpecError("serve: give arrival_rate or trace, not both")

    @property
    def kv_len(self) -> int:
        """KV length a decode step attends to per sequence."""
        if self.context_len is not None:
            return self.context_len
        return self.input_len + self.output_len // 2

    @property
    def weight_bytes(self) -> float:
        return WEIGHT_BYTES[self.precision]

    @property
    def kv_bytes(self) -> float:
        return KV_BYTES[self.kv_precision]

    @property
    def tokens_per_step(self) -> float:
        """Expected tokens a sequence gains per decode step with MTP: drafts are accepted in a
        chain, so 1 + a + a^2 + ... + a^depth."""
        return sum(self.mtp_acceptance**i for i in range(self.mtp_depth + 1))

    @property
    def disaggregated(self) -> bool:
        return self.prefill_devices is not None or self.decode_devices is not None

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["pool"] = {f.name: getattr(self.pool, f.name) for f in fields(Pool)}
        if self.prefill_pool is not None:
            out["prefill_pool"] = {f.name: getattr(self.prefill_pool, f.name) for f in fields(Pool)}
        return out


def _pool(values: dict[str, Any]) -> Pool:
    return Pool(**{f.name: values[f.name] for f in fields(Pool) if f.name in values})


def serve_plan_from_table(table: dict[str, Any]) -> ServePlan:
    """A plan from a scenario's [serve] table (checked again here: the API takes raw tables)."""
    values = SERVE_FIELDS.check(table, "serve")
    pool = _pool(values)
    prefill = values.pop("prefill", None)
    mtp = values.pop("mtp", None) or {}
    for name in ("tp", "ep", "dp", "pp", "micro_batches"):
        values.pop(name, None)
    if values.get("batch") == "auto":
        values["batch"] = None
    kwargs = {k: v for k, v in values.items() if v is not None}
    return ServePlan(
        pool=pool,
        prefill_pool=None if prefill is None else _pool(prefill),
        mtp_depth=mtp.get("depth", 1) if mtp else 0,
        mtp_acceptance=mtp.get("acceptance", 0.8),
        **kwargs,
    )


def gemm_precision(plan: ServePlan, peaks: dict[str, float]) -> str:
    """The precision GEMMs run at on a chip with these peaks (SpecError if it has none)."""
    for precision in GEMM_PRECISIONS[plan.precision]:
        if precision in peaks:
            return precision
    have = ", ".join(peaks)
    raise SpecError(
        f"serve.precision = {plan.precision!r} is not allowed on this chip: it needs a "
        f"{' or '.join(GEMM_PRECISIONS[plan.precision])} peak and the chip has {have}"
    )


def check_serve_plan(model, plan: ServePlan, pool: Pool, devices: int) -> None:
    """The plan against the model and the cluster (SpecError names the key)."""
    check(
        devices % pool.devices == 0,
        "serve.dp",
        pool.dp,
        f"such that dp x tp x pp ({pool.devices}) divides the devices ({devices})",
    )
    check(model.heads % pool.tp == 0, "serve.tp", pool.tp, f"a divisor of heads ({model.heads})")
    check(model.layers >= pool.pp, "serve.pp", pool.pp, f"at most layers ({model.layers})")
    if not model.is_moe_model:
        check(pool.ep == 1, "serve.ep", pool.ep, "1 for a dense model")
        return
    ranks = pool.dp * pool.tp
    check(ranks % pool.ep == 0, "serve.ep", pool.ep, f"a divisor of dp x tp ({ranks})")
    slots = model.experts + plan.redundant_experts
    check(
        slots % pool.ep == 0,
        "serve.ep",
        pool.ep,
        f"a divisor of experts + redundant_experts ({slots})",
    )
