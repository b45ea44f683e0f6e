"""Fit the NVLS all-reduce's efficiency and start-up time, and the LL protocol's bandwidth
fraction, on the nccl-tests calibration rows.

The rows: nccl-tests all_reduce_perf on one DGX H100 (src/podsim/data/collectives/
nccl_tests_dgx_h100.json). NVLS from 16 MiB up; below, NCCL runs rings under its LL protocol
(docs/engine.md, "Protocols"), whose bandwidth fraction is fitted on the rows below 16 MiB.
The NVLS model (docs/engine.md, "In-switch reduction"):

    t = launch_latency + nvls_latency + (n + 1) / n * S / (nvls_efficiency * scale_up_bandwidth)

is linear in (nvls_latency, 1 / nvls_efficiency), fitted by least squares on the relative
error of t. The LL ring's time is its latency (NCCL's constants) plus its Simple bandwidth term
over the fraction LL delivers: linear in 1 / fraction, fitted the same way. Rerun after a change
to the model and copy the printed values into DEFAULT_NVLS_EFFICIENCY and DEFAULT_NVLS_LATENCY
of src/podsim/specs/clusters.py, and into kLLEfficiency (cpp/src/collectives.cpp) and
LL_EFFICIENCY (src/podsim/engine/reference/collectives.py):

    PYTHONPATH=src python tools/fit_nvls.py
"""

import json
from importlib import resources

import numpy as np

from podsim.engine.reference.collectives import LL_EFFICIENCY
from podsim.front.collective import collective
from podsim.results.collective import bus_factor
from podsim.specs.clusters import preset_cluster

SMALLEST = 16 * 2**20  # bytes: the fit's lower bound


def rows() -> dict:
    path = resources.files("podsim").joinpath("data/collectives/nccl_tests_dgx_h100.json")
    return json.loads(path.read_text(encoding="utf-8"))


def fit() -> tuple[float, float]:
    """(nvls_efficiency, nvls_latency in s)."""
    case = rows()
    cluster = preset_cluster(case["cluster"], case["devices"])
    n = case["devices"]
    sizes = np.array([r["size_bytes"] for r in case["rows"] if r["size_bytes"] >= SMALLEST])
    busbw = np.array([r["busbw_GB_per_s"] for r in case["rows"] if r["size_bytes"] >= SMALLEST])
    times = sizes / (busbw * 1e9 / bus_factor(case["op"], n))
    # t - launch = a + x * (n+1)/n S / B, rows weighted by 1/t (relative error)
    design = np.column_stack(
        [np.ones_like(sizes), (n + 1) / n * sizes / cluster.scale_up_bandwidth]
    )
    target = times - cluster.launch_latency
    weights = 1.0 / times
    (latency, inverse), *_ = np.linalg.lstsq(
        design * weights[:, None], target * weights, rcond=None
    )
    return 1.0 / inverse, latency


def fit_ll() -> float:
    """The LL protocol's bandwidth fraction, on the rows below SMALLEST (ring, LL)."""
    case = rows()
    cluster = preset_cluster(case["cluster"], case["devices"])
    n = case["devices"]
    small = [r for r in case["rows"] if r["size_bytes"] < SMALLEST]
    sizes = np.array([r["size_bytes"] for r in small], dtype=float)
    busbw = np.array([r["busbw_GB_per_s"] for r in small])
    times = sizes / (busbw * 1e9 / bus_factor(case["op"], n))

    def ll(size: float) -> float:
        return collective(cluster, case["op"], size, "ring", protocol="ll").time_s

    latency = ll(1.0)
    # the Simple bandwidth term per unit of 1 / fraction, from the current constant
    simple = np.array([(ll(s) - latency) * LL_EFFICIENCY for s in sizes])
    weights = 1.0 / times
    (inverse,), *_ = np.linalg.lstsq(
        (simple * weights)[:, None], (times - latency) * weights, rcond=None
    )
    return 1.0 / inverse


if __name__ == "__main__":
    print(f"LL_EFFICIENCY = {fit_ll():.3f}  # kLLEfficiency in cpp/src/collectives.cpp")
    efficiency, latency = fit()
    print(f"DEFAULT_NVLS_EFFICIENCY = {efficiency:.3f}")
    print(f"DEFAULT_NVLS_LATENCY = {latency:.2e}  # s")
