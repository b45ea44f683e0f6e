"""Failures over a long training run ([failures]): checkpoint intervals, goodput, Monte Carlo.

The Monte Carlo itself runs in C++ (cpp/src/failures.cpp; the model is described in
cpp/include/podsim/failures.hpp). In short: failures form a Poisson process in wall-clock time
at the job's rate (devices x per-device rate + links x per-link rate) and strike in every phase;
each one loses the work since the last durable checkpoint and costs a restart; checkpoints are
taken every `checkpoint_interval_s` of useful progress, blocking or asynchronous; a finite pool
of spare devices replaces failed hardware at once, after which failures wait for replacements.

Formulas and sources ("figures" below: the public reliability figures collected for calibration,
with their primary sources):
- Young 1974 (CACM 17(9)): tau = sqrt(2 delta M).
- Daly 2006 (FGCS 22(3):303), higher order: tau = sqrt(2 delta M) [1 + sqrt(delta / 2M) / 3
  + (delta / 2M) / 9] - delta for delta < 2M, else M. It reproduces Daly's published optima
  (117, 57, 9.1 min at M = 24 h, 6 h, 15 min; figures section 2.1).
- Daly's exact expected wall time for exponential failures that also strike restarts:
  T = M e^(R/M) (e^((tau + delta)/M) - 1) T_s / tau (figures section 2.1, S3).
- First-order goodput (figures section 2.1, the structure of Meta's ETTR estimator):
  tau / (tau + delta) * (1 - (R + (tau + delta) / 2) / M); to first order in delta/tau and
  tau/M it is 1 - delta/tau - (tau/2 + R)/M.

"auto" uses Daly's higher-order form: it is the optimum of the exact model above (which the
Monte Carlo simulates), it stays valid when delta is not small against M (where Young's drifts:
12.2 vs 9.1 min at M = 15 min) and it reduces to Young's for delta << M.
"""

import math
import os
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from podsim import _core
from podsim.errors import SpecError, check
from podsim.fields import Boolean, Integer, Number, Quantity, Table, auto
from podsim.specs.clusters import MAX_DEVICES

SECONDS_PER_DAY = 86_400.0

# --- The Llama 3 record (The Llama 3 Herd of Models, arXiv 2407.21783, Table 5; figures 1.1) ----

LLAMA3_DEVICES = 16_384  # H100 80GB, 8 per Grand Teton server [C]
LLAMA3_SERVER_DEVICES = 8
LLAMA3_DAYS = 54  # the snapshot of pre-training [C]
LLAMA3_UNEXPECTED = 419  # unexpected interruptions in the snapshot (plus 47 planned) [C]
# 419 / (16,384 x 54) = 4.74e-4 unexpected interruptions per GPU-day [D].
LLAMA3_RATE_PER_DEVICE_DAY = LLAMA3_UNEXPECTED / (LLAMA3_DEVICES * LLAMA3_DAYS)

# (component, category, count) of Table 5. The counts sum to 419; use them, not the published
# percentages (the first row says 30.1% where 148/419 = 35.3%; figures 1.1 "does not add up").
LLAMA3_TABLE5: tuple[tuple[str, str, int], ...] = (
    ("Faulty GPU (incl. NVLink)", "GPU", 148),
    ("GPU HBM3 memory", "GPU", 72),
    ("Software bug", "Dependency", 54),
    ("Network switch/cable", "Network", 35),
    ("Host maintenance", "Unplanned maintenance", 32),
    ("GPU SRAM memory", "GPU", 19),
    ("GPU system processor", "GPU", 17),
    ("NIC", "Host", 7),
    ("NCCL watchdog timeouts", "Unknown", 7),
    ("Silent data corruption", "GPU", 6),
    ("GPU thermal interface + sensor", "GPU", 6),
    ("SSD", "Host", 3),
    ("Power supply", "Host", 3),
    ("Server chassis", "Host", 2),
    ("IO expansion board", "Host", 2),
    ("Dependency", "Dependency", 2),
    ("CPU", "Host", 2),
    ("System memory", "Host", 2),
)

# Spare devices one failure of a category takes (a modelling choice, not from the paper): a GPU
# fault swaps one GPU, a host fault (or unplanned host maintenance) a whole 8-GPU server;
# software, network and unknown causes restart on the same hardware.
_CATEGORY_SPARES = {
    "GPU": 1,
    "Host": LLAMA3_SERVER_DEVICES,
    "Unplanned maintenance": LLAMA3_SERVER_DEVICES,
}

