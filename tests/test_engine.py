"""Program semantics (docs/engine.md), errors at the boundary, and invariants."""

import numpy as np
import pytest
from conftest import LAUNCH, SU_BW, SU_LAT, cluster
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from podsim import DeadlockError, ProgramBuilder, ProgramError, SpecError, collective, simulate
from podsim.lowering.program import MAX_PROGRAM_OPS, Program

S = 1e8
RING_AR4 = LAUNCH + 6 * SU_LAT + 2 * 3 / 4 * S / SU_BW  # ring all-reduce on 4 ranks


def test_stream_runs_in_order_and_deps_join_streams():
    b = ProgramBuilder()
    first = b.compute(0, 1.0)
    b.compute(0, 2.0)  # same stream: after `first`
    side = b.compute(0, 0.5, stream=1, deps=[first])  # other stream, waits for `first`
    joined = b.wait(0, stream=2, deps=[side, 1])
    t = simulate(b.build(), cluster(1))
    assert t.start.tolist() == [0.0, 1.0, 1.0, 3.0]
    assert t.end.tolist() == [1.0, 3.0, 1.5, 3.0]
    assert t.end[joined] == t.makespan == 3.0


def test_collective_waits_for_its_slowest_member_and_overlaps_compute():
    b = ProgramBuilder()
    g = b.group(range(4))
    for rank in range(4):
        ready = b.compute(rank, 0.001 * rank)  # rank 3 arrives last, at 3 ms
        b.collective(rank, "all-reduce", g, S, "ring", stream=1, deps=[ready])
        b.compute(rank, 0.5)  # stream 0 goes on while the collective runs
    t = simulate(b.build(), cluster(4))
    collectives = t.start[1::3]
    assert collectives == pytest.approx([0.003] * 4)
    assert t.end[1::3] == pytest.approx([0.003 + RING_AR4] * 4, rel=1e-12)
    assert t.end[2::3] == pytest.approx([0.001 * r + 0.5 for r in range(4)])


def test_send_recv_is_a_rendezvous():
    b = ProgramBuilder()
    b.compute(1, 2.0)
    b.recv(1, 0, S, stream=0)  # ready at 2 s, after the compute on its stream
    b.send(0, 1, S)  # ready at 0 on rank 0
    t = simulate(b.build(), cluster(2))
    assert t.start[1] == t.start[2] == 2.0
    assert t.end[1] == t.end[2] == pytest.approx(2.0 + LAUNCH + SU_LAT + S / SU_BW)


def test_kth_send_matches_kth_recv():
    b = ProgramBuilder()
    b.send(0, 1, S)
    b.send(0, 1, 2 * S)
    b.recv(1, 0, S)
    b.recv(1, 0, 2 * S)
    t = simulate(b.build(), cluster(2))
    assert t.end[1] == t.end[3] > t.end[0] == t.end[2]


def test_same_input_same_result_bit_for_bit():
    c = cluster(64, pod_size=16, oversubscription=3)
    runs = [collective(c, "all-to-all", 12345.0, network="contention").time_s for _ in range(3)]
    assert runs[0] == runs[1] == runs[2]


def deadlock(builder: ProgramBuilder, match: str, devices: int = 4):
    with pytest.raises(DeadlockError, match=match):
        simulate(builder.build(), cluster(devices))


def test_recv_without_send_is_a_deadlock():
    b = ProgramBuilder()
    b.recv(1, 0, S)
    deadlock(b, "op 0 .*no matching send from rank 0")


def test_collective_a_member_never_reaches_is_a_deadlock():
    b = ProgramBuilder()
    g = b.group(range(3))
    for rank in range(2):
        b.collective(rank, "all-reduce", g, S)
    deadlock(b, "2 of 3 members")


def test_crossed_sends_are_a_deadlock():
    # Each rank first receives, then sends: neither send is ever reached.
    b = ProgramBuilder()
    b.recv(0, 1, S)
    b.send(0, 1, S)
    b.recv(1, 0, S)
    b.send(1, 0, S)
    deadlock(b, "waits for op")


