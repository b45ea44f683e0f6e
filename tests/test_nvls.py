"""The nvls all-reduce (in-switch reduction, docs/engine.md): its closed form in both network
modes, where it applies, and where `auto` switches to it."""

import pytest
from conftest import LAUNCH, SU_BW, cluster

from podsim import collective
from podsim.errors import SpecError
from podsim.front.api import resolve_scenario
from podsim.front.chipswap import swap_chip
from podsim.specs.clusters import preset_cluster

S = 3 * 2**20 + 12345.0
EFFICIENCY, START = 0.5, 20e-6


def nvls_cluster(n: int, **overrides):
    return cluster(
        n,
        domain_size=8,
        in_network_reduction=True,
        nvls_efficiency=EFFICIENCY,
        nvls_latency=START,
        **overrides,
    )


def nvls_time(n: int, size: float) -> float:
    # each member's S up to the switch and back, plus its own 1/n shard: (n+1)/n S per link
    return LAUNCH + START + (n + 1) / n * size / (EFFICIENCY * SU_BW)


@pytest.mark.parametrize("network", ["analytical", "contention"])
@pytest.mark.parametrize("n", [2, 3, 8])
def test_closed_form(n, network):
    result = collective(nvls_cluster(n), "all-reduce", S, "nvls", network)
    assert result.algorithm == "nvls"
    assert result.time_s == pytest.approx(nvls_time(n, S), rel=1e-9)


def test_busbw_tends_to_twice_the_link_share_for_large_n():
    # nccl-tests' 2(n-1)/n factor on algbw = n/(n+1) x link: busbw = 2(n-1)/(n+1) x link
    n, size = 8, 1e12
    result = collective(nvls_cluster(n), "all-reduce", size, "nvls")
    expected = 2 * (n - 1) / (n + 1) * EFFICIENCY * SU_BW
    assert result.busbw_bytes_per_s == pytest.approx(expected, rel=1e-4)  # start-up: 5e-6


def test_auto_switches_to_nvls_once_the_bytes_cost_its_start_up():
    n = 8
    switch = START * EFFICIENCY * SU_BW * n / (n + 1)  # bytes where the two terms are equal
    c = nvls_cluster(n)
    assert collective(c, "all-reduce", switch * 1.01).algorithm == "nvls"
    below = collective(c, "all-reduce", switch * 0.5)
    assert below.algorithm != "nvls"
    others = [
        collective(c, "all-reduce", switch * 0.5, a).time_s
        for a in ("ring", "tree", "halving-doubling")
    ]
    assert below.time_s == min(others)


def test_nvls_is_all_reduce_in_one_reducing_switch_only():
    with pytest.raises(Exception, match="nvls cannot run all-gather"):
        collective(nvls_cluster(8), "all-gather", S, "nvls")
    with pytest.raises(Exception, match="nvls cannot run all-reduce"):
        collective(nvls_cluster(16), "all-reduce", S, "nvls")  # two domains
    with pytest.raises(Exception, match="nvls cannot run all-reduce"):
        collective(cluster(8), "all-reduce", S, "nvls")  # the switch does not reduce
    for preset in ("hgx-h800", "atlas-800t-a2", "mi300x-platform", "dgx-a100"):
        assert not preset_cluster(preset).nvls_enabled, preset
    assert preset_cluster("dgx-h100").nvls_enabled


def test_a_mesh_cannot_reduce_in_a_switch():
    with pytest.raises(SpecError, match="in_network_reduction = True is not allowed"):
        cluster(8, scale_up_topology="full_mesh", in_network_reduction=True)


def test_without_in_network_reduction_nothing_changes():
    # the nvls fields alone change no other algorithm's time
    plain, tuned = cluster(8), cluster(8, nvls_efficiency=0.3, nvls_latency=1e-3)
    for size in (8.0, S, 1e9):
        assert collective(plain, "all-reduce", size) == collective(tuned, "all-reduce", size)


def test_compare_keeps_in_switch_reduction_for_the_same_chip_only():
    base = resolve_scenario("deepseek-v3-prefill-sglang-h100")
    assert base.cluster.nvls_enabled
    same = swap_chip(base, "h100-sxm")
    assert same.scenario.cluster.topology() == base.cluster.topology()
    other = swap_chip(base, "mi300x")
    assert not other.scenario.cluster.nvls_enabled
    assert "in-switch reduction off (mi300x's own scale-up)" in other.changes
    # NCCL's protocols stay with NVIDIA chips; another vendor's library runs simple
    assert swap_chip(base, "b200").scenario.cluster.protocol == "auto"
    assert other.scenario.cluster.protocol == "simple"
    assert "protocol auto -> simple (mi300x's own collective library)" in other.changes