# --- Defaults (each with its source; "figures" = the collected public reliability figures) ----

# Per-device failure rate when none is given: the Llama 3 H100 rate above [D from C]. Only for
# chips with a public record; see NO_PUBLIC_FAILURE_RATE.
DEFAULT_RATE_PER_DEVICE_DAY = LLAMA3_RATE_PER_DEVICE_DAY
# Vendors without any published per-device failure rate (figures 1.10: no peer-reviewed failure
# rate, MTBF or link-error data exists for Huawei Ascend). Their rate must be given explicitly.
NO_PUBLIC_FAILURE_RATE = frozenset({"huawei"})
# BLOOM-176B wrote a 2.3 TB checkpoint in 40 s, blocking [C] (figures 2.2).
DEFAULT_CHECKPOINT_WRITE_S = 40.0
# Restart (detection + rescheduling + reload): 10 min. Not published for Llama 3; within the
# published range: Huawei job-level recovery < 10 min [S], a B200 cluster's median automatic
# retry interval 11 min [S] (figures 2.2); S2 uses 5 and 10 min.
DEFAULT_RESTART_S = 600.0
# Wait for new hardware once the spares are gone: an assumption. OPT-175B's logbook only says
# cloud replacement took "hours per machine" [C] (figures 1.6).
DEFAULT_REPLACEMENT_S = 4 * 3600.0
# Asynchronous checkpoints block for the snapshot only. Without a given snapshot time it is the
# write time / 54.2: ByteCheckpoint (NSDI '25) cut runtime checkpoint stalls 54.20x on average
# [C] (figures 2.2).
ASYNC_STALL_REDUCTION = 54.2
DEFAULT_RUNS = 1000

# --- [failures]: the one definition of its keys and bounds (the scenario schema uses it) -----

MAX_TIME_S = 1e9  # about 32 years: any checkpoint, restart or deadline
MAX_MTBF_S = 1e13  # about 300,000 years: a per-device or per-link MTBF
MAX_USEFUL_TIME_S = 1e15  # the failure-free time of a job
MAX_RUNS = 1_000_000  # long runs of one Monte Carlo
MAX_SEED = 2**64 - 1  # the engine's counter-based generator takes a 64-bit key
MAX_RATE_PER_S = 1.0  # a failure per second per device or link: beyond any real hardware
MIN_INTERVAL_S = 1e-3


def _time(name: str, doc: str, default: object, low: float = 0.0, high: float = MAX_TIME_S):
    return Quantity(name, doc, default, low=low, high=high, low_open=low == 0.0, kind="time")


def _span(name: str, doc: str, default: object):
    """A time >= 0 (a cost that may be free)."""
    return Quantity(name, doc, default, low=0.0, high=MAX_TIME_S, kind="time")


