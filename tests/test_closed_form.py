"""The engine against textbook alpha-beta formulas (Thakur, Rabenseifner & Gropp 2005;
Sanders, Speck & Traff 2009 for two-tree), exact to 1e-9 in both network modes when nothing
competes for the links. a = path latency, b = seconds per byte, L = launch latency, S bytes."""

import math

import pytest
from conftest import LAUNCH, SO_BW, SO_LAT, SU_BW, SU_LAT, cluster

from podsim import collective
from podsim.results.collective import bus_factor

S = 3 * 2**20 + 12345.0  # an awkward size, so no formula is right by accident
MODES = ("analytical", "contention")


def ring(op: str, n: int, a: float, b: float) -> float:
    if op == "all-reduce":  # reduce-scatter then all-gather: 2(n-1) steps of S/n
        return 2 * (n - 1) * a + 2 * (n - 1) / n * S * b
    if op in ("broadcast", "reduce"):  # pipelined chain: n-1 hops, S streamed once
        return (n - 1) * a + S * b
    return (n - 1) * a + (n - 1) / n * S * b  # all-gather, reduce-scatter


def halving_doubling(op: str, n: int, a: float, b: float) -> float:
    rounds = 2 if op == "all-reduce" else 1  # Rabenseifner: reduce-scatter + all-gather
    return rounds * (math.log2(n) * a + (n - 1) / n * S * b)


def tree(op: str, n: int, a: float, b: float) -> float:
    if op == "all-reduce":  # two trees of S/2: reduce up, broadcast down, h = floor(log2 n)
        per_rank = S / 2 if n == 2 else S
        return 2 * math.floor(math.log2(n)) * a + 2 * per_rank * b
    return math.ceil(math.log2(n)) * (a + S * b)  # binomial tree: each step sends S


SINGLE_DOMAIN = [
    (op, algo, n, formula)
    for n in (2, 3, 4, 5, 8)
    for op, algo, formula in [
        ("all-reduce", "ring", ring),
        ("all-gather", "ring", ring),
        ("reduce-scatter", "ring", ring),
        ("broadcast", "ring", ring),
        ("reduce", "ring", ring),
        ("all-reduce", "tree", tree),
        ("broadcast", "tree", tree),
        ("reduce", "tree", tree),
        ("all-reduce", "halving-doubling", halving_doubling),
        ("all-gather", "halving-doubling", halving_doubling),
        ("reduce-scatter", "halving-doubling", halving_doubling),
    ]
    if algo != "halving-doubling" or n & (n - 1) == 0
]


@pytest.mark.parametrize("network", MODES)
@pytest.mark.parametrize(("op", "algorithm", "n", "formula"), SINGLE_DOMAIN)
def test_single_domain(op, algorithm, n, formula, network):
    result = collective(cluster(n, domain_size=8), op, S, algorithm, network)
    expected = LAUNCH + formula(op, n, SU_LAT, 1 / SU_BW)
    assert result.algorithm == algorithm
    assert result.time_s == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("network", MODES)
@pytest.mark.parametrize(
    ("op", "rounds"), [("all-reduce", 2), ("all-gather", 1), ("reduce-scatter", 1)]
)
def test_ring_across_domains_runs_one_channel_per_nic(op, rounds, network):
    # 16 ranks in 4 domains of g = 4: NCCL-style, g rings (channels) each carry 1/g of the
    # data; each member leaves its domain in one channel only. Per member, (g-1)/g of the
    # ring's bytes go over scale-up and 1/g over its NIC, at the same time.
    n, g = 16, 4
    ring_bytes = rounds * (n - 1) / n * S
    expected = (
        LAUNCH + rounds * (n - 1) * SO_LAT + ring_bytes * max((g - 1) / g / SU_BW, 1 / g / SO_BW)
    )
    result = collective(cluster(n, domain_size=g), op, S, "ring", network)
    assert result.time_s == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("network", MODES)
