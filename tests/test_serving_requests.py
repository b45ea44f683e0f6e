"""The request simulator against queueing theory (fixed seeds, stated significance) and the
disaggregated pools."""

import math

import numpy as np
import pytest

from podsim.engine.requests import poisson_arrivals, simulate
from podsim.front.api import resolve_scenario, serve
from podsim.front.serve import with_serve

Z_999 = 3.29  # two-sided 99.9% normal quantile


def _constant(prefill_s: float, decode_s: float):
    return lambda seqs, context, tokens: (
        (prefill_s if tokens else 0.0) + (decode_s if seqs else 0.0)
    )


def test_md1_waiting_time_at_low_load():
    """One request at a time (max_batch 1), deterministic service D = prefill + (out - 1)
    decode steps: M/D/1, mean wait rho D / (2 (1 - rho)) (Pollaczek-Khinchine)."""
    n, out, pre, dec = 40_000, 5, 0.2, 0.1
    service = pre + (out - 1) * dec
    rate = 0.3 / service
    arrival = poisson_arrivals(rate, n, seed=7)
    ones = np.ones(n, np.int64)
    stats = simulate(arrival, 100 * ones, out * ones, 0 * ones, _constant(pre, dec), 1e9, 1)
    wait = stats.ttft_s - pre
    rho = rate * service
    expected = rho * service / (2 * (1 - rho))
    # Waits are autocorrelated: batch means over 40 blocks give the standard error.
    blocks = wait[: n // 40 * 40].reshape(40, -1).mean(axis=1)
    se = blocks.std(ddof=1) / math.sqrt(len(blocks))
    assert abs(wait.mean() - expected) <= Z_999 * se
    assert np.all(wait >= -1e-9)


def test_littles_law():
    n = 20_000
    arrival = poisson_arrivals(3.0, n, seed=3)
    ones = np.ones(n, np.int64)
    stats = simulate(arrival, 50 * ones, 20 * ones, 0 * ones, _constant(0.05, 0.02), 1e9, 8)
    sojourn = float(np.mean(stats.finish_s - arrival))
    lam = n / stats.finish_s.max()
    assert stats.mean_in_system == pytest.approx(lam * sojourn, rel=0.01)


def test_preemption_when_the_cache_runs_out_and_orca_never_preempts():
    n = 300
    arrival = np.zeros(n)
    ones = np.ones(n, np.int64)
    step = _constant(0.01, 0.01)
    vllm = simulate(arrival, 64 * ones, 200 * ones, 0 * ones, step, 64 * 40, 64)
    orca = simulate(arrival, 64 * ones, 200 * ones, 0 * ones, step, 64 * 40, 64, "orca")
    assert vllm.preemptions > 0 and orca.preemptions == 0
    for s in (vllm, orca):
        assert np.all(np.isfinite(s.finish_s))


def test_same_seed_same_bits():
    sc = resolve_scenario("llama3-70b-serve-h100")
    sc = with_serve(sc, phase="both", arrival_rate=4.0, requests=300, scheduler="sarathi")
    a, b = serve(sc).to_dict(), serve(sc).to_dict()
    assert a["ttft_p99_s"] == b["ttft_p99_s"] and a["tpot_p50_s"] == b["tpot_p50_s"]
    assert a["requests"]["goodput"] == b["requests"]["goodput"]


def test_disaggregated_pools_balance():
    sc = resolve_scenario("deepseek-r1-decode-cloudmatrix384")
    sc = with_serve(
        sc,
        decode_devices=160,
        input_len=4096,
        output_len=1024,
        prefill={"ep": 16, "dp": 16, "micro_batches": 2},
    )
    r = serve(sc).to_dict()
    d = r["disaggregation"]
    assert d["decode_devices"] == 160 and d["prefill_devices"] >= 16
    assert d["kv_transfer_s"] > 0 and r["ttft_s"] > d["kv_transfer_s"]
    assert d["balanced_prefill_per_decode_device"] > 0
