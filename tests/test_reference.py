"""Tests of the pure-Python reference engine alone (docs/engine.md); every expected value is
derived by hand in a comment."""

import math
from types import MappingProxyType

import numpy as np
import pytest

from podsim.engine.reference import Topology, collective_time, simulate
from podsim.engine.reference.collectives import applicable, choose_algorithm, phases
from podsim.engine.reference.engine import max_min_rates
from podsim.errors import DeadlockError, ProgramError, SpecError
from podsim.lowering.program import Algorithm, Collective, ProgramBuilder
from podsim.specs.chips import Chip
from podsim.specs.clusters import Cluster

REL = 1e-12


def topology(
    devices: int = 8,
    domain: int = 4,
    pod: int = 4,
    up_bw: float = 200e9,
    up_lat: float = 2e-6,
    out_bw: float = 50e9,
    out_lat: float = 10e-6,
    oversub: float = 1.0,
    launch: float = 5e-6,
) -> Topology:
    return Topology(devices, domain, pod, up_bw, up_lat, out_bw, out_lat, oversub, launch)


def one_collective(group: tuple[int, ...], op, nbytes: float, algorithm="auto"):
    b = ProgramBuilder()
    g = b.group(group)
    for rank in group:
        b.collective(rank, op, g, nbytes, algorithm)
    return b.build()


# --- topology --------------------------------------------------------------------------------


def test_paths():
    # 8 devices, domains of 2, pods of 4, oversubscription 4: pod links 4 * 50e9 / 4 = 50e9.
    t = topology(domain=2, pod=4, oversub=4.0)
    assert t.links(0, 1) == [("up", 0), ("down", 1)]
    assert t.links(0, 2) == [("nic_up", 0), ("nic_down", 2)]
    assert t.links(1, 6) == [("nic_up", 1), ("pod_up", 0), ("pod_down", 1), ("nic_down", 6)]
    assert (t.latency(0, 1), t.latency(0, 2), t.latency(0, 7)) == (2e-6, 10e-6, 10e-6)
    assert t.capacity(("pod_up", 1)) == 50e9
    # oversubscription 8 halves the pod links to 25e9, below the 50e9 NICs.
    assert topology(domain=2, pod=4, oversub=8.0).bandwidth(1, 6) == 25e9


def test_topology_from_cluster():
    chip = Chip(
        id="test",
        name="Test",
        vendor="None",
        peak_flops=MappingProxyType({"bf16": 1e15}),
        hbm_bytes=80e9,
        hbm_bandwidth=3e12,
        scale_up_bandwidth=100e9,
        scale_up_latency=1e-6,
        domain_size=8,
        scale_out_bandwidth=50e9,
        scale_out_latency=5e-6,
        tdp_watts=700.0,
    )
    cluster = Cluster(
        chip=chip,
        devices=16,
        domain_size=8,
        pod_size=16,
        scale_up_bandwidth=100e9,
        scale_up_latency=1e-6,
        scale_out_bandwidth=50e9,
        scale_out_latency=5e-6,
        oversubscription=2.0,
        launch_latency=2e-6,
        scale_up_efficiency=0.5,
        scale_out_efficiency=0.8,
    )
    # The engines see achieved bandwidths: nominal x efficiency.
    expected = Topology(16, 8, 16, 50e9, 1e-6, 40e9, 5e-6, 2.0, 2e-6, 29.5e-9, 330e6, 0.815)
    assert Topology.from_cluster(cluster) == expected == Topology.of(cluster.topology())


# --- closed forms ----------------------------------------------------------------------------


def test_ring_all_reduce_closed_form():
    # n = 8 in one domain: a = 1e-6, b = 1 / 100e9, L = 2e-6, S = 800e6.
    # L + 2(n-1) a + 2(n-1)/n S b = 2e-6 + 14e-6 + 1.75 * 8e-3 = 0.014016 s.
    t = topology(domain=8, pod=8, up_bw=100e9, up_lat=1e-6, launch=2e-6)
    group = tuple(range(8))
    assert collective_time(t, "all-reduce", "ring", group, 800e6) == pytest.approx(
        0.014016, rel=REL
    )
    for network in ("analytical", "contention"):
        start, end = simulate(one_collective(group, "all-reduce", 800e6, "ring"), t, network)
        assert np.all(start == 0.0)
        np.testing.assert_allclose(end, 0.014016, rtol=REL)