def program_error(builder: ProgramBuilder, match: str, devices: int = 4):
    with pytest.raises(ProgramError, match=match):
        simulate(builder.build(), cluster(devices))


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda b: b.compute(4, 1.0), "rank = 4 is outside"),
        (lambda b: b.compute(0, -1.0), "duration = -1"),
        (lambda b: b.compute(0, float("nan")), "duration = nan"),
        (lambda b: b.compute(0, 1.0, stream=64), "stream = 64"),
        (lambda b: b.send(0, 0, S), "peer = 0 must be another rank"),
        (lambda b: b.send(0, 9, S), "peer = 9"),
        (lambda b: b.send(0, 1, 0.0), "bytes = 0"),
        (lambda b: b.send(0, 1, -5.0), "bytes = -5"),
        (lambda b: b.collective(0, "all-reduce", 3, S), "group = 3 is outside"),
        (lambda b: b.collective(0, "all-reduce", b.group([1, 2]), S), "not a member"),
        (lambda b: b.collective(0, "all-reduce", b.group([0, 0]), S), "twice"),
        (lambda b: b.collective(0, "all-reduce", b.group([0, 9]), S), "rank 9"),
        (lambda b: b.compute(0, 1.0, deps=[0]), "dep 0 must be an earlier op"),
    ],
)
def test_malformed_programs_are_rejected(make, match):
    b = ProgramBuilder()
    make(b)
    program_error(b, match)


def test_mismatched_collective_members_are_rejected():
    b = ProgramBuilder()
    g = b.group([0, 1])
    b.collective(0, "all-reduce", g, S)
    b.collective(1, "all-reduce", g, 2 * S)
    program_error(b, "does not match")


def test_inapplicable_algorithm_names_the_allowed_ones():
    b = ProgramBuilder()
    g = b.group(range(3))
    for rank in range(3):
        b.collective(rank, "all-reduce", g, S, "halving-doubling")
    program_error(b, "halving-doubling cannot run all-reduce on a group of 3 .*ring, tree")


def test_columns_of_the_wrong_type_or_length_are_rejected():
    b = ProgramBuilder()
    b.compute(0, 1.0)
    good = b.build()
    fields = {name: getattr(good, name) for name in good.__dataclass_fields__}
    with pytest.raises(ProgramError, match=r"program\.rank must be a 1-D array of int32"):
        simulate(Program(**{**fields, "rank": fields["rank"].astype(np.int64)}), cluster(2))
    with pytest.raises(ProgramError, match=r"program\.stream has 2 entries"):
        simulate(Program(**{**fields, "stream": np.zeros(2, np.int32)}), cluster(2))
    with pytest.raises(ProgramError, match="dep_offsets"):
        simulate(Program(**{**fields, "dep_offsets": np.array([0, 5])}), cluster(2))


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"scale_up_bandwidth": 0}, "scale_up_bandwidth"),
        ({"scale_out_bandwidth": -1}, "scale_out_bandwidth"),
        ({"scale_out_latency": "-2 us"}, "scale_out_latency"),
        ({"oversubscription": 0.5}, "oversubscription"),
        ({"pod_size": 12}, "pod_size"),
        ({"fabric": "x"}, "unknown key"),
    ],
)
def test_bad_cluster_fields_are_named(overrides, match):
    with pytest.raises(SpecError, match=match):
        cluster(16, **overrides)


def test_unknown_names_are_named():
    with pytest.raises(SpecError, match="op = 'all-reduced' is not known"):
        collective(cluster(4), "all-reduced", S)
    with pytest.raises(SpecError, match="algorithm = 'rings' is not known"):
        collective(cluster(4), "all-reduce", S, "rings")
    with pytest.raises(SpecError, match="network = 'fast' is not known"):
        collective(cluster(4), "all-reduce", S, network="fast")
    with pytest.raises(SpecError, match="size = 0"):
        collective(cluster(4), "all-reduce", 0)
    with pytest.raises(SpecError, match="chip = 'h1000'"):
        from podsim import make_cluster

        make_cluster("h1000", 8)


ops = st.sampled_from(
    ["all-reduce", "all-gather", "reduce-scatter", "all-to-all", "broadcast", "reduce", "send-recv"]
)


