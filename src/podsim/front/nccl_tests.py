"""nccl-tests' published all-reduce busbw on one DGX H100, reproduced by `podsim collective`.

The rows (src/podsim/data/collectives/nccl_tests_dgx_h100.json) are calibration rows: the nvls
algorithm's efficiency and start-up time were fitted on them from 16 MiB up
(tools/fit_nvls.py). Smaller messages run NCCL's LL/LL128 protocols, which podsim does not
model: their errors are reported, not fitted.
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
            )
        )
    return out