def test_hierarchical_closed_form():
    # Group (0,1,4,5) on 2 domains of 4: g = 2, m = 2; a_u = 2e-6, b_u = 1/200e9,
    # a_o = 10e-6, b_o = 1/50e9, L = 5e-6, S = 1e9.
    # L + 2(g-1) a_u + 2(g-1)/g S b_u + 2(m-1) a_o + 2(m-1)/m (S/g) b_o
    # = 5e-6 + 4e-6 + 5e-3 + 20e-6 + 0.5e9 / 50e9 = 29e-6 + 0.005 + 0.01 = 0.015029 s.
    t = topology()
    assert collective_time(t, "all-reduce", "hierarchical", (0, 1, 4, 5), 1e9) == pytest.approx(
        0.015029, rel=REL
    )


def test_all_to_all_closed_form():
    # n = 8 on 2 domains of 4: a = 10e-6 (the largest latency); each rank sends S/8 to 3 peers
    # over scale-up (3/8 S / 200e9) and to 4 over scale-out (4/8 S / 50e9, the larger).
    # S = 1e9: L + 7a + 0.5e9 / 50e9 = 5e-6 + 70e-6 + 0.01 = 0.010075 s.
    t = topology()
    assert collective_time(t, "all-to-all", "direct", tuple(range(8)), 1e9) == pytest.approx(
        0.010075, rel=REL
    )


def test_group_of_one_takes_launch_latency():
    assert collective_time(topology(), "all-reduce", "tree", (3,), 1e9) == 5e-6


def test_auto_choice():
    t = topology(domain=8, pod=8)
    # 8 ranks, one domain: ring L + 14a + 1.75 S b, halving-doubling L + 6a + 1.75 S b (same
    # bandwidth, less latency), tree L + 6a + 2 S b, hierarchical (m = 1) = ring.
    assert choose_algorithm(t, "all-reduce", range(8), 1e9) == Algorithm.HALVING_DOUBLING
    # 2 ranks: every algorithm gives L + 2a + S b (tree: 2 h a + 2 c S b with h = 1, c = 1/2);
    # ring comes first.
    assert choose_algorithm(t, "all-reduce", (0, 1), 1e9) == Algorithm.RING
    # 6 ranks, 1 byte: latency decides; tree 2 floor(log2 6) a = 4a beats ring's 10a.
    assert choose_algorithm(t, "all-reduce", range(6), 1.0) == Algorithm.TREE


def test_not_applicable():
    t = topology()
    with pytest.raises(ProgramError, match=r"all-reduce.*halving-doubling.*3 ranks.*ring, tree"):
        collective_time(t, "all-reduce", "halving-doubling", (0, 1, 2), 1e6)
    # 2 members in domain 0, 1 in domain 1: not hierarchical.
    with pytest.raises(ProgramError, match="hierarchical"):
        collective_time(t, "all-gather", "hierarchical", (0, 1, 4), 1e6)
    with pytest.raises(ProgramError, match="allowed: auto, direct"):
        collective_time(t, "all-to-all", "ring", (0, 1), 1e6)


# --- phases ----------------------------------------------------------------------------------


def test_tree_all_reduce_on_two_ranks():
    # h = 1, c = 1/2: L + 2a + S b = 5e-6 + 4e-6 + 1e9 / 200e9 = 0.005009 s.
    assert collective_time(topology(), "all-reduce", "tree", (0, 1), 1e9) == pytest.approx(
        0.005009, rel=REL
    )


