"""Serving speed: an SLO search for DeepSeek-R1 decode on 320 H800 (the V3 report's decode
unit: TP4 attention x DP80, EP320) and the compiled request simulator's rate."""

import time

import numpy as np

from podsim.engine.requests import bucketed, poisson_arrivals, simulate, simulate_fast
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


def test_million_requests_under_ten_seconds():
    """One million requests through one attention rank (Sarathi chunked prefill, 512-token
    prompts, 64 output tokens, up to 256 sequences) with the compiled simulator: under 10 s
    (the design target), and on a sample the same TTFT and TPOT as the Python reference."""
    n = 1_000_000
    arrival = poisson_arrivals(50.0, n, seed=1)
    ones = np.ones(n, np.int64)
    step = lambda s, c, t: 0.004 + 0.00002 * s + 1e-6 * t  # noqa: E731
    start, cpu = time.perf_counter(), time.process_time()
    stats = simulate_fast(arrival, 512 * ones, 64 * ones, 0 * ones, step, 1e8, 256, "sarathi")
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"1M requests: {cpu:.2f} s CPU, {elapsed:.2f} s wall, {stats.iterations:,} iterations")
    assert np.all(np.isfinite(stats.finish_s)) and np.all(stats.ttft_s > 0)
    # The run is single-threaded: its CPU time is its wall time on an idle machine. On a shared
    # one (CI, several jobs on 2 cores) the wall time measures the neighbours, so the target is
    # held on the CPU time.
    assert cpu < 10.0
    k = 5_000  # the reference on the first requests (arrivals are Poisson: a prefix is a run)
    ref = simulate(
        arrival[:k],
        512 * ones[:k],
        64 * ones[:k],
        0 * ones[:k],
        bucketed(step),
        1e8,
        256,
        "sarathi",
    )
    fast = simulate_fast(
        arrival[:k], 512 * ones[:k], 64 * ones[:k], 0 * ones[:k], step, 1e8, 256, "sarathi"
    )
    assert np.array_equal(ref.ttft_s, fast.ttft_s) and np.array_equal(ref.tpot_s, fast.tpot_s)
