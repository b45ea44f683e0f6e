"""Contention at scale (docs/engine.md, "Contention at scale"): a direct all-to-all in the
contention network on 1,024 to 16,384 ranks, its flows run as blocks. Each run checks its answer
against the hand-derived bound; the scaling is asserted as a ratio, not as a time. Run: pytest
benchmarks/test_bench_contention.py --benchmark-only -s."""

import resource

import pytest

from podsim import collective, make_cluster

RANKS = [1024, 4096, 16384]
POD, OVERSUBSCRIPTION = 256, 4
times: dict[int, float] = {}


def _cluster(ranks: int):
    """DGX H100 domains of 8 in pods of 256 behind 4:1 oversubscribed uplinks."""
    return make_cluster(
        "h100-sxm", ranks, domain_size=8, pod_size=POD, oversubscription=OVERSUBSCRIPTION
    )


@pytest.mark.parametrize("ranks", RANKS)
def test_all_to_all_in_contention_mode(benchmark, ranks):
    cluster = _cluster(ranks)
    result = benchmark.pedantic(
        collective, (cluster, "all-to-all", 2**30, "direct", "contention"), rounds=3, iterations=1
    )
    # The cross-pod flows share their pod uplink (less than a NIC's share): the analytical
    # network's pod-link charge is the same bound (tests/test_contention_scale.py derives it).
    analytical = collective(cluster, "all-to-all", 2**30, "direct", "analytical").time_s
    assert result.time_s == pytest.approx(analytical, rel=1e-9)
    times[ranks] = benchmark.stats.stats.mean
    flows = ranks * (ranks - 1)
    benchmark.extra_info["flows"] = flows
    benchmark.extra_info["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10
    print(f"\n{ranks} ranks, {flows:,} flows: {times[ranks]:.3f} s")
    if ranks == RANKS[-1] and RANKS[0] in times:
        # The flows grow 256-fold from 1,024 ranks; the blocks' member entries (about 2 x pods x
        # ranks, pods of 256) grow as much but start 128 times fewer: the time per flow falls.
        growth = times[ranks] / times[RANKS[0]]
        assert growth < flows / (RANKS[0] * (RANKS[0] - 1))