def test_channelled_ring_phases():
    # (0,1,4,5): 2 domains of g = 2, so g = 2 channels, each carrying X/g round the domains;
    # channel 0 runs 0,1,4,5 and channel 1 enters each domain at its second member: 1,0,5,4.
    # All-gather, S = 4: X = (n-1)/n S = 3, 1.5 per flow; latency (n-1) a = 3 * 10e-6.
    got = phases(topology(), "all-gather", "ring", (0, 1, 4, 5), 4.0)
    assert got == [
        (
            3 * 10e-6,
            [
                (0, 1, 1.5),
                (1, 4, 1.5),
                (4, 5, 1.5),
                (5, 0, 1.5),
                (1, 0, 1.5),
                (0, 5, 1.5),
                (5, 4, 1.5),
                (4, 1, 1.5),
            ],
        )
    ]
    # Each member sends X/g over its NIC and (g-1)/g X over scale-up, in parallel:
    # L + 3a + X max((g-1)/g / 200e9, 1/g / 50e9) with S = 1e9, X = 0.75e9:
    # 5e-6 + 30e-6 + 0.75e9 * 1e-11 = 0.007535 s.
    assert collective_time(topology(), "all-gather", "ring", (0, 1, 4, 5), 1e9) == (
        pytest.approx(0.007535, rel=REL)
    )


def test_tree_all_reduce_phases():
    # n = 4, a = 2e-6, h = 2. Tree 1: parent (p-1)//2 gives 1->0, 2->0, 3->1. Tree 2 mirrors
    # positions (q = 3-p): q1=p2 -> q0=p3, q2=p1 -> q0=p3, q3=p0 -> q1=p2. S/2 = 2 each.
    up = [(1, 0, 2.0), (2, 0, 2.0), (3, 1, 2.0), (2, 3, 2.0), (1, 3, 2.0), (0, 2, 2.0)]
    down = [(d, s, x) for s, d, x in up]
    assert phases(topology(), "all-reduce", "tree", (0, 1, 2, 3), 4.0) == [(4e-6, up), (4e-6, down)]


def test_halving_doubling_all_gather_phases():
    # n = 4, S = 4: all-gather runs the reduce-scatter steps in reverse: k = 1 (S/4 = 1 with
    # position xor 2), then k = 0 (S/2 = 2 with position xor 1); total (n-1)/n S = 3 per rank.
    got = phases(topology(), "all-gather", "halving-doubling", (0, 1, 2, 3), 4.0)
    assert got == [
        (2e-6, [(0, 2, 1.0), (1, 3, 1.0), (2, 0, 1.0), (3, 1, 1.0)]),
        (2e-6, [(0, 1, 2.0), (1, 0, 2.0), (2, 3, 2.0), (3, 2, 2.0)]),
    ]


def test_binomial_reduce_phases():
    # n = 5: broadcast steps k = 0: 0->1; k = 1: 0->2, 1->3; k = 2: 0->4. Reduce reverses both
    # the order and the direction.
    got = phases(topology(), "reduce", "tree", (0, 1, 2, 3, 4), 1.0)
    assert [flows for _, flows in got] == [[(4, 0, 1.0)], [(2, 0, 1.0), (3, 1, 1.0)], [(1, 0, 1.0)]]


# Analytical == contention for one collective alone. Cluster: 2 domains of 4 in 2 pods,
# scale-up 200e9 / 2 us, scale-out 50e9 / 10 us, L = 5 us.
GROUPS = {
    "one": (0,),
    "pair": (0, 1),
    "three": (0, 1, 2),
    "domain": (0, 1, 2, 3),
    "2x2": (0, 1, 4, 5),
    "2x3": (0, 1, 2, 4, 5, 6),
    "all": tuple(range(8)),
    # positions of even popcount on domain 0: every halving-doubling and binomial step crosses
    "parity": (0, 4, 5, 1, 6, 2, 3, 7),
}
# Where the table's single (a, b) per algorithm cannot match the phases, contention is faster:
# - halving-doubling and binomial steps that stay inside a domain run at scale-up speed while
#   the formula charges every step the group's slowest (scale-out) b;
# - the double binary tree's 2 S b assumes some slowest link carries two S/2 flows; on
#   (0,1,4,5) every scale-out link carries one, so each phase takes S/2 b_o, not S b_o.
INEXACT = {
    ("2x2", Collective.ALL_REDUCE, Algorithm.TREE),
    ("2x2", Collective.ALL_REDUCE, Algorithm.HALVING_DOUBLING),
    ("2x2", Collective.ALL_GATHER, Algorithm.HALVING_DOUBLING),
    ("2x2", Collective.REDUCE_SCATTER, Algorithm.HALVING_DOUBLING),
    ("2x2", Collective.BROADCAST, Algorithm.TREE),
    ("2x2", Collective.REDUCE, Algorithm.TREE),
    ("2x3", Collective.BROADCAST, Algorithm.TREE),
    ("2x3", Collective.REDUCE, Algorithm.TREE),
    ("all", Collective.ALL_REDUCE, Algorithm.HALVING_DOUBLING),
    ("all", Collective.ALL_GATHER, Algorithm.HALVING_DOUBLING),
    ("all", Collective.REDUCE_SCATTER, Algorithm.HALVING_DOUBLING),
    ("all", Collective.BROADCAST, Algorithm.TREE),
    ("all", Collective.REDUCE, Algorithm.TREE),
}


