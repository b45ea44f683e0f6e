"""Long-run failure Monte Carlo benchmarks: 10,000 simulated 54-day Llama 3 jobs (16,384 H100s,
Table 5 failure classes, async checkpoints every ~6 min, 10 min restarts; the LLAMA3_H100
preset). Each checks its answer and prints the figures. Run: pytest benchmarks --benchmark-only.
"""

import time
from dataclasses import replace

import numpy as np
import pytest

from podsim import long_run
from podsim.engine.failures import LLAMA3_H100

RUNS = 10_000
MODEL = replace(LLAMA3_H100, runs=RUNS)


def check_and_report(result, label: str) -> None:
    summary = result.to_dict()
    assert result.runs == RUNS and summary["finished_fraction"] == 1.0
    assert summary["goodput"] > 0.9
    days = 86_400.0
    print(
        f"\n{label}: {RUNS:,} runs, {int(result.interruptions.sum()):,} failures, "
        f"{int((result.wall_s / result.checkpoint_interval_s).sum()):,} checkpoint intervals; "
        f"goodput {summary['goodput']:.4f} (first order {summary['expected_goodput']:.4f}), "
        f"interruptions {summary['interruptions']:.1f} per run, time to train "
        f"p50 {summary['time_to_train_p50_s'] / days:.2f} d, "
        f"p90 {summary['time_to_train_p90_s'] / days:.2f} d, "
        f"{summary['device_hours'] / 1e6:.2f} M device-hours"
    )


@pytest.mark.parametrize("threads", [1, 2])
def test_llama3_long_runs(benchmark, threads):
    result = benchmark.pedantic(long_run, (MODEL,), {"threads": threads}, rounds=3, iterations=1)
    check_and_report(result, f"{threads} thread(s)")
    benchmark.extra_info["runs"] = RUNS
    benchmark.extra_info["failures"] = int(result.interruptions.sum())


def test_thread_speedup(benchmark):
    # 1 and 2 threads alternate so that drifts of the machine's speed hit both alike; CPU time
    # shows what threading itself costs.
    def timed(threads: int) -> tuple[float, float, object]:
        cpu, wall = time.process_time(), time.perf_counter()
        result = long_run(MODEL, threads=threads)
        return time.perf_counter() - wall, time.process_time() - cpu, result

    rounds = [(timed(1), timed(2)) for _ in range(5)]
    one = min(r[0][0] for r in rounds)
    two = min(r[1][0] for r in rounds)
    cpu_one, cpu_two = min(r[0][1] for r in rounds), min(r[1][1] for r in rounds)
    assert np.array_equal(rounds[0][0][2].wall_s, rounds[0][1][2].wall_s)  # same bits
    benchmark.pedantic(long_run, (MODEL,), {"threads": 2}, rounds=1, iterations=1)
    benchmark.extra_info["wall_1_thread_s"] = one
    benchmark.extra_info["wall_2_threads_s"] = two
    benchmark.extra_info["speedup_2_threads"] = one / two
    print(
        f"\nbest of 5: 1 thread {one:.3f} s wall ({cpu_one:.3f} s CPU), 2 threads {two:.3f} s "
        f"wall ({cpu_two:.3f} s CPU): speed-up x{one / two:.2f}"
    )
