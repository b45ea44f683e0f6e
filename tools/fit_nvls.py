"""Fit the NVLS all-reduce's efficiency and start-up time on the nccl-tests calibration rows.

The rows: nccl-tests all_reduce_perf on one DGX H100 (src/podsim/data/collectives/
nccl_tests_dgx_h100.json), from 16 MiB up (smaller messages run NCCL's LL/LL128 protocols,
which podsim does not model). The model (docs/engine.md, "In-switch reduction"):

    t = launch_latency + nvls_latency + (n + 1) / n * S / (nvls_efficiency * scale_up_bandwidth)

is linear in (nvls_latency, 1 / nvls_efficiency), fitted by least squares on the relative
error of t. Rerun after a change to the model and copy the printed values into
DEFAULT_NVLS_EFFICIENCY and DEFAULT_NVLS_LATENCY of src/podsim/specs/clusters.py:

    PYTHONPATH=src python tools/fit_nvls.py
"""

import json
from importlib import resources

import numpy as np

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


if __name__ == "__main__":
    efficiency, latency = fit()
    print(f"DEFAULT_NVLS_EFFICIENCY = {efficiency:.3f}")
    print(f"DEFAULT_NVLS_LATENCY = {latency:.2e}  # s")