FAILURE_FIELDS = Table(
    "failures",
    "long-run reliability: failure rates, checkpoints, restarts, spares",
    fields=(
        _time("device_mtbf", "mean time between failures of one device", None, high=MAX_MTBF_S),
        _time("link_mtbf", "mean time between failures of one link", None, high=MAX_MTBF_S),
        Number(
            "failure_rate_per_device_day",
            "failures per device and day (instead of device_mtbf; default: Llama 3's H100 rate)",
            None,
            high=MAX_RATE_PER_S * SECONDS_PER_DAY,
            unit="1/device/day",
        ),
        auto(
            _time(
                "checkpoint_interval",
                'useful compute between checkpoints; "auto": the Young/Daly optimum',
                "auto",
                low=MIN_INTERVAL_S,
            )
        ),
        _span("checkpoint_write", "time to write a checkpoint", DEFAULT_CHECKPOINT_WRITE_S),
        Boolean("checkpoint_async", "checkpoints written in the background", False),
        _span("restart", "detection, rescheduling and reload after a failure", DEFAULT_RESTART_S),
        Integer("spares", "spare devices (left out: unlimited)", None, low=0, high=MAX_DEVICES),
        _time("deadline", "report the chance to finish by this wall time", None),
        Integer("runs", "long runs of the Monte Carlo", DEFAULT_RUNS, low=1, high=MAX_RUNS),
        Integer("seed", "key of every random draw", 0, low=0, high=MAX_SEED),
    ),
)
_FIELDS = FAILURE_FIELDS.keys
_RATE = Number("rate", "failures per second", low=0.0, high=MAX_RATE_PER_S, unit="1/s")
# FailureModel's attributes: the field that checks each, and the name errors give it.
_MODEL_FIELDS = {
    "devices": Integer("devices", "devices of the job", low=1, high=MAX_DEVICES),
    "useful_time_s": _time("useful_time_s", "failure-free time", None, high=MAX_USEFUL_TIME_S),
    "links": Integer("links", "links that can fail", 0, low=0, high=MAX_DEVICES),
    "link_rate_per_s": _RATE,
    "checkpoint_interval_s": _FIELDS["checkpoint_interval"],
    "checkpoint_write_s": _FIELDS["checkpoint_write"],
    "checkpoint_async": _FIELDS["checkpoint_async"],
    "checkpoint_snapshot_s": _span("checkpoint_snapshot", "blocking part of an async write", None),
    "restart_s": _FIELDS["restart"],
    "spares": _FIELDS["spares"],
    "replacement_s": _span("replacement_s", "wait for new hardware", DEFAULT_REPLACEMENT_S),
    "deadline_s": _FIELDS["deadline"],
    "runs": _FIELDS["runs"],
    "seed": _FIELDS["seed"],
}


# --- Formulas ---------------------------------------------------------------------------------


def young_interval(checkpoint_write_s: float, job_mtbf_s: float) -> float:
    """Young (1974): tau = sqrt(2 delta M), the first-order optimal compute time per checkpoint."""
    return math.sqrt(2.0 * checkpoint_write_s * job_mtbf_s)


def daly_interval(checkpoint_write_s: float, job_mtbf_s: float) -> float:
    """Daly (2006), higher order: the optimum of the exact exponential model; M when delta >= 2M."""
    delta, mtbf = checkpoint_write_s, job_mtbf_s
    if delta >= 2.0 * mtbf:
        return mtbf
    x = delta / (2.0 * mtbf)
    return math.sqrt(2.0 * delta * mtbf) * (1.0 + math.sqrt(x) / 3.0 + x / 9.0) - delta


def young_daly_interval(
    checkpoint_write_s: float, job_mtbf_s: float, method: Literal["young", "daly"] = "daly"
) -> float:
    """The optimal checkpoint interval (compute time between checkpoints): Daly's higher-order
    form by default (what "auto" uses), or Young's sqrt(2 delta M) with method="young"."""
    check(checkpoint_write_s >= 0, "checkpoint_write_s", checkpoint_write_s, "a time >= 0")
    check(job_mtbf_s > 0, "job_mtbf_s", job_mtbf_s, "a time > 0")
    check(method in ("young", "daly"), "method", method, '"young" or "daly"')
    if math.isinf(job_mtbf_s):
        return math.inf
    if method == "young":
        return young_interval(checkpoint_write_s, job_mtbf_s)
    return daly_interval(checkpoint_write_s, job_mtbf_s)


def expected_goodput(
    interval_s: float, checkpoint_s: float, restart_s: float, job_mtbf_s: float
) -> float:
    """First-order goodput (useful time / wall time) for Poisson failures and blocking
    checkpoints: tau/(tau + delta) * (1 - (R + (tau + delta)/2) / M). Valid for tau, R << M;
    its error is of order ((tau + delta)/M)^2. For async checkpoints pass the blocking part."""
    segment = interval_s + checkpoint_s
    return interval_s / segment * (1.0 - (restart_s + segment / 2.0) / job_mtbf_s)


def expected_wall_time(
    useful_time_s: float,
    interval_s: float,
    checkpoint_write_s: float,
    restart_s: float,
    job_mtbf_s: float,
) -> float:
    """Exact mean wall time of the simulated model with blocking checkpoints and unlimited spares
    (Daly 2006's exact form, with the job cut into whole segments and no checkpoint after the
    last): M e^(R/M) [(n - 1)(e^((tau + delta)/M) - 1) + e^(tau_last/M) - 1]."""
    segments = _segment_count(useful_time_s, interval_s)
    last = useful_time_s - (segments - 1) * interval_s
    m = job_mtbf_s
    if math.isinf(m):
        return useful_time_s + (segments - 1) * checkpoint_write_s
    per_failure = m * math.exp(restart_s / m)
    full = math.expm1((interval_s + checkpoint_write_s) / m)
    return per_failure * ((segments - 1) * full + math.expm1(last / m))