def _cases():
    t = topology()
    for name, group in GROUPS.items():
        for op in Collective:
            for algorithm in applicable(t, op, group):
                exact = (name, op, algorithm) not in INEXACT
                yield pytest.param(
                    group, op, algorithm, exact, id=f"{name}-{op.label}-{algorithm.label}"
                )


@pytest.mark.parametrize(("group", "op", "algorithm", "exact"), list(_cases()))
def test_phases_reproduce_closed_form(group, op, algorithm, exact):
    # Where a group's steps mix scale-up and scale-out pairs, the closed form charges every
    # step the slowest pair's (a, b), so the phases (costed link by link) finish earlier:
    # the closed form is then an upper bound, and strictly above.
    t, nbytes = topology(), 3e8
    program = one_collective(group, op, nbytes, algorithm)
    expected = collective_time(t, op, algorithm, group, nbytes)
    _, analytical = simulate(program, t, "analytical")
    _, contention = simulate(program, t, "contention")
    np.testing.assert_allclose(analytical, expected, rtol=REL)
    if exact:
        np.testing.assert_allclose(contention, expected, rtol=REL)
    else:
        assert (contention < expected * (1 - 1e-6)).all()


# --- max-min fair sharing --------------------------------------------------------------------


def test_two_sends_into_one_destination_share_its_link():
    # One domain, B = 100e9, a = 1e-6, L = 2e-6, S = 1e9. Both flows cross down(2): B/2 each.
    # Alone: L + a + S/B = 0.010003 s; shared: L + a + S/(B/2) = 0.020003 s.
    t = topology(devices=4, domain=4, pod=4, up_bw=100e9, up_lat=1e-6, launch=2e-6)
    b = ProgramBuilder()
    b.send(0, 2, 1e9)
    b.send(1, 2, 1e9)
    b.recv(2, 0, 1e9, stream=1)
    b.recv(2, 1, 1e9, stream=2)  # another stream, so both recvs are ready at once
    _, end = simulate(b.build(), t)
    np.testing.assert_allclose(end, 0.010003, rtol=REL)
    _, end = simulate(b.build(), t, "contention")
    np.testing.assert_allclose(end, 0.020003, rtol=REL)


def test_rates_rise_when_a_flow_ends():
    # As above but S = 1e9 and 2e9: both run at 50e9 until the first ends at 3e-6 + 0.02;
    # the second then has 1e9 left at the full 100e9: it ends at 3e-6 + 0.03 (3e9 / 100e9).
    t = topology(devices=4, domain=4, pod=4, up_bw=100e9, up_lat=1e-6, launch=2e-6)
    b = ProgramBuilder()
    first, second = b.send(0, 2, 1e9), b.send(1, 2, 2e9)
    b.recv(2, 0, 1e9, stream=1)
    b.recv(2, 1, 2e9, stream=2)
    _, end = simulate(b.build(), t, "contention")
    assert end[first] == pytest.approx(0.020003, rel=REL)
    assert end[second] == pytest.approx(0.030003, rel=REL)


