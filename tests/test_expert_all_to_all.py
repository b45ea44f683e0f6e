"""The expert-parallel all-to-alls (docs/engine.md): low-latency and node-forwarded, closed
forms by hand on both engines and in both network modes, and AUTO's choice between them."""

import numpy as np
import pytest
from conftest import LAUNCH, cluster

from podsim import ProgramBuilder, _core, simulate
from podsim.engine.core import core_topology
from podsim.engine.reference import Topology
from podsim.engine.reference import collectives as ref
from podsim.engine.reference import simulate as reference_simulate
from podsim.errors import PodsimError
from podsim.lowering.program import Algorithm, Collective

A2A = int(Collective.ALL_TO_ALL)
UP_BW, UP_LAT, OUT_BW, OUT_LAT = 400e9, 1e-6, 50e9, 4e-6
OVERHEAD, RATE, FORWARD = 30e-9, 100e6, 0.8


def _cluster(devices, domain, **overrides):
    values = dict(
        scale_up_bandwidth=UP_BW,
        scale_up_latency=UP_LAT,
        scale_out_bandwidth=OUT_BW,
        scale_out_latency=OUT_LAT,
        message_overhead=OVERHEAD,
        nic_message_rate=RATE,
        forward_efficiency=FORWARD,
    )
    return cluster(devices, domain_size=domain, **(values | overrides))


def _both(c, algorithm, nbytes, message=0.0, fanout=1.0):
    """(C++ closed form, reference closed form) of an all-to-all over every device."""
    ranks = np.arange(c.devices, dtype=np.int32)
    code = int(Algorithm.parse(algorithm))
    _, ours = _core.collective_time(core_topology(c), A2A, code, ranks, nbytes, message, fanout)
    theirs = ref.collective_time(
        Topology.from_cluster(c),
        A2A,
        code,
        list(range(c.devices)),
        nbytes,
        ref.Shape(message, fanout),
    )
    return ours, theirs


def _program(c, algorithm, nbytes, message=0.0, fanout=1.0, repeat=1):
    b = ProgramBuilder()
    g = b.group(range(c.devices))
    for r in range(c.devices):
        b.collective(r, "all-to-all", g, nbytes, algorithm, 1, (), repeat, message, fanout)
    return b.build()


@pytest.mark.parametrize("message", [0.0, 7000.0, 100.0])
def test_low_latency_closed_form(message):
    # 4 domains of 4: each rank writes S/16 to 3 peers over scale-up and 12 over its NIC, all
    # at once, paying one hop's latency (not 15 of them as the direct algorithm does).
    c, S = _cluster(16, 4), 16 * 7000.0 * 64
    per_peer = S / 16
    messages = per_peer / message if message else 1.0
    up = 3 * (per_peer / UP_BW + messages * OVERHEAD)
    out = 12 * max(per_peer, messages * OUT_BW / RATE) / OUT_BW
    expected = LAUNCH + OUT_LAT + max(up, out)
    ours, theirs = _both(c, "low-latency", S, message)
    assert ours == pytest.approx(expected, rel=1e-12)
    assert theirs == pytest.approx(expected, rel=1e-12)
    direct, _ = _both(c, "direct", S)
    assert direct - LAUNCH > 15 * OUT_LAT  # the serial hops low-latency avoids


def test_nic_message_rate_caps_small_messages():
    # 100-byte messages: the NIC sends at most RATE of them per second, not OUT_BW / 100.
    c, S = _cluster(16, 4), 16 * 100.0 * 1000
    ours, _ = _both(c, "low-latency", S, 100.0)
    messages_out = 12 * (S / 16) / 100.0
    assert ours >= LAUNCH + OUT_LAT + messages_out / RATE * (1 - 1e-12)
    unlimited, _ = _both(_cluster(16, 4, nic_message_rate=0.0), "low-latency", S, 100.0)
    assert unlimited < ours


@pytest.mark.parametrize("fanout", [1.0, 2.0, 4.0, 9.0])
def test_node_forwarded_closed_form(fanout):
    # 4 domains of 4: one copy per (token, domain) crosses the fabric to the same-position
    # rank there (S / (4 f) to each of 3 domains), which forwards it over scale-up to the f
    # ranks that need it (S/4 / efficiency to each of 3 domain peers); both at once.
    c, S = _cluster(16, 4), 64e6
    f = min(fanout, 4.0)  # a copy reaches at most the domain's 4 ranks
    out = 3 * S / (4 * f) / OUT_BW
    up = 3 * S / 4 / FORWARD / UP_BW
    expected = LAUNCH + UP_LAT + OUT_LAT + max(up, out)
    ours, theirs = _both(c, "node-forwarded", S, 0.0, fanout)
    assert ours == pytest.approx(expected, rel=1e-12)
    assert theirs == pytest.approx(expected, rel=1e-12)


def test_node_forwarding_needs_balanced_domains():
    c = _cluster(12, 8)  # domains of 8 and 4
    ranks = np.arange(12, dtype=np.int32)
    code = int(Algorithm.NODE_FORWARDED)
    with pytest.raises(PodsimError, match="allowed here"):
        _core.collective_time(core_topology(c), A2A, code, ranks, 1e6, 0.0, 1.0)


