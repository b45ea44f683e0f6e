"""Ring protocols (docs/engine.md, "Protocols"): NCCL's LL, LL128 and Simple, their closed forms
in both network modes, the per-size choice of `auto`, forcing one, and bad input."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import LAUNCH, SO_BW, SO_LAT, SU_BW, SU_LAT, cluster

from podsim import _core, collective
from podsim.engine.core import core_topology
from podsim.engine.reference.collectives import LL_EFFICIENCY
from podsim.errors import SpecError
from podsim.front.cli import main
from podsim.front.scenario import parse_scenario
from podsim.specs.clusters import preset_cluster

# NVIDIA/nccl src/graph/tuning.cc, ring: base latency, hop latency over NVLink and over the
# network (us), and podsim's bandwidth fraction.
BASE = {"ll": 6.6, "ll128": 14.0, "simple": 8.4}
NVLINK = {"ll": 0.6, "ll128": 1.9, "simple": 3.4}
NET = {"ll": 2.7, "ll128": 4.0, "simple": 14.0}
SHARE = {"ll": LL_EFFICIENCY, "ll128": 0.92, "simple": 1.0}


def ring_all_reduce(protocol: str, size: float, n: int = 8, g: int = 8) -> float:
    """L x base ratio + 2(n-1) hops x hop ratio + 2(n-1)/n S b / share, as in docs/engine.md."""
    steps = 2 * (n - 1)
    if g == n:  # one domain
        hop, per_byte = SU_LAT * NVLINK[protocol] / NVLINK["simple"], 1 / SU_BW
    else:  # channelled ring: the slowest hop, and per member (g-1)/g over scale-up, 1/g out
        hop = max(SU_LAT, SO_LAT) * NET[protocol] / NET["simple"]
        per_byte = max((g - 1) / g / SU_BW, 1 / g / SO_BW)
    latency = LAUNCH * (BASE[protocol] / BASE["simple"] - 1) + steps * hop
    return LAUNCH + latency + steps / n * size * per_byte / SHARE[protocol]


@pytest.mark.parametrize("network", ["analytical", "contention"])
@pytest.mark.parametrize("protocol", ["ll", "ll128", "simple"])
@pytest.mark.parametrize(("n", "g"), [(8, 8), (16, 8)])
def test_forced_protocol_closed_form(protocol, n, g, network):
    size = 3e6 + 12345
    c = cluster(n, domain_size=g, protocol=protocol)
    result = collective(c, "all-reduce", size, "ring", network)
    assert result.protocol == protocol
    assert result.time_s == pytest.approx(ring_all_reduce(protocol, size, n, g), rel=1e-9)


def test_simple_is_the_plain_model():
    # the default protocol keeps the alpha-beta ring: L + 2(n-1) a + 2(n-1)/n S b
    size = 1e5
    result = collective(cluster(8), "all-reduce", size, "ring")
    assert result.protocol == "simple"
    assert result.time_s == pytest.approx(LAUNCH + 14 * SU_LAT + 14 / 8 * size / SU_BW)


def test_gather_and_scatter_rings_take_half_the_steps():
    size = 2e6
    c = cluster(8, protocol="ll128")
    for op in ("all-gather", "reduce-scatter"):
        result = collective(c, op, size, "ring")
        hop = SU_LAT * NVLINK["ll128"] / NVLINK["simple"]
        latency = LAUNCH * (BASE["ll128"] / BASE["simple"] - 1) + 7 * hop
        expected = LAUNCH + latency + 7 / 8 * size / SU_BW / SHARE["ll128"]
        assert result.time_s == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("size", [8.0, 1e4, 5e5, 2e6, 1e7, 3e7, 1e9])
def test_auto_takes_the_fastest_protocol(size):
    c = cluster(8, protocol="auto")
    times = {p: ring_all_reduce(p, size) for p in ("simple", "ll128", "ll")}
    result = collective(c, "all-reduce", size, "ring")
    assert result.protocol == min(times, key=times.get)
    assert result.time_s == pytest.approx(min(times.values()), rel=1e-9)


def test_auto_goes_ll_then_ll128_then_simple_as_the_size_grows():
    c = cluster(8, protocol="auto")
    chosen = [collective(c, "all-reduce", s, "ring").protocol for s in (8, 1e5, 4e6, 1e9)]
    assert chosen == ["ll", "ll", "ll128", "simple"]


def test_ll_moves_at_most_half_the_bandwidth():
    # 8-byte lines carry 4 data bytes: the fitted fraction stays below NCCL's bound
    assert 0 < LL_EFFICIENCY <= 0.5


@pytest.mark.parametrize("algorithm", ["tree", "halving-doubling", "hierarchical"])
def test_other_algorithms_run_simple(algorithm):
    forced, plain = cluster(16, protocol="ll"), cluster(16)
    for size in (8.0, 1e6):
        a = collective(forced, "all-reduce", size, algorithm)
        assert a.protocol == "simple"
        assert a.time_s == collective(plain, "all-reduce", size, algorithm).time_s


def test_the_protocol_argument_replaces_the_clusters():
    c = cluster(8, protocol="simple")
    assert collective(c, "all-reduce", 8.0, "ring", protocol="ll").protocol == "ll"
    assert collective(c, "all-reduce", 8.0, "ring").protocol == "simple"


def test_nvidia_presets_choose_and_others_keep_simple():
    assert preset_cluster("dgx-h100").protocol == "auto"
    assert preset_cluster("hgx-h800").protocol == "auto"
    for preset in ("atlas-800t-a2", "tpu-v5p-cube", "mi300x-platform"):
        assert preset_cluster(preset).protocol == "simple", preset


def test_bad_protocols_are_named():
    with pytest.raises(SpecError, match=r"cluster\.protocol = 'll64' is not allowed"):
        cluster(8, protocol="ll64")
    with pytest.raises(SpecError, match="'ll128'"):
        collective(cluster(8), "all-reduce", 8.0, protocol="LL-128")
    values = list(cluster(8).topology())
    values[-1] = 7
    with pytest.raises(SpecError, match=r"topology.protocol = 7 is not allowed: 0 \(auto\)"):
        _core.Topology(*values)


def test_the_engine_reports_the_protocol_it_ran():
    c = cluster(8, protocol="auto")
    ranks = np.arange(8, dtype=np.int32)
    assert _core.collective_protocol(core_topology(c), 0, 1, ranks, 8.0) == 1  # ll
    assert _core.collective_protocol(core_topology(c), 0, 1, ranks, 1e9) == 3  # simple
    assert _core.collective_protocol(core_topology(c), 0, 2, ranks, 8.0) == 3  # tree: simple


def test_cli_shows_and_forces_the_protocol(capsys):
    argv = ["collective", "--cluster", "dgx-h100", "--op", "all-reduce", "--size", "8", "--json"]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["algorithm"], data["protocol"]) == ("ring", "ll")
    assert main([*argv, "--protocol", "simple"]) == 0
    forced = json.loads(capsys.readouterr().out)
    assert forced["protocol"] == "simple" and forced["time_s"] > data["time_s"]
    assert main(argv[:-1]) == 0
    assert "protocol" in capsys.readouterr().out


def test_a_scenario_sets_the_protocol_in_its_cluster_table():
    text = '[cluster]\npreset = "dgx-h100"\ndevices = 8\nprotocol = "ll128"\n'
    assert parse_scenario(text).cluster.protocol == "ll128"
    assert parse_scenario(text.replace("ll128", "simple")).cluster.protocol == "simple"
    with pytest.raises(SpecError, match=r"cluster\.protocol = 'fast' is not allowed"):
        parse_scenario(text.replace("ll128", "fast"))


def test_the_engine_doc_quotes_the_switch_points():
    # docs/engine.md, "Protocols": LL below about 1.6 MB, LL128 up to about 27 MB
    c = cluster(8, protocol="auto")
    chosen = [collective(c, "all-reduce", s, "ring").protocol for s in (1.55e6, 1.65e6, 26.5e6)]
    assert chosen == ["ll", "ll128", "ll128"]
    assert collective(c, "all-reduce", 28e6, "ring").protocol == "simple"
    doc = (Path(__file__).parents[1] / "docs/engine.md").read_text(encoding="utf-8")
    assert "LL wins below about 1.6 MB, LL128 up to about 27 MB" in " ".join(doc.split())


def test_the_fit_reproduces_the_ll_fraction_and_the_nvls_constants():
    # tools/fit_nvls.py, rerun: the constants both engines carry are its output
    spec = importlib.util.spec_from_file_location(
        "fit_nvls", Path(__file__).parents[1] / "tools/fit_nvls.py"
    )
    fit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fit)
    assert round(fit.fit_ll(), 3) == LL_EFFICIENCY
    efficiency, latency = fit.fit()
    c = preset_cluster("dgx-h100")
    assert (round(efficiency, 3), round(latency, 7)) == (c.nvls_efficiency, c.nvls_latency)
