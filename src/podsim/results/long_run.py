"""The result of a long run with failures: what the Monte Carlo measured, run by run, and its
summaries (goodput, time to train, interruptions)."""

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from podsim.engine.failures import FailureModel


@dataclass(frozen=True, eq=False)
class LongRunResult:
    """What the Monte Carlo measured, one entry per run (numpy arrays), and its summaries.

    window_s: set when the runs simulated a fixed wall-clock window rather than a whole job;
    then progress_s is the useful work done in the window and time to train is not defined.
    """

    model: FailureModel
    checkpoint_interval_s: float
    max_wall_s: float
    window_s: float | None
    threads: int
    wall_s: np.ndarray
    progress_s: np.ndarray
    interruptions: np.ndarray
    lost_s: np.ndarray
    checkpoint_s: np.ndarray
    restart_s: np.ndarray
    waiting_s: np.ndarray
    spares_used: np.ndarray
    finished: np.ndarray
    class_counts: np.ndarray  # runs x (classes + 1); the last column counts link failures

    @property
    def goodput(self) -> float:
        """Useful compute time / wall time over all runs (ratio of the sums). A run's progress
        never exceeds its wall time; summed in different orders they could differ in the last
        bit, so progress is capped at wall time run by run: with p <= w term by term the sums
        (same length, same pairwise order) and their ratio stay <= 1 in floating point."""
        return float(self._progress.sum() / self.wall_s.sum())

    @property
    def _progress(self) -> np.ndarray:
        return np.minimum(self.progress_s, self.wall_s)

    @property
    def goodput_stderr(self) -> float:
        """Standard error of goodput (delta method for a ratio of means)."""
        n = len(self.wall_s)
        if n < 2:
            return math.nan
        residual = self._progress - self.goodput * self.wall_s
        return float(np.sqrt(np.sum(residual**2) / (n * (n - 1))) / self.wall_s.mean())

    def time_to_train_s(self, q: float) -> float:
        """The q-quantile of wall time to finish the job (inf when over a fraction 1 - q of the
        runs did not finish within max_wall_s); nan for a fixed window."""
        if self.window_s is not None:
            return math.nan
        times = np.where(self.finished, self.wall_s, np.inf)
        return float(np.quantile(times, q, method="inverted_cdf"))

    @property
    def device_hours(self) -> float:
        """Mean devices x wall hours per run (spares not counted)."""
        return float(self.model.devices * self.wall_s.mean() / 3600.0)

    @property
    def deadline_probability(self) -> float | None:
        """Fraction of runs finished within the model's deadline (None without a deadline)."""
        if self.model.deadline_s is None or self.window_s is not None:
            return None
        return float(np.mean(self.finished & (self.wall_s <= self.model.deadline_s)))

    def interruptions_by_class(self) -> dict[str, float]:
        """Mean interruptions per run of each class (links last)."""
        names = [c.name for c in self.model.classes] + ["link"]
        means = self.class_counts.mean(axis=0)
        return {name: float(mean) for name, mean in zip(names, means, strict=True)}

    def to_dict(self) -> dict[str, Any]:
        """Summaries in SI units; a time that is not defined (no finish) is None."""
        out: dict[str, Any] = {
            "goodput": self.goodput,
            "goodput_stderr": self.goodput_stderr,
            "expected_goodput": self.expected_goodput,
            "interruptions": float(self.interruptions.mean()),
            "interruptions_std": float(self.interruptions.std(ddof=1)) if self.runs > 1 else 0.0,
            "time_to_train_p50_s": _finite_or_none(self.time_to_train_s(0.5)),
            "time_to_train_p90_s": _finite_or_none(self.time_to_train_s(0.9)),
            "time_to_train_mean_s": _finite_or_none(self._mean_time_to_train()),
            "checkpoint_interval_s": self.checkpoint_interval_s,
            "checkpoint_write_s": self.model.checkpoint_write_s,
            "device_hours": self.device_hours,
            "job_mtbf_s": _finite_or_none(self.model.job_mtbf_s),
            "lost_work_s": float(self.lost_s.mean()),
            "checkpoint_time_s": float(self.checkpoint_s.mean()),
            "restart_time_s": float(self.restart_s.mean()),
            "replacement_wait_s": float(self.waiting_s.mean()),
            "spares_used": float(self.spares_used.mean()),
            "finished_fraction": float(self.finished.mean()),
            "interruptions_by_class": self.interruptions_by_class(),
            "devices": self.model.devices,
            "runs": self.runs,
            "seed": self.model.seed,
        }
        if self.window_s is not None:
            out["window_s"] = self.window_s
        if self.deadline_probability is not None:
            out["deadline_s"] = self.model.deadline_s
            out["deadline_probability"] = self.deadline_probability
        return out

    @property
    def expected_goodput(self) -> float:
        """The first-order analytic goodput (podsim.engine.failures.expected_goodput), within
        [0, 1]: it estimates a fraction, and where its expansion in tau/M and R/M breaks down
        (restart plus half a segment beyond the job's MTBF) it goes negative; that means no
        useful progress to first order, reported as 0 (`goodput` is what was simulated)."""
        return min(1.0, max(0.0, self.model.expected_goodput()))

    @property
    def runs(self) -> int:
        return len(self.wall_s)

    def _mean_time_to_train(self) -> float:
        if self.window_s is not None:
            return math.nan
        return float(self.wall_s.mean()) if self.finished.all() else math.inf


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