@pytest.mark.parametrize("algorithm", ["low-latency", "node-forwarded"])
@pytest.mark.parametrize("network", ["analytical", "contention"])
def test_both_engines_and_modes_give_the_closed_form(algorithm, network):
    c = _cluster(16, 4)
    nbytes, message, fanout = 3e6, 7168.0, 2.5
    expected, _ = _both(c, algorithm, nbytes, message, fanout)
    program = _program(c, algorithm, nbytes, message, fanout, repeat=2)
    timeline = simulate(program, c, network)
    _, end = reference_simulate(program, Topology.from_cluster(c), network)
    assert timeline.end.max() == pytest.approx(2 * expected, rel=1e-9)
    assert end.max() == pytest.approx(2 * expected, rel=1e-9)
    assert set(timeline.resolved_algorithm.tolist()) == {int(Algorithm.parse(algorithm))}


@pytest.mark.parametrize("nbytes", [1e3, 1e5, 1e7, 1e9])
@pytest.mark.parametrize("fanout", [1.0, 3.0])
def test_auto_picks_the_fastest(nbytes, fanout):
    c = _cluster(32, 8)
    times = {
        a: _both(c, a, nbytes, 7168.0, fanout)[0]
        for a in ("direct", "low-latency", "node-forwarded")
    }
    ranks = np.arange(32, dtype=np.int32)
    chosen, t = _core.collective_time(core_topology(c), A2A, 0, ranks, nbytes, 7168.0, fanout)
    assert t == min(times.values())
    assert Algorithm(chosen).label == min(times, key=times.get)
    assert ref.choose_algorithm(
        Topology.from_cluster(c), A2A, list(range(32)), nbytes, ref.Shape(7168.0, fanout)
    ) == Algorithm(chosen)


def test_auto_prefers_forwarding_when_copies_share_a_node():
    # Large, node-deduplicated traffic is NIC-bound: node-forwarding sends 1/fanout of it.
    c = _cluster(64, 8)
    ranks = np.arange(64, dtype=np.int32)
    chosen, _ = _core.collective_time(core_topology(c), A2A, 0, ranks, 1e9, 7168.0, 2.0)
    assert Algorithm(chosen) == Algorithm.NODE_FORWARDED
    chosen, _ = _core.collective_time(core_topology(c), A2A, 0, ranks, 1e5, 7168.0, 1.0)
    assert Algorithm(chosen) == Algorithm.LOW_LATENCY


@pytest.mark.parametrize(
    ("column", "value"), [("message_bytes", -1.0), ("message_bytes", np.nan), ("fanout", 0.5)]
)
def test_bad_shapes_are_named_errors(column, value):
    c = _cluster(8, 4)
    program = _program(c, "low-latency", 1e6)
    bad = getattr(program, column).copy()
    bad[3] = value
    from dataclasses import replace

    broken = replace(program, **{column: bad})
    with pytest.raises(PodsimError, match=column):
        simulate(broken, c)
    with pytest.raises(PodsimError, match=column):
        reference_simulate(broken, Topology.from_cluster(c))


@pytest.mark.parametrize("network", ["analytical", "contention"])
@pytest.mark.parametrize("precision", ["bf16", "fp8"])
def test_lowered_expert_plans_run_alike_and_use_the_new_algorithms(network, precision):
    # A lowered MoE step (ep 4 over domains of 2, node-limited routing): dispatch and combine
    # are separate ops with their own bytes and shape, resolved to the new algorithms, and the
    # C++ engine agrees with the reference.
    from podsim.lowering.training import StepBuilder
    from podsim.plans.training import Plan
    from podsim.specs.models import Model

    model = Model(
        name="small-moe",
        layers=4,
        hidden=512,
        heads=8,
        ffn_hidden=1024,
        vocab=1000,
        experts=16,
        top_k=4,
        expert_ffn_hidden=256,
        mlp="swiglu",
        max_routed_nodes=2,
    )
    plan = Plan(seq_len=1024, global_batch=8, pp=2, dp=4, ep=4, precision=precision)
    from podsim import make_cluster

    c = make_cluster("h800-sxm", plan.devices, domain_size=2)
    lowered = StepBuilder(model, plan, c, 1).lower()
    program = lowered.program
    a2a = (program.kind == 1) & (program.collective == A2A)
    sizes = set(program.bytes[a2a].tolist())
    assert len(sizes) == (2 if precision == "fp8" else 1)  # FP8 dispatch, BF16 combine
    assert (program.fanout[a2a] > 1).all()
    timeline = simulate(program, c, network)
    start, end = reference_simulate(program, Topology.from_cluster(c), network)
    np.testing.assert_allclose(timeline.start, start, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(timeline.end, end, rtol=1e-9, atol=1e-15)
    used = {Algorithm(a) for a in timeline.resolved_algorithm[a2a]}
    assert used & {Algorithm.LOW_LATENCY, Algorithm.NODE_FORWARDED}
