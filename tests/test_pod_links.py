"""Pod links in the analytical mode (docs/engine.md, "Pod links"): the validity domain of each
network mode, pinned. Where the table there says the modes agree, they agree here to 1e-9;
where it says the analytical mode is an upper bound, it is one here."""

from dataclasses import replace

import numpy as np
import pytest
from conftest import LAUNCH, SO_BW, SO_LAT, SU_LAT, cluster

from podsim import ProgramBuilder, _core, collective, simulate
from podsim.engine.core import core_topology
from podsim.engine.reference import Topology
from podsim.engine.reference import collectives as ref
from podsim.engine.reference import simulate as reference_simulate
from podsim.front.api import resolve_scenario, training_step
from podsim.lowering.program import Algorithm, Collective

S = 1e9


@pytest.mark.parametrize("oversubscription", [1.0, 2.0, 7.0])
@pytest.mark.parametrize(
    ("op", "algorithm"),
    [
        ("all-reduce", "ring"),
        ("all-gather", "ring"),
        ("all-reduce", "hierarchical"),
        ("reduce-scatter", "hierarchical"),
        ("all-to-all", "direct"),
        ("broadcast", "ring"),
    ],
)
def test_one_collective_alone_agrees_across_pods(op, algorithm, oversubscription):
    # 16 devices, domains of 4, pods of 8: every algorithm here has one phase per level, so
    # each flow of a phase through a pod link gets C / flows in both modes.
    c = cluster(16, domain_size=4, pod_size=8, oversubscription=oversubscription)
    free = collective(c, op, S, algorithm, "analytical").time_s
    contended = collective(c, op, S, algorithm, "contention").time_s
    assert free == pytest.approx(contended, rel=1e-9)


def test_one_cross_pod_all_to_all_is_bounded_by_the_uplink():
    # 8 ranks, one per domain, pods of 4, oversubscription 4: C = bw. Each pod sends
    # 4 x 4 x S/8 = 2S out of itself: 2S/bw, against 7S/(8 bw) over a NIC alone.
    c = cluster(8, domain_size=1, pod_size=4, oversubscription=4)
    free = collective(c, "all-to-all", S, "direct", "analytical").time_s
    assert free == pytest.approx(LAUNCH + 7 * SO_LAT + 2 * S / SO_BW, rel=1e-12)


def sibling_sends(stagger: float):
    """4 ranks of pod 0 each send S to their counterpart in pod 1 (same tag: one wave); rank r
    first computes r * stagger seconds."""
    b = ProgramBuilder()
    for r in range(4):
        ready = b.compute(r, r * stagger)
        b.send(r, r + 4, S, stream=1, deps=[ready], tag=0)
        b.recv(r + 4, r, S, stream=1, tag=0)
    return b.build()


def test_a_wave_of_concurrent_sends_shares_the_uplink_in_both_modes():
    # Pods of 4 (one device per domain), oversubscription 4: C = 4 bw / 4 = bw shared by the 4
    # sends, bw/4 each: L + a + 4S/bw in both modes; paths alone would say S/bw.
    c = cluster(8, domain_size=1, pod_size=4, oversubscription=4)
    expected = LAUNCH + SO_LAT + 4 * S / SO_BW
    for network in ("analytical", "contention"):
        ends = simulate(sibling_sends(0.0), c, network).end
        assert ends[1::3] == pytest.approx([expected] * 4, rel=1e-9)


def test_a_staggered_wave_is_pessimistic_in_the_analytical_mode():
    # The same sends, each starting after the previous one ended: contention sees each alone
    # (S/bw), the analytical mode still assumes the wave overlaps (4S/bw): an upper bound.
    c = cluster(8, domain_size=1, pod_size=4, oversubscription=4)
    gap = 2 * S / SO_BW
    free = simulate(sibling_sends(gap), c, "analytical")
    contended = simulate(sibling_sends(gap), c, "contention")
    for r in range(4):
        send = 3 * r + 1
        assert contended.end[send] - contended.start[send] == pytest.approx(
            LAUNCH + SO_LAT + S / SO_BW, rel=1e-9
        )
        assert free.end[send] - free.start[send] == pytest.approx(
            LAUNCH + SO_LAT + 4 * S / SO_BW, rel=1e-9
        )


def test_halving_doubling_across_levels_is_an_upper_bound():
    c = cluster(8, domain_size=2, pod_size=4, oversubscription=3)
    free = collective(c, "all-reduce", S, "halving-doubling", "analytical").time_s
    contended = collective(c, "all-reduce", S, "halving-doubling", "contention").time_s
    assert free > contended


def step(oversubscription: float, network: str) -> float:
    # Llama 3 70B, tp 8 pp 4 dp 2 on 64 H100s of Meta's RoCE cluster cut into pods of 16 (one
    # pipeline stage each): the pipeline sends of each stage cross a pod uplink together.
    scenario = resolve_scenario("llama3-70b-h100")
    cluster_ = replace(scenario.cluster, devices=64, pod_size=16, oversubscription=oversubscription)
    train = replace(scenario.train, dp=2, global_batch=16, pp=4)
    scenario = replace(scenario, cluster=cluster_, train=train, failures=None)
    return training_step(scenario, network).result.step_time_s


