"""Contention at scale (docs/engine.md, "Contention at scale"): the direct all-to-all's flows run
as blocks (per domain, per pod between its domains, per pair of pods), each one weighted flow
while its flows share a rate. The Python reference engine lists every flow: it is the oracle."""

import numpy as np
import pytest
from conftest import LAUNCH, SO_BW, SO_LAT, cluster

from podsim import ProgramBuilder, collective, simulate
from podsim.engine.reference import Topology
from podsim.engine.reference import simulate as reference_simulate
from podsim.errors import ProgramError

S = 1e9

CLUSTERS = {  # switched domains, as the reference engine models
    "switch": dict(devices=32, domain_size=8),
    "pods-oversubscribed": dict(devices=32, domain_size=4, pod_size=8, oversubscription=4),
    "domains-of-one-in-pods": dict(devices=16, domain_size=1, pod_size=4, oversubscription=2),
}
# Full-mesh and torus domains (which the reference engine does not model): their pairs inside a
# domain are listed flow by flow, those between domains are blocks; cpp/tests/test_network.cpp
# checks those blocks against their flows listed one by one on such topologies.


def _check(program, c):
    """The C++ engine (blocks) against the reference engine (every flow), contention mode."""
    timeline = simulate(program, c, "contention")
    start, end = reference_simulate(program, Topology.from_cluster(c), "contention")
    np.testing.assert_allclose(timeline.start, start, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(timeline.end, end, rtol=1e-9, atol=1e-15)
    return timeline


def _all_to_all(devices, members, algorithm="direct", extra=()):
    """One all-to-all of S on `members`; `extra`: (src, dst, bytes) sends on other streams that
    load some members' links more than others' (the blocks then split into parts)."""
    b = ProgramBuilder()
    group = b.group(members)
    for r in members:
        b.collective(r, "all-to-all", group, S, algorithm, message_bytes=7168.0)
    for stream, (src, dst, size) in enumerate(extra, start=1):
        b.send(src, dst, size, stream=stream)
        b.recv(dst, src, size, stream=stream)
    return b.build()


@pytest.mark.parametrize("name", CLUSTERS)
@pytest.mark.parametrize("algorithm", ["direct", "low-latency"])
def test_blocks_match_the_reference_flow_by_flow(name, algorithm):
    spec = dict(CLUSTERS[name])
    devices = spec.pop("devices")
    c = cluster(devices, **spec)
    _check(_all_to_all(devices, list(range(devices)), algorithm), c)


@pytest.mark.parametrize("name", CLUSTERS)
def test_uneven_groups_and_other_traffic_split_blocks_exactly(name):
    # A group with 1 to 3 members per domain, and sends on some members' links: the blocks'
    # links are unevenly loaded, so parts of a block are fixed at different rates.
    spec = dict(CLUSTERS[name])
    devices = spec.pop("devices")
    c = cluster(devices, **spec)
    members = [0, 1, 2, 5, 6, 9, 12, 13, 15]
    extra = [(0, 9, 3 * S), (5, 1, S), (13, 2, 2 * S), (15, 14, S)]
    _check(_all_to_all(devices, members, extra=extra), c)


def test_4096_rank_all_to_all_runs_in_contention_mode():
    # Domains of 8, pods of 256, oversubscription 4: a pod uplink carries 256 x 50 GB/s / 4.
    # The cross-pod flows through it, 256 x (4096 - 256), get that over their number (less than
    # a NIC's share, 50 GB/s / 4088): they end last, after (S / 4096) / share; the pod link stays
    # their bottleneck when the others end. Plus launch and the direct algorithm's 4095 steps.
    n, pod = 4096, 256
    c = cluster(n, domain_size=8, pod_size=pod, oversubscription=4)
    share = pod * SO_BW / 4 / (pod * (n - pod))
    expected = LAUNCH + (n - 1) * SO_LAT + (S / n) / share
    result = collective(c, "all-to-all", S, "direct", "contention")
    assert result.time_s == pytest.approx(expected, rel=1e-12)
    # The analytical network's pod-link charge is the same bound here.
    analytical = collective(c, "all-to-all", S, "direct", "analytical").time_s
    assert analytical == pytest.approx(expected, rel=1e-12)


def test_too_many_blocks_are_refused_by_name():
    # Pods of one device: one block per ordered pair of pods, 4096 x 4095 of them.
    c = cluster(4096, domain_size=1, pod_size=1)
    with pytest.raises(ProgramError, match=r"4096 ranks .* 16773120 flow blocks .* MiB"):
        collective(c, "all-to-all", S, "direct", "contention")