def test_progressive_filling():
    # Link A (capacity 1) carries flows 0 and 1, link B (capacity 2) flows 1 and 2. A's share
    # 1/2 is the smallest: flows 0 and 1 get 0.5; B keeps 2 - 0.5 = 1.5 for flow 2.
    rates = max_min_rates(
        [[("A", 0)], [("A", 0), ("B", 0)], [("B", 0)]], {("A", 0): 1.0, ("B", 0): 2.0}
    )
    assert rates == [0.5, 0.5, 1.5]


def _dogbone(reverse: bool):
    # Domains of 1, pods of 2, B = 50e9, oversubscription 4: pod links 2 * 50e9 / 4 = 25e9.
    # Flows 0->2 and 1->3 cross pod 0's uplink; 0->1 stays in pod 0 but shares nic_up(0).
    ops = [
        ("send", 0, 2, 1),
        ("send", 1, 3, 1),
        ("send", 0, 1, 2),
        ("recv", 2, 0, 1),
        ("recv", 3, 1, 1),
        ("recv", 1, 0, 2),
    ]
    b = ProgramBuilder()
    index = {}
    for kind, rank, peer, stream in ops[::-1] if reverse else ops:
        index[kind, rank, peer] = getattr(b, kind)(rank, peer, 1e9, stream=stream)
    t = topology(devices=4, domain=1, pod=2, out_bw=50e9, out_lat=5e-6, oversub=4.0, launch=2e-6)
    _, end = simulate(b.build(), t, "contention")
    return {key: end[i] for key, i in index.items()}


def test_dogbone():
    # All flows start at L + a = 7e-6. Progressive filling: the pod uplink's share 25e9/2 =
    # 12.5e9 is the smallest, so 0->2 and 1->3 get 12.5e9; nic_up(0) keeps 50e9 - 12.5e9 =
    # 37.5e9 for 0->1. 0->1 ends at 7e-6 + 1e9/37.5e9; the pod flows stay at 12.5e9 (the uplink
    # is still their bottleneck) and end at 7e-6 + 1e9/12.5e9 = 0.080007 s.
    end = _dogbone(reverse=False)
    for key in [("send", 0, 2), ("recv", 2, 0), ("send", 1, 3), ("recv", 3, 1)]:
        assert end[key] == pytest.approx(0.080007, rel=REL)
    for key in [("send", 0, 1), ("recv", 1, 0)]:
        assert end[key] == pytest.approx(7e-6 + 1e9 / 37.5e9, rel=REL)
    # The order of simultaneous ops in the program does not change the result.
    assert _dogbone(reverse=True) == end


def test_oversubscribed_uplink_slows_cross_pod_ring():
    # 2 pods of one domain of 4: the ring over all 8 runs as g = 4 channels (X/4 each, X =
    # 2(n-1)/n S = 1.75e9 for S = 1e9); each channel crosses from pod 0 to pod 1 once, so 4
    # flows share each pod uplink. Oversubscription 2: uplink 4 * 50e9 / 2 = 100e9, below
    # the 4 NICs' 200e9, so 25e9 per flow.
    # paths alone: L + 14a + X max(3/4 / 200e9, 1/4 / 50e9) = 145e-6 + 1.75e9 * 5e-12
    #            = 0.008895 s;
    # contention L + 14a + (X/4) / 25e9 = 145e-6 + 0.0175 = 0.017645 s (the NIC-bound
    #            bandwidth term doubles; scale-up's 3 * 0.4375e9 / 200e9 is less).
    # The analytical mode charges the X the ring pushes through each pod link against its
    # 100e9 (docs/engine.md, "Pod links"): 145e-6 + 1.75e9 / 100e9 = 0.017645 s as well.
    program = one_collective(tuple(range(8)), "all-reduce", 1e9, "ring")
    t = topology(oversub=2.0)
    np.testing.assert_allclose(simulate(program, t)[1], 0.017645, rtol=REL)
    np.testing.assert_allclose(simulate(program, t, "contention")[1], 0.017645, rtol=REL)
    # Without oversubscription each flow gets 200e9 / 4 = 50e9: contention = analytical.
    np.testing.assert_allclose(simulate(program, topology(), "contention")[1], 0.008895, rtol=REL)


# --- program semantics -----------------------------------------------------------------------


