"""The step breakdown over the critical path (results/training.py): the parts add up to the
step, and a slower or higher-latency interconnect shows up as communication, not as bubble."""

from dataclasses import replace

import pytest

from podsim.front.api import resolve_scenario, training_step
from podsim.results.training import COMM_KINDS


def step(**cluster):
    # Llama 3 70B, tp 8 pp 4 dp 2 on 64 H100s: pipeline sends and data-parallel reductions
    # cross the scale-out fabric, tensor-parallel all-reduces stay in the NVLink domain.
    scenario = resolve_scenario("llama3-70b-h100")
    c = replace(scenario.cluster, devices=64, pod_size=64, **cluster)
    train = replace(scenario.train, dp=2, global_batch=16, pp=4)
    return training_step(replace(scenario, cluster=c, train=train, failures=None)).result


def test_parts_add_up_and_kinds_split_the_communication():
    r = step()
    b = r.breakdown
    assert set(b.exposed_comm_by_kind_s) == set(COMM_KINDS)
    assert sum(b.exposed_comm_by_kind_s.values()) == pytest.approx(b.exposed_comm_s, rel=1e-12)
    total = b.compute_s + b.exposed_comm_s + b.bubble_s + b.straggler_s
    assert total == pytest.approx(r.step_time_s, rel=1e-9)
    assert 0 < b.optimizer_s < b.compute_s
    assert b.exposed_comm_by_kind_s["tp"] > 0 and b.exposed_comm_by_kind_s["pp"] > 0


@pytest.mark.parametrize(
    "slower",
    [
        {"scale_out_bandwidth": 50e9 / 8},  # an 8x slower fabric
        {"scale_out_latency": 5e-3},  # 1,000x the latency of each scale-out hop
    ],
)
def test_a_slower_interconnect_shows_up_as_communication(slower):
    fast, slow = step(), step(**slower)
    grown = slow.step_time_s - fast.step_time_s
    assert grown > 0.01 * fast.step_time_s
    comm = slow.breakdown.exposed_comm_s - fast.breakdown.exposed_comm_s
    # Most of what the step gains is communication (pp and dp cross the fabric); rank 0's view
    # booked it as bubble (the wait for other stages' sends).
    assert comm > 0.8 * grown
    fabric = ("pp", "dp")
    by_kind = slow.breakdown.exposed_comm_by_kind_s
    before = fast.breakdown.exposed_comm_by_kind_s
    assert sum(by_kind[k] - before[k] for k in fabric) > 0.8 * grown
    assert slow.breakdown.compute_s == pytest.approx(fast.breakdown.compute_s, rel=1e-9)
