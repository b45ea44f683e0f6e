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
from podsim.fields import Integer, IntList, Number, Table, check_all, fraction
from podsim.specs.chips import latency
from podsim.specs.clusters import MAX_DEVICES, Cluster

Z99 = 2.3263478740408408  # the standard normal's 99th percentile
MAX_CV = 10.0  # beyond this a lognormal's mean is carried by draws the run never sees
DEFAULT_STEPS = 100
# Steps of one noisy Monte Carlo: each is a whole simulated step, so this keeps a run within
# hours on the largest clusters.
MAX_STEPS = 100_000
MAX_SEED = 2**64 - 1  # the engine's counter-based generator takes a 64-bit key
MAX_SLOWDOWN = 1000.0

# [noise]: the one definition of its keys and bounds (the scenario schema uses it too).
NOISE_FIELDS = Table(
    "noise",
    "run-to-run variation: compute jitter, link latency jitter, slow devices",
    fields=(
        Integer("seed", "key of every random draw", 0, low=0, high=MAX_SEED),
        Number("compute_cv", "coefficient of variation of each compute op", 0.0, high=MAX_CV),
        latency(
            "link_latency_median",
            "median hop latency (default: the cluster's scale-out latency)",
            None,
        ),
        latency("link_latency_p99", "99th percentile of a hop's latency", None),
        fraction("straggler_fraction", "fraction of ranks drawn as slow devices", 0.0),
        IntList(
            "straggler_ranks",
            "ranks that are slow devices (each below the cluster's devices)",
            (),
            low=0,
            high=MAX_DEVICES - 1,
        ),
        Number(
            "straggler_slowdown",
            "how many times slower a slow device computes",
            1.0,
            low=1.0,
            high=MAX_SLOWDOWN,
        ),
        fraction("straggler_probability", "chance a slow device is slow in a step", 1.0),
        Integer("steps", "steps of the Monte Carlo", DEFAULT_STEPS, low=1, high=MAX_STEPS),
    ),
)
_FIELDS = NOISE_FIELDS.keys


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
        values = {name: getattr(self, name) for name in _FIELDS}
        check_all({k: v for k, v in values.items() if v is not None}, _FIELDS, "noise")
        median, p99 = self.link_latency_median, self.link_latency_p99
        if median is not None and p99 is not None:
            check(
                p99 >= median, "noise.link_latency_p99", p99, f">= link_latency_median ({median})"
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