@pytest.mark.parametrize("network", ["analytical", "contention"])
def test_compute_overlaps_collective(network):
    # 2 ranks, one domain: ring all-reduce of S = 1e9 at B = 100e9, a = 1e-6, L = 4e-6 takes
    # L + 2a + S/B = 0.010006 s on stream 1 while stream 0 computes 8 ms (rank 0), 12 ms
    # (rank 1). The WAIT joins them: max(0.010006, 0.008) = 0.010006 on rank 0, 0.012 on
    # rank 1; a 1 ms compute after it ends at 0.011006 and 0.013.
    t = topology(devices=2, domain=2, pod=2, up_bw=100e9, up_lat=1e-6, launch=4e-6)
    b = ProgramBuilder()
    g = b.group((0, 1))
    ids = {}
    for rank, busy in ((0, 8e-3), (1, 12e-3)):
        c = b.compute(rank, busy)
        k = b.collective(rank, "all-reduce", g, 1e9, "ring", stream=1)
        w = b.wait(rank, stream=0, deps=[k])
        f = b.compute(rank, 1e-3)
        ids[rank] = (c, k, w, f)
    start, end = simulate(b.build(), t, network)
    for rank, (w_end, f_end, busy) in {
        0: (0.010006, 0.011006, 8e-3),
        1: (0.012, 0.013, 12e-3),
    }.items():
        c, k, w, f = ids[rank]
        assert (start[c], end[c]) == (0.0, busy)
        assert start[k] == 0.0
        assert end[k] == pytest.approx(0.010006, rel=REL)
        assert start[w] == pytest.approx(w_end, rel=REL)
        assert end[w] == pytest.approx(w_end, rel=REL)
        assert end[f] == pytest.approx(f_end, rel=REL)


def test_collective_starts_when_last_member_is_ready():
    # Rank 1 computes 3 ms first; the instance starts at 3 ms for both members and takes
    # L + 2a + S/B = 4e-6 + 2e-6 + 1e9/100e9 = 0.010006 s, so it ends at 0.013006.
    t = topology(devices=2, domain=2, pod=2, up_bw=100e9, up_lat=1e-6, launch=4e-6)
    b = ProgramBuilder()
    g = b.group((0, 1))
    k0 = b.collective(0, "all-reduce", g, 1e9, "ring")
    c = b.compute(1, 3e-3)
    k1 = b.collective(1, "all-reduce", g, 1e9, "ring", deps=[c])
    start, end = simulate(b.build(), t)
    assert start[k0] == start[k1] == 3e-3
    assert end[k0] == end[k1] == pytest.approx(0.013006, rel=REL)


def test_send_recv_rendezvous():
    # The recv is ready at 2 ms; the transfer starts then and takes L + a + S/B with the
    # scale-out path 0 -> 4: 5e-6 + 10e-6 + 1e8/50e9 = 0.002015 s; it ends at 0.004015.
    b = ProgramBuilder()
    s = b.send(0, 4, 1e8)
    c = b.compute(4, 2e-3, stream=1)
    r = b.recv(4, 0, 1e8)
    for network in ("analytical", "contention"):
        start, end = simulate(b.build(), topology(), network)
        assert start[s] == start[r] == end[c] == 2e-3
        assert end[s] == end[r] == pytest.approx(0.004015, rel=REL)


def test_deps_and_streams():
    # Stream 0: A (1 ms); stream 1: B (2 ms); stream 0: C (1 ms) after A and dep B -> starts
    # at 2 ms, ends 3 ms; D on stream 1 follows B only: 2 ms .. 2.5 ms.
    b = ProgramBuilder()
    a = b.compute(0, 1e-3)
    bb = b.compute(0, 2e-3, stream=1)
    c = b.compute(0, 1e-3, deps=[bb])
    d = b.compute(0, 0.5e-3, stream=1)
    start, end = simulate(b.build(), topology())
    assert (start[a], end[a], start[bb], end[bb]) == (0.0, 1e-3, 0.0, 2e-3)
    assert (start[c], end[c], start[d], end[d]) == (2e-3, 3e-3, 2e-3, 2.5e-3)


# --- deadlocks and malformed programs --------------------------------------------------------