def test_ring_over_unbalanced_domains_is_bound_by_its_slowest_hop(network):
    # 12 ranks, domains of 8: 8 + 4 members, so no channels: one ring whose slowest hop is
    # a NIC (scale-out).
    result = collective(cluster(12, domain_size=8), "all-reduce", S, "ring", network)
    assert result.time_s == pytest.approx(
        LAUNCH + ring("all-reduce", 12, SO_LAT, 1 / SO_BW), rel=1e-9
    )


@pytest.mark.parametrize("network", MODES)
@pytest.mark.parametrize(
    ("op", "rounds"), [("all-reduce", 2), ("all-gather", 1), ("reduce-scatter", 1)]
)
def test_hierarchical(op, rounds, network):
    g, m = 4, 4  # 4 members per domain, 4 domains
    expected = (
        LAUNCH
        + rounds * ((g - 1) * SU_LAT + (g - 1) / g * S / SU_BW)
        + rounds * ((m - 1) * SO_LAT + (m - 1) / m * (S / g) / SO_BW)
    )
    result = collective(cluster(g * m, domain_size=g), op, S, "hierarchical", network)
    assert result.time_s == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("network", MODES)
def test_direct_all_to_all_across_domains(network):
    # 12 ranks, domains of 4: each rank sends 3 S/12 over scale-up and 8 S/12 over its NIC,
    # in parallel; the NIC side is slower. 11 latency steps of the slower path class.
    n = 12
    expected = LAUNCH + (n - 1) * SO_LAT + max(3 * S / n / SU_BW, 8 * S / n / SO_BW)
    result = collective(cluster(n, domain_size=4), "all-to-all", S, "direct", network)
    assert result.time_s == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("network", MODES)
@pytest.mark.parametrize(("domain_size", "a", "bw"), [(8, SU_LAT, SU_BW), (1, SO_LAT, SO_BW)])
def test_send_recv_ring(domain_size, a, bw, network):
    # Every rank sends S to the next and receives from the previous: one flow per link.
    result = collective(cluster(4, domain_size=domain_size), "send-recv", S, network=network)
    assert result.time_s == pytest.approx(LAUNCH + a + S / bw, rel=1e-9)


@pytest.mark.parametrize("n", [2, 8, 1000])
@pytest.mark.parametrize(
    ("op", "factor"),
    [
        ("all-reduce", lambda n: 2 * (n - 1) / n),
        ("all-gather", lambda n: (n - 1) / n),
        ("reduce-scatter", lambda n: (n - 1) / n),
        ("all-to-all", lambda n: (n - 1) / n),
        ("broadcast", lambda n: 1.0),
        ("reduce", lambda n: 1.0),
    ],
)
def test_nccl_tests_bus_bandwidth_factors(op, factor, n):
    assert bus_factor(op, n) == pytest.approx(factor(n), rel=1e-15)
    result = collective(cluster(n), op, S)
    assert result.algbw_bytes_per_s == pytest.approx(S / result.time_s, rel=1e-12)
    assert result.busbw_bytes_per_s == pytest.approx(result.algbw_bytes_per_s * factor(n))


def test_small_messages_are_latency_bound():
    # At 8 bytes the bandwidth term is negligible: time is launch + steps x latency.
    result = collective(cluster(8), "all-reduce", 8.0, "ring")
    assert result.time_s == pytest.approx(LAUNCH + 14 * SU_LAT, rel=1e-4)


def test_auto_picks_the_fastest_applicable_algorithm():
    c = cluster(64, domain_size=8)
    for size in (8.0, 2**16, 2**30):
        times = {
            algo: collective(c, "all-reduce", size, algo).time_s
            for algo in ("ring", "tree", "halving-doubling", "hierarchical")
        }
        auto = collective(c, "all-reduce", size)
        assert auto.time_s == min(times.values())
        assert times[auto.algorithm] == auto.time_s