def test_training_step_moves_with_oversubscription_as_contention_says():
    free = {o: step(o, "analytical") for o in (1.0, 7.0)}
    contended = {o: step(o, "contention") for o in (1.0, 7.0)}
    assert free[7.0] > free[1.0] * 1.01  # the fabric shows
    for o in (1.0, 7.0):
        assert free[o] == pytest.approx(contended[o], rel=2e-3)


# --- expert-parallel all-to-alls and waves under the C++ engine's renumbering ----------------


def ref_topology(c):
    return Topology.from_cluster(c)


def both_engines(c, algorithm, fanout=1.0, message=0.0):
    """(C++, reference) analytical time of one all-to-all over every device."""
    a2a, code = int(Collective.ALL_TO_ALL), int(Algorithm.parse(algorithm))
    ranks = np.arange(c.devices, dtype=np.int32)
    _, ours = _core.collective_time(core_topology(c), a2a, code, ranks, S, message, fanout)
    group = list(range(c.devices))
    shape = ref.Shape(message, fanout)
    theirs = ref.collective_time(ref_topology(c), a2a, code, group, S, shape)
    return ours, theirs


def test_low_latency_all_to_all_is_bounded_by_the_uplink():
    # 16 devices, domains of 4, pods of 8, oversubscription 4: C = 8 bw / 4 = 2 bw. Each rank
    # writes S/16 to each peer; pod 0's 8 ranks send 8 x 8 x S/16 = 4S out of it: 4S / C =
    # 2S/bw, above the NIC's 12 x S/16 / bw = 0.75 S/bw (the per-message charges are NIC time,
    # not bytes on the pod link). Latency: one scale-out hop.
    c = cluster(16, domain_size=4, pod_size=8, oversubscription=4)
    expected = LAUNCH + SO_LAT + 2 * S / SO_BW
    for time in both_engines(c, "low-latency"):
        assert time == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("fanout", [1.0, 2.0])
def test_node_forwarded_all_to_all_is_bounded_by_the_uplink(fanout):
    # Same cluster, g = 4, m = 4: each rank sends S / (4 fanout) to its same-index peer in the
    # 2 domains of the other pod: pod 0 pushes 8 x 2 x S / (4 fanout) = 4S / fanout over C = 2 bw,
    # 2S / (fanout bw), above the NIC's 3 x S / (4 fanout) / bw and the forwarding's
    # 3 x S / (4 x efficiency) / su_bw. Latency: a scale-up plus a scale-out hop.
    c = cluster(16, domain_size=4, pod_size=8, oversubscription=4, forward_efficiency=0.8)
    expected = LAUNCH + SU_LAT + SO_LAT + 2 * S / (fanout * SO_BW)
    for time in both_engines(c, "node-forwarded", fanout):
        assert time == pytest.approx(expected, rel=1e-12)
    if fanout == 1.0:  # contention: the 16 cross-pod rails of a pod share its uplink, C/16 each
        contended = collective(c, "all-to-all", S, "node-forwarded", "contention").time_s
        assert contended == pytest.approx(expected, rel=1e-9)


def interleaved_waves():
    """Ranks 0-3 (pod 0) each send S (tag 0) then 2S (tag 1) to rank r + 4 (pod 1), and all-reduce
    S over {r, r + 4}; built rank by rank, so that the C++ engine's locality order (the k-th op
    of every rank side by side) differs from program order."""
    b = ProgramBuilder()
    groups = [b.group([r, r + 4]) for r in range(4)]
    for r in range(4):
        b.send(r, r + 4, S, stream=1, tag=0)
        b.send(r, r + 4, 2 * S, stream=1, tag=1)
        b.collective(r, "all-reduce", groups[r], S, "ring", 0)
    for r in range(4):
        b.recv(r + 4, r, S, stream=1, tag=0)
        b.recv(r + 4, r, 2 * S, stream=1, tag=1)
        b.collective(r + 4, "all-reduce", groups[r], S, "ring", 0)
    return b.build()


def test_waves_key_on_program_ops_whatever_the_engine_order():
    # Pods of 4, one device per domain, oversubscription 4: C = bw. Each wave of 4 sends shares
    # the uplink: S sends take 4S/bw, the 2S ones 8S/bw, one after the other on stream 1. The
    # all-reduces (ring of 2: each rank sends S/2 over the pod link, in each of 2 steps, 4 copies
    # at once: 2S/bw per step) run at the same time on stream 0.
    c = cluster(8, domain_size=1, pod_size=4, oversubscription=4)
    program = interleaved_waves()
    ours = simulate(program, c, "analytical")
    _, end = reference_simulate(program, c, "analytical")
    assert ours.end == pytest.approx(end, rel=1e-12)
    first = LAUNCH + SO_LAT + 4 * S / SO_BW
    second = first + LAUNCH + SO_LAT + 8 * S / SO_BW
    reduce = LAUNCH + 2 * SO_LAT + 2 * (2 * S / SO_BW)
    for r in range(4):
        assert ours.end[3 * r : 3 * r + 3] == pytest.approx([first, second, reduce], rel=1e-12)
