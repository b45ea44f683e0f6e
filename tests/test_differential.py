"""The C++ engine against the pure-Python reference on random small programs (Hypothesis):
both follow docs/engine.md, so every op's start and end must agree to 1e-9."""

from collections import Counter

import numpy as np
import pytest
from conftest import cluster
from hypothesis import given, settings
from hypothesis import strategies as st

from podsim import ProgramBuilder, _core, simulate
from podsim.engine.core import core_topology
from podsim.engine.reference import Topology
from podsim.engine.reference import simulate as reference_simulate
from podsim.engine.reference.collectives import (
    applicable,
    choose_protocol,
    collective_time,
    phases,
)
from podsim.lowering.program import Algorithm, Collective
from podsim.lowering.training import StepBuilder
from podsim.plans.training import Plan
from podsim.specs.clusters import PROTOCOLS
from podsim.specs.models import Model

OPS = ["all-reduce", "all-gather", "reduce-scatter", "all-to-all", "broadcast", "reduce"]
SIZES = st.sampled_from([8.0, 4096.0, 1e6, 3.3e7, 1e9])


@st.composite
def programs(draw):
    """Rounds added in one global order (so no program deadlocks): compute on some ranks,
    a collective on a random group, or a send/recv pair, each on a random stream, with random
    deps on earlier ops of the same rank."""
    n = draw(st.integers(2, 9))
    domain = draw(st.sampled_from([1, 2, 3, 4, 8]))
    pod_domains = draw(st.sampled_from([1, 2, 4]))
    oversub = draw(st.sampled_from([1.0, 2.0, 5.0]))
    b = ProgramBuilder()
    ops_of: dict[int, list[int]] = {r: [] for r in range(n)}

    def deps(rank):
        earlier = ops_of[rank]
        return draw(st.lists(st.sampled_from(earlier), max_size=2, unique=True)) if earlier else []

    for _ in range(draw(st.integers(1, 12))):
        action = draw(st.sampled_from(["compute", "collective", "p2p"]))
        stream = draw(st.integers(0, 2))
        if action == "compute":
            for r in draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True)):
                duration = draw(st.sampled_from([0.0, 1e-6, 3e-4, 0.01]))
                ops_of[r].append(b.compute(r, duration, stream, deps(r)))
        elif action == "collective":
            members = draw(st.permutations(range(n)))[: draw(st.integers(1, n))]
            op, size = draw(st.sampled_from(OPS)), draw(SIZES)
            algo = draw(st.sampled_from(["auto", "ring"]))
            shape = {}
            if op == "all-to-all":
                algo = draw(st.sampled_from(["direct", "low-latency", "auto"]))
                shape = {
                    "message_bytes": draw(st.sampled_from([0.0, 7168.0])),
                    "fanout": draw(st.sampled_from([1.0, 2.5])),
                }
            g, repeat = b.group(members), draw(st.integers(1, 3))
            for r in members:
                ops_of[r].append(
                    b.collective(r, op, g, size, algo, stream, deps(r), repeat, **shape)
                )
        else:
            src, dst = draw(st.permutations(range(n)))[:2]
            size = draw(SIZES)
            tag = draw(st.integers(-1, 1))
            ops_of[src].append(b.send(src, dst, size, stream, deps(src), tag))
            ops_of[dst].append(b.recv(dst, src, size, stream, deps(dst), tag))
    protocol = draw(st.sampled_from(PROTOCOLS))
    c = cluster(
        n,
        domain_size=domain,
        pod_size=domain * pod_domains,
        oversubscription=oversub,
        protocol=protocol,
        in_network_reduction=draw(st.booleans()),  # nvls and nvls-tree
    )
    return b.build(), c


