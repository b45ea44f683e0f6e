"""Run-to-run variation: compute jitter, link latency jitter and slow devices ([noise]).

- Each compute op takes its time times a lognormal factor of mean 1 and coefficient of
  variation `compute_cv`.
- Each hop's latency is the cluster's latency times a lognormal factor of median 1 whose 99th
  percentile is `link_latency_p99 / link_latency_median` (the median defaults to the cluster's
  scale-out latency). A collective's step waits for the slowest of its concurrent hops, drawn
  as one order statistic; one draw stretches all the steps of an instance alike.
- Slow devices: a fraction of ranks (drawn) or listed ranks run compute `straggler_slowdown`
  times slower, in each step with probability `straggler_probability` (1 = the whole run).

Every draw is a function of (seed, what, which op or rank, step): the same seed gives the same
numbers whatever the order of events.
"""

import math
from dataclasses import dataclass, field
from typing import Any

from podsim import _core
from podsim.errors import check
from podsim.specs.clusters import Cluster

Z99 = 2.3263478740408408  # the standard normal's 99th percentile
MAX_CV = 10.0  # beyond this a lognormal's mean is carried by draws the run never sees
DEFAULT_STEPS = 100


@dataclass(frozen=True)
class NoiseModel:
    seed: int = 0
    compute_cv: float = 0.0
    link_latency_median: float | None = None
    link_latency_p99: float | None = None
    straggler_fraction: float = 0.0
    straggler_ranks: tuple[int, ...] = field(default_factory=tuple)
    straggler_slowdown: float = 1.0
    straggler_probability: float = 1.0
    steps: int = DEFAULT_STEPS

    def __post_init__(self) -> None:
        check(
            0 <= self.compute_cv <= MAX_CV,
            "noise.compute_cv",
            self.compute_cv,
            f"in [0, {MAX_CV:g}]",
        )
        check(
            isinstance(self.steps, int) and self.steps >= 1,
            "noise.steps",
            self.steps,
            "an integer >= 1",
        )
        for name in ("link_latency_median", "link_latency_p99"):
            value = getattr(self, name)
            check(
                value is None or 0 <= value < 1.0, f"noise.{name}", value, "a latency in [0, 1) s"
            )

    @classmethod
    def from_table(cls, table: dict[str, Any]) -> "NoiseModel":
        """From a scenario's validated [noise] table (SI units)."""
        values = dict(table)
        if "straggler_ranks" in values:
            values["straggler_ranks"] = tuple(values["straggler_ranks"])
        return cls(**values)

    def latency_sigma(self, cluster: Cluster) -> float:
        """The log-space spread of a hop's latency factor."""
        if self.link_latency_p99 is None:
            return 0.0
        median = self.link_latency_median or cluster.scale_out_latency
        if median <= 0 or self.link_latency_p99 <= median:
            return 0.0
        return math.log(self.link_latency_p99 / median) / Z99

    def to_core(self, cluster: Cluster) -> "_core.Noise":
        return _core.Noise(
            self.seed,
            self.compute_cv,
            self.latency_sigma(cluster),
            self.straggler_fraction,
            list(self.straggler_ranks),
            self.straggler_slowdown,
            self.straggler_probability,
        )
