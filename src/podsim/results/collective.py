"""The result of one collective, nccl-tests style: time, algbw and busbw."""

from dataclasses import asdict, dataclass
from typing import Any


def bus_factor(op: str, devices: int) -> float:
    """busbw / algbw as in nccl-tests doc/PERFORMANCE.md; 0 on one device, where no data
    crosses any link (nccl-tests would print size / launch latency for a broadcast)."""
    n = devices
    if n < 2:
        return 0.0
    if op == "all-reduce":
        return 2 * (n - 1) / n
    if op in ("all-gather", "reduce-scatter", "all-to-all"):
        return (n - 1) / n
    return 1.0


@dataclass(frozen=True)
class CollectiveResult:
    op: str
    devices: int
    size_bytes: float
    algorithm: str
    network: str
    time_s: float
    algbw_bytes_per_s: float
    busbw_bytes_per_s: float
    protocol: str = "simple"  # what the algorithm ran: ll, ll128 or simple (docs/engine.md)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
