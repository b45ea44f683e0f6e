"""DeepEP's published all-to-all rows (docs/legacy.md, H800 + ConnectX-7), each within 20%.

These are CALIBRATION rows: `message_overhead` was fitted on the 12 low-latency rows and
`forward_efficiency` on the 8 normal-kernel rows (one parameter each, by
`python -m podsim.front.deepep`); everything else is the cluster's physics. Each row's error is
printed (pytest -s) and listed in docs/validation.md.
"""

import pytest

from podsim.front import deepep
from podsim.specs.clusters import DEFAULT_FORWARD_EFFICIENCY, DEFAULT_MESSAGE_OVERHEAD

ROW_BOUND = 0.20


@pytest.fixture(scope="module")
def rows():
    out = deepep.low_latency_rows() + deepep.normal_rows()
    for r in out:
        print(
            f"{r.kernel} {r.phase} EP{r.ep}: published {r.published:.4g}, "
            f"predicted {r.predicted:.4g} ({r.metric}), error {r.error:+.1%}"
        )
    return out


def test_every_row_within_twenty_percent(rows):
    assert len(rows) == 20
    worst = max(rows, key=lambda r: abs(r.error))
    assert abs(worst.error) <= ROW_BOUND, (
        f"{worst.kernel} {worst.phase} EP{worst.ep}: {worst.error:+.1%}"
    )


def test_catalog_defaults_are_the_fit():
    # The defaults carry the fit's provenance: rerunning it gives them back.
    fitted = deepep.fit()
    assert fitted["message_overhead"] == pytest.approx(DEFAULT_MESSAGE_OVERHEAD, abs=1e-12)
    assert fitted["forward_efficiency"] == pytest.approx(DEFAULT_FORWARD_EFFICIENCY, abs=1e-9)


def test_low_latency_grows_far_slower_than_hops(rows):
    # The published shape: EP8 -> EP256 dispatch grows 2.5x, not (255/7)x as serial hops would.
    ll = {r.ep: r.predicted for r in rows if r.kernel == "low-latency" and r.phase == "dispatch"}
    assert ll[256] / ll[8] < 3.5


def test_without_message_overhead_the_intranode_rows_fail():
    # The fitted parameter carries physics the rows need: without it EP8 is far too fast.
    rows = deepep.low_latency_rows(message_overhead=0.0)
    ep8 = [r for r in rows if r.ep == 8]
    assert all(r.error < -ROW_BOUND for r in ep8)


@pytest.mark.parametrize("ep", [8, 16, 32, 64])
def test_lowering_routing_matches_deepeps_gating(ep):
    # The training lowering's hypergeometric routing (uniform experts within the allowed nodes)
    # against the gating DeepEP's test uses (top nodes by best expert, then top-8 experts).
    from podsim.lowering.routing import routing

    ranks, nodes = deepep.routing(ep)
    ours = routing(256, 8, ep, 8, max_nodes=4)
    assert ours.ranks == pytest.approx(ranks, rel=0.05)
    assert ours.nodes == pytest.approx(nodes, rel=0.10)
