"""Training-step benchmarks: every rank simulated. Wall time from pytest-benchmark; peak
resident memory of the process reported in extra_info. Each checks its answer."""

import resource

import pytest

import podsim


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@pytest.mark.parametrize(
    ("scenario", "devices"), [("llama3-405b-h100", 16384), ("deepseek-v3-h800", 2048)]
)
def test_training_step(benchmark, scenario, devices):
    result = benchmark.pedantic(podsim.train, (scenario,), rounds=2, iterations=1)
    assert result.devices == devices
    assert 0.2 < result.mfu < 0.8
    benchmark.extra_info["ops"] = result.ops
    benchmark.extra_info["peak_rss_bytes"] = peak_rss_bytes()
    print(
        f"\n{scenario}: {result.ops:,} ops, step {result.step_time_s:.2f} s simulated, "
        f"peak RSS {peak_rss_bytes() / 2**30:.2f} GiB"
    )