@settings(max_examples=150, deadline=None)
@given(case=programs(), network=st.sampled_from(["analytical", "contention"]))
def test_cpp_engine_matches_python_reference(case, network):
    program, c = case
    timeline = simulate(program, c, network)
    start, end = reference_simulate(program, Topology.from_cluster(c), network)
    np.testing.assert_allclose(timeline.start, start, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(timeline.end, end, rtol=1e-9, atol=1e-15)


def _flows(phases):
    """Phases as comparable values: latency, and the multiset of flows."""
    return [(round(lat * 1e15), Counter((s, d, round(b, 3)) for s, d, b in f)) for lat, f in phases]


def _phase_cases():
    for devices, domain in [(8, 8), (16, 4), (12, 3), (8, 1)]:
        ranks = list(range(devices))
        t = Topology.from_cluster(cluster(devices, domain_size=domain))
        for op in Collective:
            for algorithm in applicable(t, op, ranks):
                yield pytest.param(
                    devices,
                    domain,
                    op,
                    algorithm,
                    id=f"{devices}/{domain}-{op.label}-{algorithm.label}",
                )


@pytest.mark.parametrize(("devices", "domain", "op", "algorithm"), list(_phase_cases()))
def test_cpp_phases_match_the_reference(devices, domain, op, algorithm):
    c = cluster(devices, domain_size=domain)
    ranks = np.arange(devices, dtype=np.int32)
    ours = _core.collective_phases(core_topology(c), int(op), int(algorithm), ranks, 1e6)
    theirs = phases(Topology.from_cluster(c), op, algorithm, list(ranks), 1e6)
    assert _flows(ours) == _flows(theirs)


@pytest.mark.parametrize(
    ("algorithm", "extra"),
    [(Algorithm.NVLS_TREE, {"in_network_reduction": True})]
    + [(Algorithm.NCCL_TREE, {"protocol": p}) for p in PROTOCOLS],
)
@pytest.mark.parametrize(
    ("devices", "domain", "pod_domains"), [(16, 8, 2), (32, 8, 1), (24, 4, 2), (12, 2, 3)]
)
@pytest.mark.parametrize("size", [8.0, 1e6, 1e9])
def test_two_level_all_reduce_matches_the_reference(
    devices, domain, pod_domains, size, algorithm, extra
):
    # nvls-tree and nccl-tree: phases, time, protocol, and what auto takes
    c = cluster(
        devices, domain_size=domain, pod_size=domain * pod_domains, oversubscription=2.0, **extra
    )
    ranks = np.arange(devices, dtype=np.int32)
    reference = Topology.from_cluster(c)
    for code, name in ((int(algorithm), algorithm.label), (0, "auto")):
        args = (core_topology(c), int(Collective.ALL_REDUCE), code, ranks, size)
        assert _flows(_core.collective_phases(*args)) == _flows(
            phases(reference, "all-reduce", name, list(ranks), size)
        )
        assert _core.collective_time(*args)[1] == pytest.approx(
            collective_time(reference, "all-reduce", name, list(ranks), size), rel=1e-12
        )
    args = (core_topology(c), int(Collective.ALL_REDUCE), int(algorithm), ranks, size)
    assert _core.collective_protocol(*args) == choose_protocol(
        reference, "all-reduce", algorithm.label, list(ranks), size
    )


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(("devices", "domain"), [(8, 8), (16, 4), (6, 4)])
@pytest.mark.parametrize("size", [8.0, 1e5, 1e6])
def test_ring_protocols_match_the_reference(protocol, devices, domain, size):
    # the protocol each engine picks, its phases and its closed form
    c = cluster(devices, domain_size=domain, protocol=protocol)
    ranks = np.arange(devices, dtype=np.int32)
    reference = Topology.from_cluster(c)
    for op in (Collective.ALL_REDUCE, Collective.ALL_GATHER, Collective.REDUCE_SCATTER):
        args = (core_topology(c), int(op), 1, ranks, size)
        assert _core.collective_protocol(*args) == choose_protocol(
            reference, op, "ring", list(ranks), size
        )
        ours = _core.collective_phases(*args)
        assert _flows(ours) == _flows(phases(reference, op, "ring", list(ranks), size))
        assert _core.collective_time(*args)[1] == pytest.approx(
            collective_time(reference, op, "ring", list(ranks), size), rel=1e-12
        )


TRAINING_PLANS = [
    dict(tp=2, pp=4, dp=2, schedule="1f1b"),
    dict(tp=2, pp=4, dp=2, schedule="interleaved", virtual_stages=2),
    dict(tp=1, pp=2, dp=4, schedule="dualpipe", ep=2),
    dict(tp=2, pp=2, dp=2, schedule="gpipe", zero=3),
    dict(tp=2, pp=1, dp=2, cp=2, zero=1),
    # MoE with tensor parallelism: experts folded over tp x dp (etp 1, ep 4), expert tensor
    # parallelism (etp 2) with its own gather, and expert data parallelism apart from dp.
    dict(tp=2, pp=2, dp=2, ep=4, etp=1, schedule="1f1b", zero=1),
    dict(tp=2, pp=1, dp=4, ep=2, etp=2, zero=1, capacity_factor=1.25),
    dict(tp=2, pp=2, dp=2, ep=2, etp=1, schedule="interleaved", virtual_stages=2),
]


def _plan_id(split: dict) -> str:
    return "-".join(f"{k}{v}" for k, v in split.items())


@pytest.mark.parametrize("network", ["analytical", "contention"])
@pytest.mark.parametrize("split", TRAINING_PLANS, ids=_plan_id)
def test_training_programs_run_alike_on_both_engines(split, network):
    # A whole lowered training step (tensor, pipeline, data, expert and context parallelism,
    # tagged sends, repeated collectives) through the C++ engine and the Python reference.
    moe = split.get("ep", 1) > 1
    model = Model(
        name="small",
        layers=8,
        hidden=512,
        heads=8,
        ffn_hidden=1024,
        vocab=1000,
        experts=4 if moe else 0,
        top_k=2 if moe else 0,
        expert_ffn_hidden=256 if moe else 0,
        mlp="swiglu",
    )
    plan = Plan(seq_len=1024, global_batch=8 * split["dp"], **split)
    c = cluster(plan.devices, domain_size=4)
    lowered = StepBuilder(model, plan, c, split.get("virtual_stages", 1)).lower()
    timeline = simulate(lowered.program, c, network)
    start, end = reference_simulate(lowered.program, Topology.from_cluster(c), network)
    np.testing.assert_allclose(timeline.start, start, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(timeline.end, end, rtol=1e-9, atol=1e-15)
