"""The nvls-tree all-reduce (NCCL's NVLSTree, docs/engine.md): nvls inside every domain, a double
binary tree of each shard across domains, pipelined; its closed form in both network modes, where
it applies, and that the NICs bound it."""

import pytest
from conftest import LAUNCH, SO_BW, SO_LAT, SU_BW, cluster

from podsim import collective
from podsim.specs.clusters import preset_cluster

S = 3 * 2**20 + 12345.0
START = 20e-6


def nvls_cluster(n: int, efficiency: float = 0.5, domain_size: int = 8):
    return cluster(
        n,
        domain_size=domain_size,
        in_network_reduction=True,
        nvls_efficiency=efficiency,
        nvls_latency=START,
    )


def expected(n: int, size: float, efficiency: float, g: int = 8) -> float:
    # start-up, 2 floor(log2 m) tree hops, then the slower of the switch ((g+1)/g S at the nvls
    # rate) and each NIC (its S/g shard twice, up and down the trees; once on 2 domains)
    m = n // g
    hops = 2 * (m.bit_length() - 1) * SO_LAT
    half = 0.5 if m == 2 else 1.0
    switch = (g + 1) / g * size / (efficiency * SU_BW)
    nic = 2 * half * size / g / SO_BW
    return LAUNCH + START + hops + max(switch, nic)


@pytest.mark.parametrize("network", ["analytical", "contention"])
@pytest.mark.parametrize("efficiency", [0.5, 1.0])
@pytest.mark.parametrize("n", [16, 32, 64])
def test_closed_form(n, efficiency, network):
    result = collective(nvls_cluster(n, efficiency), "all-reduce", S, "nvls-tree", network)
    assert result.algorithm == "nvls-tree"
    closed = expected(n, S, efficiency)
    if network == "analytical" or n == 16:
        assert result.time_s == pytest.approx(closed, rel=1e-9)
    else:  # a double binary tree's closed form charges every NIC its busiest one's load
        assert closed * 0.75 <= result.time_s <= closed * (1 + 1e-9)


def test_the_bound_moves_from_the_switch_to_the_nics():
    # 4 domains: the NIC carries 2 S/8 = S / 200 GB/s; the switch at 50% S / 178 GB/s, at
    # 100% S / 356 GB/s
    slow = collective(nvls_cluster(32, 0.5), "all-reduce", 1e12, "nvls-tree")
    fast = collective(nvls_cluster(32, 1.0), "all-reduce", 1e12, "nvls-tree")
    assert slow.algbw_bytes_per_s == pytest.approx(0.5 * SU_BW * 8 / 9, rel=1e-3)
    assert fast.algbw_bytes_per_s == pytest.approx(8 * SO_BW / 2, rel=1e-3)


def test_where_it_applies():
    with pytest.raises(Exception, match="nvls-tree cannot run all-reduce"):
        collective(nvls_cluster(8), "all-reduce", S, "nvls-tree")  # one domain: nvls
    with pytest.raises(Exception, match="nvls-tree cannot run all-reduce"):
        collective(cluster(16), "all-reduce", S, "nvls-tree")  # the switch does not reduce
    with pytest.raises(Exception, match="nvls-tree cannot run all-gather"):
        collective(nvls_cluster(16), "all-gather", S, "nvls-tree")
    with pytest.raises(Exception, match="nvls-tree cannot run all-reduce"):
        collective(nvls_cluster(16, domain_size=1), "all-reduce", S, "nvls-tree")


@pytest.mark.parametrize("nodes", [2, 4, 16])
def test_auto_takes_it_across_dgx_h100_nodes_and_the_nics_bound_it(nodes):
    # per member, the NIC moves at least 2(m-1)/m of its S/8 shard: no all-reduce across m
    # nodes beats 2(m-1)/m S / (8 x achieved NIC bandwidth)
    c = preset_cluster("dgx-h100", 8 * nodes)
    nic = c.scale_out_bandwidth * c.scale_out_efficiency
    assert collective(c, "all-reduce", 2**24).algorithm == "nvls-tree"
    for size in (2**20, 2**24, 2**30):
        result = collective(c, "all-reduce", size)
        others = [collective(c, "all-reduce", size, a).time_s for a in ("ring", "nvls-tree")]
        assert result.time_s == min(others)
        assert result.time_s >= 2 * (nodes - 1) / nodes * size / (8 * nic)
