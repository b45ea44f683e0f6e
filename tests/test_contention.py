"""Max-min fair sharing on hand-derived scenarios (SimGrid's lmm tests in spirit): each expected
time is derived in a comment. Transfers start after launch L and the path latency."""

import pytest
from conftest import LAUNCH, SO_BW, SO_LAT, SU_BW, SU_LAT, cluster

from podsim import ProgramBuilder, collective, simulate

S = 1e9


def transfers(builder: ProgramBuilder, pairs):
    """One send/recv per (src, dst), each on its own stream so that all run at once."""
    for stream, (src, dst) in enumerate(pairs, start=1):
        builder.send(src, dst, S, stream=stream)
        builder.recv(dst, src, S, stream=stream)


def run(pairs, c):
    builder = ProgramBuilder()
    transfers(builder, pairs)
    timeline = simulate(builder.build(), c, "contention")
    return timeline.end[0::2]  # the send of each pair


def test_two_flows_into_one_receiver_share_its_link():
    # 0->2 and 1->2 inside one domain share down(2): bw/2 each, so 2S/bw for both.
    ends = run([(0, 2), (1, 2)], cluster(4))
    assert ends == pytest.approx([LAUNCH + SU_LAT + 2 * S / SU_BW] * 2, rel=1e-12)


def test_analytical_mode_ignores_the_sharing():
    builder = ProgramBuilder()
    transfers(builder, [(0, 2), (1, 2)])
    ends = simulate(builder.build(), cluster(4), "analytical").end[0::2]
    assert ends == pytest.approx([LAUNCH + SU_LAT + S / SU_BW] * 2, rel=1e-12)


def test_dogbone_shares_the_pod_uplink():
    # 4 ranks, one per domain, pods of 2, oversubscription 4: a pod uplink carries
    # 2 x bw / 4 = bw/2. 0->2 and 1->3 both cross it: bw/4 each, so 4S/bw.
    ends = run([(0, 2), (1, 3)], cluster(4, domain_size=1, pod_size=2, oversubscription=4))
    assert ends == pytest.approx([LAUNCH + SO_LAT + 4 * S / SO_BW] * 2, rel=1e-12)


def test_max_min_gives_the_leftover_to_the_unconstrained_flow():
    # As above plus C = 0->1 inside pod 0, sharing nic_up(0) with A = 0->2.
    # Fair shares: pod uplink (bw/2)/2 = bw/4 < nic_up(0) bw/2, so A and B are fixed at bw/4;
    # nic_up(0) has 3bw/4 left for C alone. C ends at S/(3bw/4); A and B stay at bw/4 (their
    # bottleneck is the uplink), ending at 4S/bw.
    ends = run([(0, 2), (1, 3), (0, 1)], cluster(4, domain_size=1, pod_size=2, oversubscription=4))
    start = LAUNCH + SO_LAT
    assert ends == pytest.approx(
        [start + 4 * S / SO_BW, start + 4 * S / SO_BW, start + S / (0.75 * SO_BW)], rel=1e-12
    )


def test_rates_are_recomputed_when_a_flow_ends():
    # 0->2 (S) and 1->2 (S/2) share down(2) at bw/2. The short one ends at (S/2)/(bw/2) = S/bw,
    # when the long one has S/2 left, which then runs at bw: it ends at S/bw + (S/2)/bw.
    builder = ProgramBuilder()
    builder.send(0, 2, S, stream=1)
    builder.recv(2, 0, S, stream=1)
    builder.send(1, 2, S / 2, stream=2)
    builder.recv(2, 1, S / 2, stream=2)
    ends = simulate(builder.build(), cluster(4), "contention").end
    start = LAUNCH + SU_LAT
    assert ends[2] == pytest.approx(start + S / SU_BW, rel=1e-12)
    assert ends[0] == pytest.approx(start + 1.5 * S / SU_BW, rel=1e-12)


def test_oversubscribed_fabric_slows_all_to_all():
    # 8 ranks, one per domain, pods of 4, oversubscription 4: uplink capacity 4bw/4 = bw.
    # Direct all-to-all of S: 64-8 flows of S/8. The 16 cross-pod flows of a pod share its
    # uplink: bw/16 each (smaller than any NIC's share bw/7), so they end at (S/8)/(bw/16)
    # = 2S/bw; the intra-pod flows get the NIC's leftover and end earlier.
    # The analytical mode charges what the group pushes through each pod link against its
    # capacity (docs/engine.md, "Pod links"): 4 x 4 x S/8 = 2S over bw, the same 2S/bw; without
    # it, paths alone would give 7 S/8 over one NIC, 7S/(8bw).
    c = cluster(8, domain_size=1, pod_size=4, oversubscription=4)
    steps = 7 * SO_LAT
    contended = collective(c, "all-to-all", S, "direct", "contention").time_s
    free = collective(c, "all-to-all", S, "direct", "analytical").time_s
    assert contended == pytest.approx(LAUNCH + steps + 2 * S / SO_BW, rel=1e-12)
    assert free == pytest.approx(LAUNCH + steps + 2 * S / SO_BW, rel=1e-12)
    # Without oversubscription the pod links carry 2S over 4bw: the NICs' 7S/(8bw) binds.
    flat = cluster(8, domain_size=1, pod_size=4, oversubscription=1)
    free = collective(flat, "all-to-all", S, "direct", "analytical").time_s
    assert free == pytest.approx(LAUNCH + steps + 7 * S / (8 * SO_BW), rel=1e-12)


def test_concurrent_collectives_share_links():
    # Two ring all-reduces on the same 4 ranks, on two streams: every ring link carries two
    # flows, so the bandwidth term doubles; the latency term does not.
    # Each rank's first op is instance 0 of the group and its second instance 1; on
    # different streams both are ready at t = 0 and run at once.
    builder = ProgramBuilder()
    group = builder.group(range(4))
    for rank in range(4):
        builder.collective(rank, "all-reduce", group, S, "ring", stream=1)
        builder.collective(rank, "all-reduce", group, S, "ring", stream=2)
    end = simulate(builder.build(), cluster(4), "contention").end.max()
    bandwidth_term = 2 * 3 / 4 * S / SU_BW
    assert end == pytest.approx(LAUNCH + 6 * SU_LAT + 2 * bandwidth_term, rel=1e-12)