@settings(max_examples=60, deadline=None)
@given(
    op=ops,
    n=st.integers(2, 24),
    domain=st.sampled_from([1, 2, 4, 8]),
    size=st.floats(1.0, 1e10),
    factor=st.floats(1.0, 100.0),
    network=st.sampled_from(["analytical", "contention"]),
)
def test_more_bandwidth_is_never_slower(op, n, domain, size, factor, network):
    slow = cluster(n, domain_size=domain)
    fast = cluster(
        n, domain_size=domain, scale_up_bandwidth=SU_BW * factor, scale_out_bandwidth=50e9 * factor
    )
    assert collective(fast, op, size, network=network).time_s <= collective(
        slow, op, size, network=network
    ).time_s * (1 + 1e-12)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 16),
    seed=st.integers(0, 2**32 - 1),
    network=st.sampled_from(["analytical", "contention"]),
)
def test_relabelling_ranks_changes_nothing(n, seed, network):
    # A permutation of the devices, applied to every rank and group member, gives the same
    # times when every device is alike (one domain of n).
    perm = np.random.default_rng(seed).permutation(n)
    results = []
    for label in (np.arange(n), perm):
        b = ProgramBuilder()
        g = b.group([int(label[r]) for r in range(n)])
        for r in range(n):
            ready = b.compute(int(label[r]), 0.001 * r)
            b.collective(int(label[r]), "all-reduce", g, S, stream=1, deps=[ready])
            b.send(int(label[r]), int(label[(r + 1) % n]), S, stream=2)
            b.recv(int(label[(r + 1) % n]), int(label[r]), S, stream=3)
        results.append(simulate(b.build(), cluster(n, domain_size=n), network).end)
    assert np.array_equal(results[0], results[1])


def symmetric_relabelling(rng, domain: int, per_pod: int, pods: int) -> np.ndarray:
    """A random automorphism of the topology: pods permuted, each pod's domains permuted, each
    domain's devices permuted (device d is local d % domain of domain d // domain, and in pod
    d // (domain * per_pod))."""
    pod_order = rng.permutation(pods)
    label = np.empty(domain * per_pod * pods, dtype=np.int64)
    for pod in range(pods):
        domain_order = rng.permutation(per_pod)
        for k in range(per_pod):
            local = rng.permutation(domain)
            for i in range(domain):
                old = (pod * per_pod + k) * domain + i
                label[old] = (pod_order[pod] * per_pod + domain_order[k]) * domain + local[i]
    return label


