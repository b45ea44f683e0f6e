"""The nccl-tree all-reduce (NCCL's Tree, docs/engine.md): a chain inside every domain and a
double binary tree across domains, pipelined by chunks, under NCCL's protocols; its closed form in
both network modes, where it applies, its protocols, and that the NICs bound it."""

import pytest
from conftest import LAUNCH, SO_BW, SO_LAT, SU_BW, SU_LAT, cluster

from podsim import collective
from podsim.specs.clusters import preset_cluster

S = 3 * 2**20 + 12345.0

# NCCL's tree tuner (src/graph/tuning.cc), against the ring's Simple: base latency, hop latency
# over NVLink and over the network, and the bandwidth fraction each protocol delivers.
BASE = {"ll": 6.8, "ll128": 14.0, "simple": 8.4}
NVLINK = {"ll": 0.6, "ll128": 1.25, "simple": 4.0}
NET = {"ll": 5.0, "ll128": 8.5, "simple": 14.0}
SHARE = {"ll": 0.92 / 3.8, "ll128": 0.92 * 120 / 128, "simple": 0.92}


def expected(n: int, size: float, protocol: str, g: int = 8) -> float:
    # 2(g-1) chain hops and 2 floor(log2 m) tree hops; then the slower of each member's
    # scale-up links (2(g-1)/g S: every chain but its own reaches it up and down) and its NIC
    # (its S/g shard up and down the trees; once on 2 domains)
    m = n // g
    hops = 2 * (g - 1) * SU_LAT * NVLINK[protocol] / 3.4
    hops += 2 * (m.bit_length() - 1) * SO_LAT * NET[protocol] / 14.0
    latency = max(0.0, LAUNCH * (BASE[protocol] / 8.4 - 1) + hops)
    half = 0.5 if m == 2 else 1.0
    scale_up = 2 * (g - 1) / g * size / SU_BW
    nic = 2 * half * size / g / SO_BW
    return LAUNCH + latency + max(scale_up, nic) / SHARE[protocol]


@pytest.mark.parametrize("network", ["analytical", "contention"])
@pytest.mark.parametrize("protocol", ["ll", "ll128", "simple"])
@pytest.mark.parametrize(("n", "g"), [(16, 8), (32, 8), (64, 8), (8, 1), (12, 4)])
def test_closed_form(n, g, protocol, network):
    c = cluster(n, domain_size=g, protocol=protocol)
    result = collective(c, "all-reduce", S, "nccl-tree", network)
    assert (result.algorithm, result.protocol) == ("nccl-tree", protocol)
    closed = expected(n, S, protocol, g)
    if network == "analytical" or n // g == 2:
        assert result.time_s == pytest.approx(closed, rel=1e-9)
    else:  # a double binary tree's closed form charges every NIC its busiest one's load
        assert closed * 0.75 <= result.time_s <= closed * (1 + 1e-9)


def test_nics_or_scale_up_bound_it():
    # 4 nodes of 8: the NIC carries 2 S/8 at 50 GB/s (S / 100 GB/s), the scale-up links 7/4 S
    # at 400 GB/s (S / 229 GB/s): NIC-bound at 0.92 of it
    big = collective(cluster(32), "all-reduce", 1e12, "nccl-tree")
    assert big.algbw_bytes_per_s == pytest.approx(0.92 * 8 * SO_BW / 2, rel=1e-3)
    # 8 nodes of 2 with fast NICs: the scale-up links (S at 400 GB/s) bound it
    fast = cluster(16, domain_size=2, scale_out_bandwidth=1e12)
    result = collective(fast, "all-reduce", 1e12, "nccl-tree")
    assert result.algbw_bytes_per_s == pytest.approx(0.92 * SU_BW, rel=1e-3)


def test_where_it_applies():
    with pytest.raises(Exception, match="nccl-tree cannot run all-reduce"):
        collective(cluster(8), "all-reduce", S, "nccl-tree")  # one domain
    with pytest.raises(Exception, match="nccl-tree cannot run all-gather"):
        collective(cluster(16), "all-gather", S, "nccl-tree")


def test_auto_protocol_takes_the_fastest():
    c = cluster(32, protocol="auto")
    chosen = []
    for size in (8.0, 1e5, 1e6, 1e9):
        times = {p: expected(32, size, p) for p in SHARE}
        result = collective(c, "all-reduce", size, "nccl-tree")
        assert result.protocol == min(times, key=times.get)
        assert result.time_s == pytest.approx(min(times.values()), rel=1e-9)
        chosen.append(result.protocol)
    assert chosen[0] == "ll" and chosen[-1] == "simple"


@pytest.mark.parametrize("nodes", [2, 4, 16])
def test_dgx_h100_nodes_auto_never_takes_it_and_the_nics_bound_it(nodes):
    # per member, the NIC moves at least 2(m-1)/m of its S/8 shard: no all-reduce across m
    # nodes beats 2(m-1)/m S / (8 x achieved NIC bandwidth)
    c = preset_cluster("dgx-h100", 8 * nodes)
    nic = c.scale_out_bandwidth * c.scale_out_efficiency
    for size in (2**10, 2**20, 2**24, 2**30):
        tree = collective(c, "all-reduce", size, "nccl-tree")
        assert tree.time_s >= 2 * (nodes - 1) / nodes * size / (8 * nic)
        assert collective(c, "all-reduce", size).algorithm != "nccl-tree"


@pytest.mark.parametrize("nodes", [2, 4, 16])
def test_on_dgx_h100_nodes_it_beats_auto_up_to_16_mib(nodes):
    # the docs' claim (docs/engine.md, "NCCL's tree all-reduce"): why NCCL's tuner takes Tree
    c = preset_cluster("dgx-h100", 8 * nodes)
    for size in (2**10, 2**16, 2**20, 2**24):
        tree = collective(c, "all-reduce", size, "nccl-tree")
        assert tree.protocol in ("ll", "ll128")
        assert tree.time_s < collective(c, "all-reduce", size).time_s
