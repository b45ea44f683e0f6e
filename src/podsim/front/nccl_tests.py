"""nccl-tests' published all-reduce busbw on one DGX H100, reproduced by `podsim collective`.

The rows (src/podsim/data/collectives/nccl_tests_dgx_h100.json) are calibration rows: the nvls
algorithm's efficiency and start-up time were fitted on them from 16 MiB up, the LL protocol's
bandwidth fraction below (tools/fit_nvls.py). From 8 B to 256 KiB the source gives a band of
times (13-20 us), not one per size: `small_rows` times every power of two in it.
"""

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

from podsim.front.collective import collective
from podsim.specs.clusters import preset_cluster

DATA = "data/collectives/nccl_tests_dgx_h100.json"


@dataclass(frozen=True)
class Row:
    size_bytes: int
    published_busbw: float  # B/s
    predicted_busbw: float  # B/s
    algorithm: str  # what podsim's auto chose
    protocol: str  # and the protocol it ran

    @property
    def error(self) -> float:
        return self.predicted_busbw / self.published_busbw - 1


@cache
def case() -> dict:
    """The published case as stored (cluster, devices, op and rows)."""
    return json.loads(resources.files("podsim").joinpath(DATA).read_text(encoding="utf-8"))


def rows(network: str = "analytical") -> list[Row]:
    """Every published size, with what `podsim collective` gives for it (algorithm auto)."""
    data = case()
    cluster = preset_cluster(data["cluster"], data["devices"])
    out = []
    for row in data["rows"]:
        result = collective(cluster, data["op"], row["size_bytes"], network=network)
        out.append(
            Row(
                row["size_bytes"],
                row["busbw_GB_per_s"] * 1e9,
                result.busbw_bytes_per_s,
                result.algorithm,
                result.protocol,
            )
        )
    return out


@dataclass(frozen=True)
class SmallRow:
    size_bytes: int
    time_s: float  # podsim's
    algorithm: str
    protocol: str

    def error(self, low: float, high: float) -> float:
        """Relative distance to the published band [low, high] (s): 0 inside it."""
        if self.time_s < low:
            return self.time_s / low - 1
        return max(0.0, self.time_s / high - 1)


def small_band() -> tuple[float, float]:
    """The published band of times (s) from 8 B to 256 KiB."""
    low, high = case()["small_sizes"]["time_us"]
    return low * 1e-6, high * 1e-6


def small_rows(network: str = "analytical") -> list[SmallRow]:
    """Every power of two in the published small-size band, as `podsim collective` times it."""
    data = case()
    cluster = preset_cluster(data["cluster"], data["devices"])
    band = data["small_sizes"]
    out, size = [], band["from_bytes"]
    while size <= band["to_bytes"]:
        result = collective(cluster, data["op"], size, network=network)
        out.append(SmallRow(size, result.time_s, result.algorithm, result.protocol))
        size *= 2
    return out
