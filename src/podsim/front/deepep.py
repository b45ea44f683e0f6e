"""DeepEP's published all-to-all rows reproduced, and the two parameters fitted on them.

Source: deepseek-ai/DeepEP, docs/legacy.md ("DeepEP V1"), measured on H800 (NVLink about
160 GB/s achievable) with one ConnectX-7 400 Gb/s InfiniBand NIC per GPU; the byte counts
follow DeepEP's own tests (tests/legacy/test_low_latency.py, test_internode.py).

- Low-latency kernels (calibration rows for `message_overhead`): 128 tokens per rank, hidden
  7168, top-8 of 256 experts, FP8 dispatch (7168 + 56 x 4 scale + 16 header bytes per token)
  and BF16 combine; one message per (token, expert); published: latency per kernel.
- Normal kernels (calibration rows for `forward_efficiency`): 4,096 tokens, hidden 7168, top-8
  of 256 experts within the top min(nodes, 4) nodes, FP8 dispatch / BF16 combine; published:
  "logical" bandwidth: bytes of one copy per (token, destination node) over the time
  (intranode: bytes received per rank).

Everything else about these rows is the cluster's physics: link bandwidths at the cluster's
80% efficiency, DeepSeek's measured latencies, and the routing statistics of DeepEP's test,
recomputed here with the same gating (seeded). Run `python -m podsim.front.deepep` to refit.
"""

import sys
from dataclasses import dataclass, replace
from functools import cache

import numpy as np

from podsim.engine.core import collective_time
from podsim.lowering.program import Algorithm, Collective
from podsim.specs.clusters import Cluster, preset_cluster

HIDDEN, EXPERTS, TOP_K = 7168, 256, 8
FP8_TOKEN = HIDDEN + HIDDEN // 128 * 4 + 16  # DeepEP low-latency message: data, scales, header
FP8_NORMAL_TOKEN = HIDDEN * (1 + 4 / 128)  # DeepEP normal kernels: data and scales
BF16_TOKEN = 2 * HIDDEN
LL_TOKENS, NORMAL_TOKENS = 128, 4096

# (EP, dispatch latency s, combine latency s)
LOW_LATENCY = (
    (8, 77e-6, 114e-6),
    (16, 118e-6, 195e-6),
    (32, 155e-6, 273e-6),
    (64, 173e-6, 314e-6),
    (128, 192e-6, 369e-6),
    (256, 194e-6, 360e-6),
)
# (EP, dispatch bandwidth B/s, combine bandwidth B/s), after DeepEP PR #130 (April 2025)
NORMAL = (
    (8, 153e9, 158e9),
    (16, 43e9, 43e9),
    (32, 58e9, 57e9),
    (64, 51e9, 50e9),
)


@dataclass(frozen=True)
class Row:
    kernel: str  # "low-latency" | "normal"
    phase: str  # "dispatch" | "combine"
    ep: int
    metric: str  # "time_s" | "bandwidth_bytes_per_s"
    published: float
    predicted: float

    @property
    def error(self) -> float:
        return self.predicted / self.published - 1


def cluster(ep: int, **overrides) -> Cluster:
    return replace(preset_cluster("hgx-h800", ep), **overrides)


@cache
def routing(ep: int, tokens: int = NORMAL_TOKENS, seed: int = 0) -> tuple[float, float]:
    """Mean distinct ranks and distinct nodes per token under the gating of DeepEP's
    test_internode.py: scores |N(0,1)|+1 (here uniform in [1, 2): only the order matters),
    the top min(nodes, 4) nodes by their best expert, then the top-8 experts among them."""
    rng = np.random.default_rng(seed)
    nodes, per_node = max(1, ep // 8), min(8, ep)
    scores = rng.random((tokens, EXPERTS)) + 1
    if nodes > 1:
        best = scores.reshape(tokens, nodes, -1).max(axis=-1)
        chosen = np.argsort(-best, axis=1)[:, : min(nodes, 4)]
        keep = np.zeros((tokens, nodes), bool)
        np.put_along_axis(keep, chosen, True, axis=1)
        scores = np.where(np.repeat(keep, EXPERTS // nodes, axis=1), scores, -1.0)
    top = np.argsort(-scores, axis=1)[:, :TOP_K]
    ranks = top // (EXPERTS // ep)
    distinct = lambda x: np.mean([len(set(row)) for row in x.tolist()])  # noqa: E731
    return float(distinct(ranks)), float(distinct(ranks // per_node))


def _time(c: Cluster, algorithm: str, nbytes: float, message: float, fanout: float) -> float:
    ranks = np.arange(c.devices, dtype=np.int32)
    code, op = int(Algorithm.parse(algorithm)), int(Collective.ALL_TO_ALL)
    return collective_time(c, op, code, ranks, nbytes, message, fanout)[1]


def low_latency_rows(**overrides) -> list[Row]:
    rows = []
    for ep, dispatch, combine in LOW_LATENCY:
        c = cluster(ep, **overrides)
        for phase, token, published in (
            ("dispatch", FP8_TOKEN, dispatch),
            ("combine", BF16_TOKEN, combine),
        ):
            nbytes = LL_TOKENS * TOP_K * token  # one message per (token, expert)
            t = _time(c, "low-latency", nbytes, token, 1.0)
            rows.append(Row("low-latency", phase, ep, "time_s", published, t))
    return rows


def normal_rows(**overrides) -> list[Row]:
    rows = []
    for ep, dispatch, combine in NORMAL:
        c = cluster(ep, **overrides)
        ranks, nodes = routing(ep)
        for phase, token, published in (
            ("dispatch", FP8_NORMAL_TOKEN, dispatch),
            ("combine", BF16_TOKEN, combine),
        ):
            nbytes = NORMAL_TOKENS * ranks * token  # one copy per (token, destination rank)
            t = _time(c, "node-forwarded", nbytes, token, ranks / nodes)
            logical = NORMAL_TOKENS * (nodes if ep > 8 else ranks) * token
            rows.append(Row("normal", phase, ep, "bandwidth_bytes_per_s", published, logical / t))
    return rows


def _rms_log(rows: list[Row]) -> float:
    return float(np.sqrt(np.mean([np.log(r.predicted / r.published) ** 2 for r in rows])))


def fit() -> dict[str, float]:
    """The least-squares (in log error) values of the two fitted parameters, each on its own
    rows: message_overhead on the low-latency rows, forward_efficiency on the normal rows."""
    overheads = np.arange(0.0, 100.5e-9, 0.5e-9)
    overhead = min(overheads, key=lambda o: _rms_log(low_latency_rows(message_overhead=o)))
    efficiencies = np.round(np.arange(0.50, 1.0001, 0.005), 3)
    efficiency = min(efficiencies, key=lambda e: _rms_log(normal_rows(forward_efficiency=e)))
    return {"message_overhead": float(overhead), "forward_efficiency": float(round(efficiency, 3))}


def main() -> int:
    fitted = fit()
    print(
        f"fitted: message_overhead = {fitted['message_overhead'] * 1e9:.1f} ns, "
        f"forward_efficiency = {fitted['forward_efficiency']:.3f}"
    )
    for row in low_latency_rows() + normal_rows():
        scale, unit = (1e6, "us") if row.metric == "time_s" else (1e-9, "GB/s")
        print(
            f"{row.kernel:12} {row.phase:9} EP{row.ep:<4} published {row.published * scale:7.1f} "
            f"{unit:5} predicted {row.predicted * scale:7.1f} {unit:5} error {row.error:+.1%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
