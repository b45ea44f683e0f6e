"""Serving speed: an SLO search for DeepSeek-R1 decode on 320 H800 (the V3 report's decode
unit: TP4 attention x DP80, EP320) and the request simulator's rate."""

import time

import numpy as np
import pytest

from podsim.engine.requests import poisson_arrivals, simulate
from podsim.front.serve import Server
from podsim.plans.serving import serve_plan_from_table
from podsim.specs.clusters import preset_cluster
from podsim.specs.models import get_model


def test_slo_search_deepseek_r1_decode_320(benchmark):
    plan = serve_plan_from_table(
        {
            "tp": 4,
            "dp": 80,
            "ep": 320,
            "precision": "fp8",
            "micro_batches": 2,
            "context_len": 4096,
            "redundant_experts": 64,
            "mtp": {"depth": 1, "acceptance": 0.85},
            "max_batch": 1024,
        }
    )

    def search():
        server = Server(get_model("deepseek-v3"), plan, preset_cluster("hgx-h800", 320))
        return server.best_decode(0.05)

    best = benchmark(search)
    assert best is None or best.tpot_s <= 0.05


@pytest.mark.xfail(
    reason="the 1M-requests-in-10-s target needs the compiled request loop (not done)"
)
def test_million_requests_under_ten_seconds():
    n = 1_000_000
    arrival = poisson_arrivals(50.0, n, seed=1)
    ones = np.ones(n, np.int64)
    step = lambda s, c, t: 0.004 + 0.00002 * s + 1e-6 * t  # noqa: E731
    start = time.perf_counter()
    stats = simulate(arrival, 512 * ones, 64 * ones, 0 * ones, step, 1e8, 256, "sarathi")
    assert np.all(np.isfinite(stats.finish_s))
    assert time.perf_counter() - start < 10.0
