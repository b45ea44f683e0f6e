"""Monte Carlo over noisy steps: 1,000 steps of a 16,384-rank job with compute jitter, latency
tails and slow devices (each step a full engine run)."""

import numpy as np
from programs import layered_program

from podsim import preset_cluster
from podsim.engine.core import simulate_steps
from podsim.engine.noise import NoiseModel


def test_thousand_noisy_steps_of_16k_ranks(benchmark):
    program = layered_program(ranks=16384, layers=2)  # 114,688 ops per step
    cluster = preset_cluster("dgx-h100", 16384)
    noise = NoiseModel(
        seed=1,
        compute_cv=0.05,
        link_latency_p99=30e-6,
        straggler_fraction=1e-3,
        straggler_slowdown=1.3,
    )
    times = benchmark.pedantic(
        simulate_steps, (program, cluster, "analytical", noise, 1000), rounds=1, iterations=1
    )
    assert len(times) == 1000 and times.min() > 0
    benchmark.extra_info["ops_per_step"] = program.num_ops
    benchmark.extra_info["p99_over_p50"] = float(np.percentile(times, 99) / np.median(times))