def _segment_count(useful_time_s: float, interval_s: float) -> int:
    # The same rule as the C++ model: whole segments of interval_s, a shorter last one.
    n = math.ceil(useful_time_s / interval_s)
    if n > 1 and (n - 1) * interval_s >= useful_time_s:
        n -= 1
    return max(n, 1)


# --- The model ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FailureClass:
    """One cause of failure: its rate per device and second, and the spare devices it takes."""

    name: str
    rate_per_device_s: float
    spare_devices: int = 1
    source: str = ""


def llama3_classes() -> tuple[FailureClass, ...]:
    """Table 5 of the Llama 3 paper as per-device rates: count / (16,384 GPUs x 54 days)."""
    exposure = LLAMA3_DEVICES * LLAMA3_DAYS * SECONDS_PER_DAY
    source = "Llama 3 (arXiv 2407.21783) Table 5: {n} of 419 in 54 days on 16,384 H100s"
    return tuple(
        FailureClass(
            name, count / exposure, _CATEGORY_SPARES.get(category, 0), source.format(n=count)
        )
        for name, category, count in LLAMA3_TABLE5
    )


def _default_classes() -> tuple[FailureClass, ...]:
    rate = DEFAULT_RATE_PER_DEVICE_DAY / SECONDS_PER_DAY
    return (FailureClass("device", rate, 1, "Llama 3: 419 / (16,384 GPUs x 54 days) [D]"),)


