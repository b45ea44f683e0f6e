"""What the showcase assumes, in one place, each figure with its source or marked as an
ASSUMPTION / ESTIMATE (docs/showcase.md explains each).

The question: could DeepSeek train its next model on Huawei Ascend, and why does it serve
there instead? The showcase trains DeepSeek-V3 and an R2-class model on H800, H20, Ascend 910B
and Ascend 910C (CloudMatrix384) clusters bought with equal budgets, with and without
instability, and serves DeepSeek-R1 on the same chips.
"""

from dataclasses import dataclass, field
from typing import Any, Literal

from podsim.engine.failures import LLAMA3_RATE_PER_DEVICE_DAY

# --- The reference fleet: DeepSeek-V3's own cluster (arXiv 2412.19437, section 3.1) ----------

REFERENCE_CHIP = "h800-sxm"
REFERENCE_DEVICES = 2048
# Budgets buy whole blocks of this many devices: 64 servers of 8, the smallest block on which
# some candidate plan (8 or 16 pipeline stages, expert parallelism 32 or 64) can run.
DEVICE_BLOCK = 512

BudgetBasis = Literal["power", "spend"]


@dataclass(frozen=True)
class Budget:
    """Equal budgets: every chip gets the devices an amount buys, in whole blocks. basis
    "power": the amount is all-in IT power in W (each device's all-in power, before PUE);
    "spend": USD per hour at each chip's price per device-hour. By default the amount is what
    the reference fleet (2,048 H800s) draws or costs."""

    basis: BudgetBasis = "power"
    block: int = DEVICE_BLOCK


# --- Chips: their systems, prices and reliability --------------------------------------------

# ASSUMPTION: prices per device-hour (USD). No public list price exists for any of these four in
# a comparable market. 2.0 for the H800 is podsim's default (a typical H100-class rental price in
# 2024-2025). The H20 and the 910B at 30% less: Reuters (Nov 2023) reported 8-H20 servers
# offered about 30% below H800 systems, with Huawei's accelerators "a little more expensive"
# than the H20 (hence 1.5 for the 910B). The 910C at twice the 910B: it is two 910B-class dies.
# Only costs (and a "spend" budget) depend on them.
H800_PRICE = 2.0
H20_PRICE = 1.4
ASCEND_910B_PRICE = 1.5
ASCEND_910C_PRICE = 3.0

# Failure rates per device-day. NVIDIA: Llama 3's H100 record (419 unexpected interruptions in
# 54 days on 16,384 GPUs: 4.74e-4; The Llama 3 Herd of Models, arXiv 2407.21783, Table 5); the
# H800 and H20 are Hopper GPUs on HGX boards like the H100. Ascend: no public failure rate
# exists; ASSUMPTION: three times the H100 rate (the built-in llama3-70b-ascend-910b scenario's
# choice), motivated by the reported stability problems of DeepSeek's R2 run on Ascend.
ASCEND_FAILURE_MULTIPLE = 3.0
# Restart after a failure (detection, rescheduling, reload). NVIDIA: 10 min, podsim's default
# (engine/failures.py: within the published range). Ascend: ASSUMPTION 20 min, twice that
# (Huawei claims job-level recovery under 10 min [vendor claim]; DeepSeek reportedly could not
# keep a run going, so the showcase takes the pessimistic side).
NVIDIA_RESTART = "10 min"
ASCEND_RESTART = "20 min"
# Link latencies under instability, Ascend only (the NVIDIA latencies are DeepSeek's own
# measurements and are kept). Scale-up: 5.5 us, the top of the range the catalog documents for
# Huawei's scale-up (Huawei's msmodeling assumes 5.5 us across CloudMatrix384's L2 UB switch,
# against the 1 us vendor claim). Launch: 10 us per collective, msmodeling's assumed per-op
# overhead (unconfirmed), against podsim's 5 us for NCCL: "immature software".
ASCEND_UNSTABLE_LINKS = {"scale_up_latency": "5.5 us", "launch_latency": "10 us"}


@dataclass(frozen=True)
class ChipSetup:
    """One chip of the showcase: the [cluster] keys of its standard system (besides devices),
    its price, its failure rate and restart, the [cluster] keys instability changes, and the
    published serving deployment it runs (the H800's, by DeepSeek, or CloudMatrix384's)."""

    chip: str
    cluster: dict[str, Any]
    price_per_device_hour: float
    failure_rate_per_device_day: float
    restart: str
    unstable_links: dict[str, Any] = field(default_factory=dict)
    serve_base: str = "h800"