def test_recv_without_send_deadlocks():
    b = ProgramBuilder()
    b.compute(0, 1e-3)
    b.recv(1, 0, 1e6)
    with pytest.raises(DeadlockError, match=r"op 1 .*rank 0 \(no matching op\)"):
        simulate(b.build(), topology())


def test_collective_member_never_arrives():
    b = ProgramBuilder()
    g = b.group((0, 1))
    b.collective(0, "all-reduce", g, 1e6)
    b.collective(1, "all-reduce", g, 1e6)
    b.collective(0, "all-reduce", g, 1e6)  # instance 1: rank 1 never reaches it
    for network in ("analytical", "contention"):
        with pytest.raises(DeadlockError, match=r"op 2 .*instance 1.*rank 1"):
            simulate(b.build(), topology(), network)


def test_crossed_recvs_deadlock():
    # Both ranks first wait to receive from the other: neither send is ever reached.
    b = ProgramBuilder()
    b.recv(0, 1, 1e6)
    b.send(0, 1, 1e6)
    b.recv(1, 0, 1e6)
    b.send(1, 0, 1e6)
    with pytest.raises(DeadlockError, match=r"op 0 .*rank 1 \(op 3, never ready\)"):
        simulate(b.build(), topology())


def _malformed():
    def program(*ops, group=(0, 1)):
        b = ProgramBuilder()
        g = b.group(group)
        for op in ops:
            op(b, g)
        return b.build()

    ar = "all-reduce"
    yield "rank out of range", program(lambda b, g: b.compute(8, 1.0))
    yield "stream out of range", program(lambda b, g: b.compute(0, 1.0, stream=64))
    yield "negative duration", program(lambda b, g: b.compute(0, -1.0))
    yield "NaN duration", program(lambda b, g: b.compute(0, math.nan))
    yield (
        "dep of larger index",
        program(lambda b, g: b.compute(0, 1.0, deps=[1]), lambda b, g: b.compute(0, 1.0)),
    )
    yield (
        "dep on another rank",
        program(lambda b, g: b.compute(0, 1.0), lambda b, g: b.compute(1, 1.0, deps=[0])),
    )
    yield "send to self", program(lambda b, g: b.send(0, 0, 1e6))
    yield "zero bytes", program(lambda b, g: b.send(0, 1, 0.0), lambda b, g: b.recv(1, 0, 0.0))
    yield "negative bytes", program(lambda b, g: b.collective(0, ar, g, -1.0))
    yield "group out of range", program(lambda b, g: b.collective(0, ar, 7, 1e6))
    yield "not a member", program(lambda b, g: b.collective(2, ar, g, 1e6))
    yield (
        "bytes disagree",
        program(lambda b, g: b.collective(0, ar, g, 1e6), lambda b, g: b.collective(1, ar, g, 2e6)),
    )
    yield (
        "op disagrees",
        program(
            lambda b, g: b.collective(0, ar, g, 1e6),
            lambda b, g: b.collective(1, "all-gather", g, 1e6),
        ),
    )
    yield (
        "algorithm disagrees",
        program(
            lambda b, g: b.collective(0, ar, g, 1e6, "ring"),
            lambda b, g: b.collective(1, ar, g, 1e6, "tree"),
        ),
    )
    yield (
        "send/recv bytes disagree",
        program(lambda b, g: b.send(0, 1, 1e6), lambda b, g: b.recv(1, 0, 2e6)),
    )
    yield (
        "not applicable",
        program(
            *(lambda b, g, r=r: b.collective(r, ar, g, 1e6, "halving-doubling") for r in range(3)),
            group=(0, 1, 2),
        ),
    )
    yield "duplicate group member", program(lambda b, g: b.collective(0, ar, g, 1e6), group=(0, 0))


@pytest.mark.parametrize(
    ("what", "program"), list(_malformed()), ids=[what for what, _ in _malformed()]
)
def test_malformed_program(what, program):
    with pytest.raises(ProgramError):
        simulate(program, topology())


def test_unknown_network():
    with pytest.raises(SpecError, match="network"):
        simulate(ProgramBuilder().build(), topology(), "packet")