@dataclass(frozen=True)
class FailureModel:
    """A job's failure and checkpoint parameters. Times in seconds, rates per second.

    classes: per-device failure causes (default: one class at the Llama 3 H100 rate).
    checkpoint_interval_s: useful compute between checkpoints, or "auto" (Daly's optimum for
    the blocking cost; async: never shorter than the write, which has one staging buffer).
    checkpoint_async: the checkpoint blocks for checkpoint_snapshot_s only (default: the write
    time / ASYNC_STALL_REDUCTION); the write then runs in the background and the checkpoint
    counts only once it has landed.
    spares: spare devices (None: unlimited, the swap is part of restart_s). The pool is not
    refilled during a run; once it is short, a failure waits replacement_s for new hardware.
    """

    devices: int
    useful_time_s: float
    classes: tuple[FailureClass, ...] = field(default_factory=_default_classes)
    links: int = 0
    link_rate_per_s: float = 0.0
    checkpoint_interval_s: float | str = "auto"
    checkpoint_write_s: float = DEFAULT_CHECKPOINT_WRITE_S
    checkpoint_async: bool = False
    checkpoint_snapshot_s: float | None = None
    restart_s: float = DEFAULT_RESTART_S
    spares: int | None = None
    replacement_s: float = DEFAULT_REPLACEMENT_S
    deadline_s: float | None = None
    runs: int = DEFAULT_RUNS
    seed: int = 0

    def __post_init__(self) -> None:
        for name, spec in _MODEL_FIELDS.items():
            value = getattr(self, name)
            if value is not None or spec.default is not None:
                spec.check(value, f"failures.{spec.name}")
        check(len(self.classes) > 0, "failures.classes", self.classes, "at least one class")
        for c in self.classes:
            _RATE.check(c.rate_per_device_s, f"failures.classes[{c.name!r}].rate_per_device_s")
            _MODEL_FIELDS["devices"].check(
                max(c.spare_devices, 1) if isinstance(c.spare_devices, int) else c.spare_devices,
                f"failures.classes[{c.name!r}].spare_devices",
            )
        if self.link_rate_per_s > 0:
            check(
                self.links >= 1, "failures.links", self.links, "an integer >= 1 with link failures"
            )

    @classmethod
    def from_table(
        cls,
        table: dict[str, Any],
        devices: int,
        useful_time_s: float,
        *,
        links: int = 0,
        vendor: str | None = None,
    ) -> "FailureModel":
        """A model from a [failures] table as the scenario schema validated it (SI units).

        Without device_mtbf or failure_rate_per_device_day the rate is the Llama 3 H100 rate,
        except for vendors in NO_PUBLIC_FAILURE_RATE, which have no public figure: then it is
        an error that asks for the rate."""
        parsed = FAILURE_FIELDS.check(table, "failures")
        kwargs: dict[str, Any] = {"devices": devices, "useful_time_s": useful_time_s}
        if "device_mtbf" in parsed:
            rate = 1.0 / parsed["device_mtbf"]
            kwargs["classes"] = (FailureClass("device", rate, 1, "failures.device_mtbf"),)
        elif "failure_rate_per_device_day" in parsed:
            rate = parsed["failure_rate_per_device_day"] / SECONDS_PER_DAY
            kwargs["classes"] = (FailureClass("device", rate, 1, "failures.failure_rate"),)
        elif vendor is not None and vendor.lower() in NO_PUBLIC_FAILURE_RATE:
            raise SpecError(
                f"failures: no public per-device failure rate exists for {vendor} devices; "
                "give failures.device_mtbf or failures.failure_rate_per_device_day "
                "(a scenario assumption, e.g. a sweep around the H100 rate of 4.74e-4 per "
                "device-day)"
            )
        if "link_mtbf" in parsed:
            check(links >= 1, "failures.link_mtbf", table["link_mtbf"], "a cluster with links")
            kwargs["link_rate_per_s"] = 1.0 / parsed["link_mtbf"]
        renames = {
            "checkpoint_interval": "checkpoint_interval_s",
            "checkpoint_write": "checkpoint_write_s",
            "checkpoint_async": "checkpoint_async",
            "restart": "restart_s",
            "spares": "spares",
            "deadline": "deadline_s",
            "runs": "runs",
            "seed": "seed",
        }
        kwargs |= {renames[k]: v for k, v in parsed.items() if k in renames}
        return cls(links=links, **kwargs)

    @property
    def device_rate_per_s(self) -> float:
        """Failures per second of one device, every class together."""
        return math.fsum(c.rate_per_device_s for c in self.classes)

    @property
    def job_rate_per_s(self) -> float:
        """Failures per second of the whole job (devices and links)."""
        return self.devices * self.device_rate_per_s + self.links * self.link_rate_per_s

    @property
    def job_mtbf_s(self) -> float:
        """Mean time between failures of the whole job (inf without failures)."""
        rate = self.job_rate_per_s
        return math.inf if rate == 0 else 1.0 / rate

    @property
    def snapshot_s(self) -> float:
        """The blocking part of an asynchronous checkpoint."""
        if self.checkpoint_snapshot_s is not None:
            return self.checkpoint_snapshot_s
        return self.checkpoint_write_s / ASYNC_STALL_REDUCTION

    @property
    def blocking_checkpoint_s(self) -> float:
        """Wall time one checkpoint stops training for (without waits for an earlier write)."""
        return self.snapshot_s if self.checkpoint_async else self.checkpoint_write_s

    def interval_s(self) -> float:
        """The checkpoint interval in seconds, "auto" resolved: Daly's optimum for the blocking
        cost, for async never below the write time, and within [useful / 1e6, useful]."""
        if self.checkpoint_interval_s != "auto":
            return float(self.checkpoint_interval_s)
        tau = young_daly_interval(self.blocking_checkpoint_s, self.job_mtbf_s)
        if self.checkpoint_async:
            tau = max(tau, self.checkpoint_write_s)
        # A free checkpoint would make the optimum zero: keep the count of checkpoints finite.
        return min(max(tau, self.useful_time_s * 1e-6), self.useful_time_s)

    def failure_free_wall_s(self) -> float:
        """Wall time without failures (blocking checkpoint time included)."""
        segments = _segment_count(self.useful_time_s, self.interval_s())
        return self.useful_time_s + (segments - 1) * self.blocking_checkpoint_s

    def expected_goodput(self) -> float:
        """The first-order analytic goodput of this model (see expected_goodput)."""
        return expected_goodput(
            self.interval_s(), self.blocking_checkpoint_s, self.restart_s, self.job_mtbf_s
        )


def _check_int(name: str, value: object, low: int) -> None:
    Integer(name, "", low=low, high=2**63 - 1).check(value)


def _check_time(name: str, value: object, positive: bool) -> None:
    Number(name, "", low=0.0, high=math.inf, low_open=positive, unit="s").check(value)