def chip_setups(ascend_failure_multiple: float = ASCEND_FAILURE_MULTIPLE) -> list[ChipSetup]:
    """The four chips, in the order of every table."""
    ascend_rate = LLAMA3_RATE_PER_DEVICE_DAY * ascend_failure_multiple
    return [
        ChipSetup(
            "h800-sxm",
            {"preset": "hgx-h800"},
            H800_PRICE,
            LLAMA3_RATE_PER_DEVICE_DAY,
            NVIDIA_RESTART,
        ),
        ChipSetup("h20", {"chip": "h20"}, H20_PRICE, LLAMA3_RATE_PER_DEVICE_DAY, NVIDIA_RESTART),
        ChipSetup(
            "ascend-910b",
            {"preset": "atlas-800t-a2"},
            ASCEND_910B_PRICE,
            ascend_rate,
            ASCEND_RESTART,
            dict(ASCEND_UNSTABLE_LINKS),
            "cloudmatrix384",
        ),
        ChipSetup(
            "ascend-910c",
            {"preset": "cloudmatrix384"},
            ASCEND_910C_PRICE,
            ascend_rate,
            ASCEND_RESTART,
            dict(ASCEND_UNSTABLE_LINKS),
            "cloudmatrix384",
        ),
    ]


# --- Models ------------------------------------------------------------------------------------

TOKENS = 14.8e12  # DeepSeek-V3's pre-training tokens (arXiv 2412.19437); the R2-class too
# ASSUMPTION: the R2-class model. DeepSeek published no R2 architecture; an unconfirmed April
# 2025 rumour spoke of 1.2T total and 78B active parameters. Here: DeepSeek-V3 with twice the
# layers (122: 3 dense + 119 MoE), 1.37T total and 73B active as podsim counts them, trained
# on the same 14.8T tokens, so that only the model's size differs.
R2_LAYERS = 122
MODELS: dict[str, dict[str, Any]] = {
    "deepseek-v3": {"preset": "deepseek-v3"},
    "r2-class": {"preset": "deepseek-v3", "layers": R2_LAYERS},
}
FOCUS_MODEL = "r2-class"  # the model of the story: --quick trains it alone; scale sweeps use it

# --- Training plans: DeepSeek-V3's (arXiv 2412.19437, sections 3.2-3.3) and the candidates --

TARGET_GLOBAL_BATCH = 15360  # sequences of 4,096 tokens: V3's final batch
TRAIN_BASE: dict[str, Any] = {
    "seq_len": 4096,
    "tp": 1,
    "zero": 1,
    "schedule": "dualpipe",
    "precision": "fp8",
}


@dataclass(frozen=True)
class Candidate:
    """One plan tried on each chip: what changes from V3's plan."""

    pp: int
    ep: int
    recompute: str
    micro_batch: int = 1

    @property
    def label(self) -> str:
        batch = f"micro-batch {self.micro_batch}"
        return f"pp {self.pp}, ep {self.ep}, {self.recompute} recompute, {batch}"


# The first is V3's own plan; the others trade speed for memory (full recompute, fewer experts
# per device) or memory for speed (a shallower pipeline, micro-batch 2). A 32-stage pipeline
# was left out: it was never faster than the 16-stage plans here (within 0.1%) and lowering
# its step costs four times as much time.
CANDIDATES: tuple[Candidate, ...] = (
    Candidate(16, 64, "selective"),
    Candidate(16, 32, "selective"),
    Candidate(8, 64, "selective"),
    Candidate(16, 64, "selective", 2),
    Candidate(16, 64, "full"),
    Candidate(16, 32, "full"),
    Candidate(8, 64, "full"),
)

# --- Serving: DeepSeek-R1 on each chip ------------------------------------------------------

# One TPOT limit for every chip (the CloudMatrix-Infer paper's 50 ms; DeepSeek's own 47.6 ms
# is close) and no prefix-cache hits (as CloudMatrix-Infer's benchmark), so that chips are
# compared on the same work.
TPOT_SLO = "50 ms"
# Serving deployments tried: the published one's device count, and twice it (ep = dp = devices).
SERVE_SCALES = (1, 2)
