"""Engine benchmarks (pytest-benchmark). Each also checks its answer; figures, not asserts on
time. Run: pytest benchmarks --benchmark-only."""

import time

import pytest
from programs import layered_program

from podsim import collective, preset_cluster, simulate
from podsim.engine.reference import Topology
from podsim.engine.reference import simulate as reference_simulate

RANKS = [1024, 16384, 100_000]  # 100,000 = 12,500 DGX nodes


@pytest.mark.parametrize("network", ["analytical", "contention"])
@pytest.mark.parametrize("ranks", RANKS)
def test_all_reduce_at_scale(benchmark, ranks, network):
    cluster = preset_cluster("dgx-h100", ranks)
    result = benchmark(collective, cluster, "all-reduce", 2**30, "ring", network)
    # Without other traffic both modes give the closed form.
    assert result.time_s == pytest.approx(
        collective(cluster, "all-reduce", 2**30, "ring", "analytical").time_s, rel=1e-9
    )


def test_million_op_program(benchmark):
    program = layered_program(ranks=1024, layers=350)  # 1,076,224 ops
    cluster = preset_cluster("dgx-h100", 1024)
    timeline = benchmark.pedantic(simulate, (program, cluster), rounds=3, iterations=1)
    assert program.num_ops > 1_000_000
    assert (timeline.end >= timeline.start).all()
    benchmark.extra_info["ops"] = program.num_ops


@pytest.mark.parametrize("network", ["analytical", "contention"])
def test_cpp_engine_against_python_reference(benchmark, network):
    program = layered_program(ranks=64, layers=40)  # 7,744 ops
    cluster = preset_cluster("dgx-h100", 64)
    started = time.perf_counter()
    reference = reference_simulate(program, Topology.from_cluster(cluster), network)
    python_s = time.perf_counter() - started
    timeline = benchmark(simulate, program, cluster, network)
    assert timeline.end == pytest.approx(reference[1], rel=1e-9)
    ratio = python_s / benchmark.stats.stats.mean
    benchmark.extra_info["python_reference_s"] = python_s
    benchmark.extra_info["speedup"] = ratio
    print(
        f"\n{network}: Python reference {python_s:.3f} s, C++ "
        f"{benchmark.stats.stats.mean * 1e3:.2f} ms, ratio {ratio:.0f}x"
    )