# The Llama 3 record as a preset: 16,384 H100s, the Table 5 classes at their implied rates, and
# checkpoint and restart costs chosen in the published range (none is published for Llama 3):
# - write 33 s: 4 GB per GPU (the top of Llama 3's 1 MB-4 GB) x 16,384 GPUs at Tectonic's
#   2 TB/s sustained [C] = 32.8 s [D] (figures 1.1);
# - asynchronous, 6 s blocking snapshot: the 0.1 min "async" row of S2 (figures section 6);
# - restart 10 min (DEFAULT_RESTART_S).
# useful_time_s is the snapshot's 54 days; replace() it (and devices) for other jobs.
LLAMA3_H100 = FailureModel(
    devices=LLAMA3_DEVICES,
    useful_time_s=LLAMA3_DAYS * SECONDS_PER_DAY,
    classes=llama3_classes(),
    checkpoint_write_s=4e9 * LLAMA3_DEVICES / 2e12,
    checkpoint_async=True,
    checkpoint_snapshot_s=6.0,
    restart_s=DEFAULT_RESTART_S,
)

PRESETS: dict[str, FailureModel] = {"llama3-h100": LLAMA3_H100}


# --- The Monte Carlo ---------------------------------------------------------------------------


# Worker threads of the Monte Carlo: the default never exceeds MAX_DEFAULT_THREADS (the runs
# are short; more threads only cost memory and start-up), a given count at most MAX_THREADS.
MAX_DEFAULT_THREADS = 64
MAX_THREADS = 256
# A job whose expected wall time is beyond this many times its failure-free time never
# finishes in any useful sense: it is refused rather than simulated.
NEVER_FINISHES_RATIO = 1000.0
# What one Monte Carlo may simulate: runs, and work over all runs counted in failures (about
# 0.3 us each on one core) where a checkpoint counts CHECKPOINT_COST of one (about 0.07 us):
# at most ~30 s of one core. The Llama 3 405B scenario's 1,000 runs are 1.3e7.
MAX_MONTE_CARLO_RUNS = 1_000_000
MAX_MONTE_CARLO_EVENTS = 100_000_000
CHECKPOINT_COST = 0.25


def default_threads(runs: int) -> int:
    """Worker threads when none are given: the cores, at most one per run and at most
    MAX_DEFAULT_THREADS."""
    return max(1, min(os.cpu_count() or 1, runs, MAX_DEFAULT_THREADS))


def _duration(seconds: float) -> str:
    """A time as people say it: 225 s, 10 min, 8.4 h, 3.1 days, 8.4 years."""
    if not math.isfinite(seconds):
        return "forever"
    for unit, size, limit in (
        ("s", 1.0, 120.0),
        ("min", 60.0, 7200.0),
        ("h", 3600.0, 2 * SECONDS_PER_DAY),
        ("days", SECONDS_PER_DAY, 730 * SECONDS_PER_DAY),
    ):
        if seconds < limit:
            return f"{seconds / size:,.3g} {unit}"
    return f"{seconds / (365.25 * SECONDS_PER_DAY):,.3g} years"


def _expected_wall(model: FailureModel, useful_s: float, interval_s: float) -> float:
    """Daly's exact mean wall time of the job (blocking cost of a checkpoint, unlimited spares:
    limited spares only add waits); inf where it overflows."""
    try:
        return expected_wall_time(
            useful_s, interval_s, model.blocking_checkpoint_s, model.restart_s, model.job_mtbf_s
        )
    except OverflowError:
        return math.inf