@settings(max_examples=40, deadline=None)
@given(
    domain=st.sampled_from([1, 2, 4]),
    per_pod=st.integers(1, 3),
    pods=st.integers(1, 3),
    oversubscription=st.sampled_from([1.0, 3.0]),
    seed=st.integers(0, 2**32 - 1),
    network=st.sampled_from(["analytical", "contention"]),
)
def test_relabelling_domains_and_pods_changes_nothing(
    domain, per_pod, pods, oversubscription, seed, network
):
    # Whole pods swapped, whole domains swapped within a pod, devices within a domain: every
    # link keeps its kind and capacity and every pod its uplink, so the same program on the
    # relabelled devices has the same times, op by op, within and across domains and pods.
    n = domain * per_pod * pods
    assume(n >= 2)
    c = cluster(n, domain_size=domain, pod_size=domain * per_pod, oversubscription=oversubscription)
    rng = np.random.default_rng(seed)
    label = symmetric_relabelling(rng, domain, per_pod, pods)
    assert sorted(label.tolist()) == list(range(n))
    half = rng.permutation(n)[: max(2, n // 2)].tolist()  # an arbitrary subgroup, same in both
    results = []
    for lab in (np.arange(n), label):
        b = ProgramBuilder()
        everyone = b.group([int(lab[r]) for r in range(n)])
        some = b.group([int(lab[r]) for r in half])
        for r in range(n):
            ready = b.compute(int(lab[r]), 0.001 * r)
            b.collective(int(lab[r]), "all-reduce", everyone, S, stream=1, deps=[ready])
            b.collective(int(lab[r]), "all-to-all", everyone, S / 7, stream=2)
            if r in half:
                b.collective(int(lab[r]), "all-gather", some, S / 3, stream=3)
            peer = (r + 1 + r % 3) % n
            if peer != r:
                b.send(int(lab[r]), int(lab[peer]), S, stream=4, tag=0)
                b.recv(int(lab[peer]), int(lab[r]), S, stream=5, tag=0)
        results.append(simulate(b.build(), c, network).end)
    assert np.array_equal(results[0], results[1])


@pytest.mark.parametrize("network", ["analytical", "contention"])
@pytest.mark.parametrize(("devices", "repeat"), [(1, 3), (4, 1), (4, 5), (16, 2)])
def test_a_repeated_collective_is_back_to_back_instances(devices, repeat, network):
    # One op with repeat r takes r times one instance (each pays its own launch latency).
    c = cluster(devices, domain_size=4)
    one = collective(c, "all-reduce", S, "ring", network).time_s
    b = ProgramBuilder()
    g = b.group(range(devices))
    for rank in range(devices):
        b.collective(rank, "all-reduce", g, S, "ring", repeat=repeat)
    assert simulate(b.build(), c, network).makespan == pytest.approx(repeat * one, rel=1e-12)


def test_only_collectives_repeat():
    b = ProgramBuilder()
    b.compute(0, 1.0)
    good = b.build()
    fields = {name: getattr(good, name) for name in good.__dataclass_fields__}
    bad = Program(**{**fields, "repeat": np.array([2], np.int32)})
    with pytest.raises(ProgramError, match="only collectives repeat"):
        simulate(bad, cluster(2))


def test_tags_keep_channels_between_two_ranks_apart():
    # Rank 1 takes the tag-1 message first; by tag, each recv meets the send of its tag.
    b = ProgramBuilder()
    b.send(0, 1, S, stream=1, tag=0)
    b.send(0, 1, 2 * S, stream=2, tag=1)
    b.recv(1, 0, 2 * S, stream=1, tag=1)
    b.recv(1, 0, S, stream=1, tag=0)
    t = simulate(b.build(), cluster(2))
    assert t.end[2] == t.end[1] and t.end[3] == t.end[0] > t.end[1]
    untagged = ProgramBuilder()
    untagged.send(0, 1, S, stream=1)
    untagged.recv(1, 0, 2 * S, stream=1)
    program_error(untagged, "receives 2")


def test_huge_inputs_are_refused_not_run_out_of_memory():
    with pytest.raises(SpecError, match="simulates at most"):
        collective(cluster(MAX_PROGRAM_OPS + 1), "all-reduce", S)
    b = ProgramBuilder()
    b.send(0, 1, S)
    b.recv(1, 0, S)
    huge = cluster(300_000_000)
    # A small program on a huge cluster is fine: one scale-up transfer, as on two devices.
    expected = LAUNCH + SU_LAT + S / SU_BW
    assert simulate(b.build(), huge).makespan == pytest.approx(expected, rel=1e-12)
    with pytest.raises(SpecError, match="too many for the contention network"):
        simulate(b.build(), huge, "contention")


def test_an_engine_that_consumes_its_columns_gives_the_same_run():
    # start_once hands the engine the only references to a program's columns, and the engine
    # takes each as it copies it (a large program is never held twice in full); the run is the
    # same, and an engine built without `consume` leaves its caller's dict alone.
    from podsim import _core
    from podsim.engine.core import _columns, core_topology, finish, start_once

    b = ProgramBuilder()
    g = b.group(range(4))
    for rank in range(4):
        ready = b.compute(rank, 0.001 * (rank + 1))
        b.collective(rank, "all-reduce", g, S, "ring", deps=[ready])
        b.send(rank, (rank + 1) % 4, 1e6)
        b.recv(rank, (rank - 1) % 4, 1e6, stream=2)
    program = b.build()
    expected = simulate(program, cluster(4))
    kept = _columns(program)
    names = set(kept)
    _core.Engine(kept, core_topology(cluster(4)), 0)
    assert set(kept) == names
    taken = _columns(program)
    _core.Engine(taken, core_topology(cluster(4)), 0, consume=True)
    assert not set(taken) & {"rank", "duration", "dep_ops", "group_ranks"}
    timeline = finish(start_once(lambda: program, cluster(4)))
    assert timeline.makespan == expected.makespan
    assert timeline.end.tolist() == expected.end.tolist()
