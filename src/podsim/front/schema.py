"""The scenario schema: one table of typed, bounded fields per scenario table.

Each layer declares the fields of what it owns, once, and checks its dataclasses with them at
construction: [cluster] and [cluster.chip] in podsim.specs (clusters, chips), [model] in
podsim.specs.models, [train] in podsim.plans.training, [noise] and [failures] in podsim.engine
(noise, failures). [serve] is declared here: nothing consumes it yet, but its keys are fixed
and checked. `SCENARIO.check(document)` refuses unknown keys anywhere (naming the key and the
allowed ones), wrong types and out-of-range values (naming the key as the user wrote it), and
returns the tables with quantities in SI units. `reference()` lists every key with what it
takes, its unit, its default and its doc (for a generated reference page).
"""

from podsim.engine.failures import FAILURE_FIELDS
from podsim.engine.noise import NOISE_FIELDS
from podsim.fields import (
    Choice,
    Field,
    Integer,
    Number,
    Quantity,
    String,
    Table,
    auto,
    fraction,
)
from podsim.fields import (
    reference as _reference,
)
from podsim.plans.training import TRAIN_FIELDS
from podsim.specs.clusters import CLUSTER_FIELDS, MAX_DEVICES
from podsim.specs.models import MODEL_FIELDS

MAX_TOKENS_PER_SEQUENCE = 10_000_000
MAX_BATCH = 100_000_000
MAX_SLO_S = 3600.0


def _degree(name: str, doc: str) -> Integer:
    return Integer(name, doc, 1, low=1, high=MAX_DEVICES)


def _length(name: str, doc: str) -> Integer:
    return Integer(name, doc, None, low=1, high=MAX_TOKENS_PER_SEQUENCE, unit="tokens")


def _slo(name: str, doc: str) -> Quantity:
    return Quantity(name, doc, None, low=0.0, high=MAX_SLO_S, low_open=True, kind="time")


SERVE_PRECISIONS = ("bf16", "fp16", "fp8", "int8", "w8a8", "w4a8", "fp4")
KV_PRECISIONS = ("bf16", "fp16", "fp8", "int8", "fp4")

SERVE_FIELDS = Table(
    "serve",
    "prefill / decode of one deployment (declared and checked; not simulated yet)",
    fields=(
        Choice("phase", "what to simulate", "decode", choices=("prefill", "decode", "both")),
        _length("context_len", "decode: KV length per sequence; prefill: the input length"),
        _degree("tp", "tensor parallel degree"),
        _degree("ep", "expert parallel degree"),
        _degree("dp", "attention data parallel degree"),
        _degree("pp", "pipeline stages"),
        Choice("precision", "weights and activations", "bf16", choices=SERVE_PRECISIONS),
        Choice("kv_precision", "KV cache", "bf16", choices=KV_PRECISIONS),
        _slo("tpot_slo", "time per output token to meet; with it, batch = the largest that does"),
        _slo("ttft_slo", "time to first token to meet"),
        auto(Integer("batch", "sequences per batch", "auto", low=1, high=MAX_BATCH)),
        _length("input_len", "prompt tokens per request"),
        _length("output_len", "generated tokens per request"),
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
            "requests per second (Poisson arrivals)",
            None,
            low=0.0,
            high=1e9,
            low_open=True,
            unit="1/s",
        ),
        String("trace", "a request trace file (instead of arrival_rate)", None, max_length=4096),
        Integer("prefill_devices", "devices of the prefill pool", None, low=1, high=MAX_DEVICES),
        Integer("decode_devices", "devices of the decode pool", None, low=1, high=MAX_DEVICES),
    ),
)

SCENARIO = Table(
    "scenario",
    "a scenario file",
    fields=(
        CLUSTER_FIELDS,
        MODEL_FIELDS,
        TRAIN_FIELDS,
        SERVE_FIELDS,
        NOISE_FIELDS,
        FAILURE_FIELDS,
    ),
)
TABLES: dict[str, Field] = SCENARIO.keys


def reference() -> list[dict[str, str]]:
    """Every key of every table ("train.seq_len", "cluster.chip.hbm_bytes", ...) with what it
    takes, its unit, its default and a one-line doc."""
    return _reference(SCENARIO)