def check_monte_carlo(
    model: FailureModel, interval_s: float, max_wall_s: float, window_s: float | None
) -> None:
    """Refuses, before anything runs, a job that never finishes (expected wall time beyond
    NEVER_FINISHES_RATIO x the failure-free time, Daly's exact model) and a Monte Carlo too
    large to simulate (runs, and the expected failures and checkpoints over all runs)."""
    mtbf = model.job_mtbf_s
    check(
        model.runs <= MAX_MONTE_CARLO_RUNS,
        "failures.runs",
        model.runs,
        f"an integer in [1, {MAX_MONTE_CARLO_RUNS:,}]",
    )
    why = (
        f"the job fails every {_duration(mtbf)} on average ({model.devices:,} devices), "
        f"a restart takes {_duration(model.restart_s)} and a checkpoint interval is "
        f"{_duration(interval_s)} of work"
    )
    expected = _expected_wall(model, model.useful_time_s, interval_s)
    free = model.failure_free_wall_s()
    if window_s is None and expected > NEVER_FINISHES_RATIO * free:
        ratio = "beyond" if not math.isfinite(expected) else f"{expected / free:,.3g}x"
        raise SpecError(
            f"never finishes: {why}; its expected wall time is {ratio} the failure-free "
            f"{_duration(free)} (Daly's exact model; podsim refuses beyond "
            f"{NEVER_FINISHES_RATIO:,.0f}x): give a longer device_mtbf or link_mtbf, a shorter "
            "restart or checkpoint_interval, or fewer devices"
        )
    simulated = min(expected, max_wall_s)
    failures = simulated / mtbf if math.isfinite(mtbf) else 0.0
    segments = _segment_count(model.useful_time_s, interval_s)
    events = model.runs * (failures + CHECKPOINT_COST * segments)
    if events > MAX_MONTE_CARLO_EVENTS:
        raise SpecError(
            f"the failures Monte Carlo would simulate about {model.runs * failures:,.3g} "
            f"failures and {model.runs * segments:,.3g} checkpoints ({model.runs:,} runs; "
            f"{why}); podsim simulates at most {MAX_MONTE_CARLO_EVENTS:,.3g} failures per Monte "
            f"Carlo, a checkpoint counting {CHECKPOINT_COST:g}: use fewer failures.runs or a "
            "longer checkpoint_interval"
        )


def monte_carlo(
    model: FailureModel,
    *,
    threads: int | None = None,
    window_s: float | None = None,
    max_wall_s: float | None = None,
) -> dict[str, Any]:
    """Simulate model.runs independent long runs (run r uses random key r) in C++: the
    per-run arrays and the parameters they ran with (podsim.long_run wraps them in a result).

    threads: worker threads (default: default_threads(runs), at most MAX_DEFAULT_THREADS; at
    most MAX_THREADS); the results are bit-identical for any count.
    window_s: simulate a fixed wall-clock window (e.g. the 54-day Llama 3 snapshot) instead of
    the whole job: the runs never finish early and goodput is useful work / window.
    max_wall_s: runs still unfinished here stop and count as unfinished (default: 100 x the
    failure-free wall time), so that a job that can never finish is reported, not waited for.
    A job that never finishes in practice, or a Monte Carlo too large, is refused up front
    (check_monte_carlo).
    """
    threads = default_threads(model.runs) if threads is None else threads
    _check_int("threads", threads, 1)
    check(threads <= MAX_THREADS, "threads", threads, f"an integer in [1, {MAX_THREADS}]")
    if window_s is not None:
        _check_time("window_s", window_s, positive=True)
        check(max_wall_s is None, "max_wall_s", max_wall_s, "None when window_s is given")
        # No job longer than the window can finish in it; the window is the whole run.
        model = replace(model, useful_time_s=window_s, deadline_s=None)
        max_wall_s = window_s
    interval = model.interval_s()
    if max_wall_s is None:
        max_wall_s = 100.0 * model.failure_free_wall_s()
    _check_time("max_wall_s", max_wall_s, positive=True)
    check_monte_carlo(model, interval, max_wall_s, window_s)
    raw = _core.long_runs(
        class_rates_per_s=np.array([c.rate_per_device_s for c in model.classes], dtype=np.float64),
        class_spare_devices=np.array([c.spare_devices for c in model.classes], dtype=np.int64),
        devices=model.devices,
        links=model.links,
        link_rate_per_s=model.link_rate_per_s,
        useful_time_s=model.useful_time_s,
        max_wall_s=max_wall_s,
        checkpoint_interval_s=interval,
        checkpoint_write_s=model.checkpoint_write_s,
        checkpoint_async=model.checkpoint_async,
        checkpoint_snapshot_s=model.snapshot_s,
        restart_s=model.restart_s,
        spares=-1 if model.spares is None else model.spares,
        replacement_s=model.replacement_s,
        seed=model.seed,
        runs=model.runs,
        threads=threads,
    )
    return {
        "model": model,
        "checkpoint_interval_s": interval,
        "max_wall_s": max_wall_s,
        "window_s": window_s,
        "threads": threads,
        **{k: v for k, v in raw.items() if k != "job_rate_per_s"},
    }
