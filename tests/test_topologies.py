"""Scale-up topologies (docs/engine.md, "Scale-up topologies"): full mesh and torus clusters,
their algorithms' closed forms through the Python API, both network modes, the presets that use
them, and the checks on their fields."""

import json
from pathlib import Path

import pytest

from podsim import _core
from podsim.engine.core import collective_time
from podsim.engine.reference import Topology as ReferenceTopology
from podsim.errors import ProgramError, SpecError
from podsim.front.api import builtin_scenarios, resolve_scenario, serve
from podsim.front.chipswap import swap_chip
from podsim.front.cli import main
from podsim.front.collective import collective
from podsim.front.scenario import parse_scenario
from podsim.lowering.program import Algorithm, Collective
from podsim.specs.clusters import make_cluster, preset_cluster, presets

GB = 1e9


def _mesh(devices=8, **overrides):
    """Domains of 8 in a full mesh, 50 GB/s per link, nominal bandwidths, no launch cost."""
    values = dict(
        domain_size=8,
        scale_up_bandwidth=350 * GB,
        scale_up_topology="full_mesh",
        scale_up_efficiency=1.0,
        launch_latency=0.0,
        scale_up_latency="2 us",
    )
    values.update(overrides)
    return make_cluster("ascend-910b", devices, **values)


def test_full_mesh_link_defaults_to_the_aggregate_over_its_links():
    # 350 GB/s per device over 7 pair links: 50 GB/s each; an explicit value wins.
    assert _mesh().link_bandwidth == pytest.approx(50 * GB)
    assert _mesh(scale_up_link_bandwidth="20 GB/s").link_bandwidth == 20 * GB
    torus = make_cluster(
        "tpu-v5p", 64, domain_size=64, scale_up_topology="torus", torus_dims=[4, 4, 4]
    )
    assert torus.link_bandwidth == pytest.approx(torus.scale_up_bandwidth / 6)


def test_ring_over_one_link_is_seven_times_the_flattened_model():
    # The case: 8 NPUs, a ring all-reduce. Flattened (a switch of the aggregate 350 GB/s)
    # its bandwidth term is 2 (7/8) S / 350 GB/s; over one 50 GB/s link per hop, 7 times that;
    # the mesh algorithm (one step over the 7 links each way) is back at the aggregate.
    mesh, flat = _mesh(), _mesh(scale_up_topology="switch")
    size = 1 * GB
    ring = collective(mesh, "all-reduce", size, "ring").time_s - 14 * 2e-6
    flattened = collective(flat, "all-reduce", size, "ring").time_s - 14 * 2e-6
    meshed = collective(mesh, "all-reduce", size, "mesh").time_s - 2 * 2e-6
    assert ring / flattened == pytest.approx(7.0, rel=1e-9)
    assert meshed == pytest.approx(flattened, rel=1e-9)
    assert meshed == pytest.approx(2 * size / 8 / (50 * GB), rel=1e-9)


@pytest.mark.parametrize("preset", ["atlas-800t-a2", "mi300x-platform"])
def test_the_mesh_algorithm_is_the_auto_choice_on_a_full_mesh(preset):
    cluster = preset_cluster(preset)
    for op in ("all-reduce", "all-gather", "reduce-scatter"):
        for size in (1e3, 1e9):
            assert collective(cluster, op, size).algorithm == "mesh", (op, size)


def test_dimension_ordered_rings_are_the_auto_choice_on_a_torus():
    cluster = preset_cluster("tpu-v5p-cube")
    assert cluster.torus_dims == (4, 4, 4) and cluster.domain_size == 64
    result = collective(cluster, "all-reduce", 1 * GB)
    assert result.algorithm == "torus"
    # 4x4x4, per link l = 100 GB/s x 0.8 achieved, three parts on the three dimensions at once:
    # L + 18 a + 21/64 S / l, that is 2 (63/64) S over the 6 links: the aggregate.
    link = 100 * GB * cluster.scale_up_efficiency
    expected = cluster.launch_latency + 18 * cluster.scale_up_latency + 21 / 64 * GB / link
    assert expected - cluster.launch_latency - 18 * cluster.scale_up_latency == pytest.approx(
        2 * 63 / 64 * GB / (6 * link)
    )
    assert result.time_s == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "preset, op, algorithm",
    [
        ("atlas-800t-a2", "all-reduce", "mesh"),
        ("atlas-800t-a2", "all-reduce", "ring"),
        ("atlas-800t-a2", "all-to-all", "direct"),
        ("mi300x-platform", "all-gather", "mesh"),
        ("tpu-v5p-cube", "reduce-scatter", "torus"),
        ("tpu-v5p-cube", "all-to-all", "direct"),
    ],
)
def test_contention_agrees_with_the_closed_form_without_other_traffic(preset, op, algorithm):
    cluster = preset_cluster(preset)
    times = [
        collective(cluster, op, 256e6, algorithm, network).time_s
        for network in ("analytical", "contention")
    ]
    assert times[1] == pytest.approx(times[0], rel=1e-9)


def test_two_mesh_domains_run_hierarchical_with_one_shot_steps():
    # 16 devices, 2 domains of 8: intra one-shot (a + S/8 / 50 GB/s) each way, rails across
    # (one step of S/16 each way over the NIC).
    cluster = _mesh(16, scale_out_efficiency=1.0, scale_out_latency="5 us")
    ranks = list(range(16))
    code, t = collective_time(cluster, int(Collective.ALL_REDUCE), 4, ranks, 1 * GB)
    nic = cluster.scale_out_bandwidth
    expected = 2 * (2e-6 + GB / 8 / (50 * GB)) + 2 * (5e-6 + GB / 16 / nic)
    assert Algorithm(code) is Algorithm.HIERARCHICAL
    assert t == pytest.approx(expected, rel=1e-12)


def test_switch_presets_keep_a_switch_and_the_engine_sees_no_links_beyond_it():
    wired = {"atlas-800t-a2", "mi300x-platform", "tpu-v5p-cube"}  # corrected presets
    wired |= {"mi325x-platform", "mi355x-platform", "tpu-v4-cube"}  # new ones
    for name in presets():
        cluster = preset_cluster(name)
        kind = cluster.scale_up_topology
        assert (kind != "switch") == (name in wired), name
        if kind == "switch":
            assert cluster.topology()[-8:-3] == (0, 0.0, (1, 1, 1), 1, 0.0)
            # in-switch reduction only where the preset says its switch reduces
            assert (cluster.topology()[-3] > 0) == cluster.in_network_reduction, name
    assert preset_cluster("cloudmatrix384").scale_up_topology == "switch"  # the unified bus


def test_scenario_files_take_the_topology_keys():
    text = """
[cluster]
chip = "tpu-v5p"
devices = 128
domain_size = 64
scale_up_topology = "torus"
torus_dims = [4, 4, 4]
scale_up_link_bandwidth = "90 GB/s"
[model]
preset = "llama3-8b"
[train]
seq_len = 2048
global_batch = 128
tp = 4
"""
    cluster = parse_scenario(text).cluster
    assert cluster.scale_up_topology == "torus" and cluster.link_bandwidth == 90 * GB
    assert cluster.domains == 2


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(scale_up_topology="ring"), "scale_up_topology"),
        (dict(scale_up_topology="torus"), "torus_dims"),
        (dict(scale_up_topology="torus", torus_dims=[4, 4, 2]), "torus_dims"),
        (dict(scale_up_topology="torus", torus_dims=[64, 1]), "torus_dims"),
        (dict(torus_dims=[4, 4, 4]), "torus_dims"),
        (dict(scale_up_topology="full_mesh", scale_up_link_bandwidth=0), "link_bandwidth"),
    ],
)
def test_bad_topology_fields_name_the_field(overrides, field):
    with pytest.raises(SpecError, match=field):
        make_cluster("tpu-v5p", 64, domain_size=64, **overrides)


def test_a_torus_needs_whole_tori_and_a_short_diameter():
    torus = dict(scale_up_topology="torus")
    with pytest.raises(SpecError, match="devices"):
        make_cluster("tpu-v5p", 96, domain_size=64, torus_dims=[4, 4, 4], **torus)
    with pytest.raises(SpecError, match="diameter"):
        make_cluster("tpu-v5p", 66, domain_size=66, torus_dims=[66, 1, 1], **torus)


def test_the_core_refuses_a_bad_topology_code():
    with pytest.raises(SpecError, match="scale_up_topology"):
        _core.Topology(8, 8, 8, 1e9, 0.0, 1e9, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 7, 1e9, (1, 1, 1))
    with pytest.raises(SpecError, match="torus_dims"):
        _core.Topology(8, 8, 8, 1e9, 0.0, 1e9, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 2, 1e9, (2, 2, 3))


def test_the_reference_engine_says_it_models_switches_only():
    with pytest.raises(SpecError, match="switch"):
        ReferenceTopology.from_cluster(preset_cluster("atlas-800t-a2"))


def test_cli_runs_the_mesh_algorithm(capsys):
    argv = ["collective", "--cluster", "atlas-800t-a2", "--op", "all-gather", "--size", "64M"]
    assert main([*argv, "--algorithm", "mesh", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["algorithm"] == "mesh" and out["time_s"] > 0
    assert main([*argv, "--algorithm", "torus", "--json"]) != 0
    assert "torus" in capsys.readouterr().err


def test_a_910c_runs_as_one_rank_per_die_only_when_asked():
    # Default: one device per package, as before. per_die: 768 dies of half a package each
    # (peaks, memory, UB bandwidth, power), a package's two dies joined by their own link.
    whole = preset_cluster("cloudmatrix384")
    dies = preset_cluster("cloudmatrix384", per_die=True)
    assert whole.package_size == 1 and whole.topology()[-5:-3] == (1, 0.0)
    assert (dies.devices, dies.domain_size, dies.package_size) == (768, 768, 2)
    assert dies.chip.peak("bf16") == whole.chip.peak("bf16") / 2
    assert dies.chip.hbm_bytes == whole.chip.hbm_bytes / 2 == 64e9
    assert dies.scale_up_bandwidth == whole.scale_up_bandwidth / 2
    assert dies.device_power_w == pytest.approx(whole.device_power_w / 2)
    assert dies.topology()[-5:-3] == (2, 196e9 * dies.scale_up_efficiency)


def test_the_two_dies_of_a_package_talk_over_their_link():
    # Ring all-gather on the 2 dies of one package: L + a + S/2 over the die link (set to
    # 50 GB/s here, below the 196 GB/s UB share so that it binds).
    cluster = make_cluster(
        "ascend-910c", 2, per_die=True, die_link_bandwidth="50 GB/s", scale_up_efficiency=1.0
    )
    result = collective(cluster, "all-gather", 1 * GB, "ring")
    expected = cluster.launch_latency + cluster.scale_up_latency + 0.5 * GB / (50 * GB)
    assert result.time_s == pytest.approx(expected, rel=1e-12)
    contention = collective(cluster, "all-gather", 1 * GB, "ring", "contention")
    assert contention.time_s == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    "chip, devices, field",
    [("h100-sxm", 8, "one die"), ("ascend-910c", 3, "devices")],
)
def test_per_die_needs_a_multi_die_chip_and_whole_packages(chip, devices, field):
    with pytest.raises(SpecError, match=field):
        make_cluster(chip, devices, per_die=True)


def test_compare_keeps_the_wiring_of_the_same_chip_only():
    base = resolve_scenario("llama3-70b-ascend-910b")
    assert base.cluster.scale_up_topology == "full_mesh"
    same = swap_chip(base, "ascend-910b")
    assert same.scenario.cluster.topology() == base.cluster.topology()
    other = swap_chip(base, "h100-sxm")
    assert other.scenario.cluster.scale_up_topology == "switch"
    assert "scale-up full_mesh -> switch (h100-sxm's own links)" in other.changes


def test_the_readme_quotes_these_atlas_times():
    # README: a 1 GiB ring all-reduce on the Atlas 800T A2 takes 84 ms, the mesh one 12 ms.
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    cluster = preset_cluster("atlas-800t-a2")
    for algorithm, label in (("ring", "ring"), ("auto", "mesh")):
        result = collective(cluster, "all-reduce", 2**30, algorithm)
        assert result.algorithm == label
        quoted = f"{result.time_s * 1e3:.0f} ms"
        assert quoted in readme, quoted


def test_the_cloudmatrix_decode_row_per_die_as_docs_quote_it():
    # docs/engine.md, "Multi-die chips": 1,834 tokens/s per package as EP160 of packages,
    # 2 x 626 = 1,252 per package as the paper's EP320 of dies (published: 1,943).
    text = builtin_scenarios()["deepseek-r1-decode-cloudmatrix384"]
    package = serve(parse_scenario(text)).decode_tokens_per_s_per_device
    per_die = text.replace("devices = 160", "devices = 320\nper_die = true")
    per_die = per_die.replace("ep = 160", "ep = 320").replace("dp = 160", "dp = 320")
    die = serve(parse_scenario(per_die)).decode_tokens_per_s_per_device
    docs = (Path(__file__).parents[1] / "docs" / "engine.md").read_text(encoding="utf-8")
    for value in (package, die, 2 * die):
        assert f"{value:,.0f}" in docs, value


def test_contention_mode_refuses_torus_routes_it_cannot_follow():
    # An 8x8x8 torus: the torus algorithm's flows are one hop, but direct all-to-all reaches
    # (4,4,4), 12 hops away: the analytical network prices it, the contention network (8 hops
    # at most) says why not.
    cluster = make_cluster(
        "tpu-v5p", 512, domain_size=512, scale_up_topology="torus", torus_dims=[8, 8, 8]
    )
    assert collective(cluster, "all-to-all", 1e6, "direct").time_s > 0
    assert collective(cluster, "all-reduce", 1e6, "torus", "contention").time_s > 0
    with pytest.raises(ProgramError, match="analytical"):
        collective(cluster, "all-to-all", 1e6, "direct", "contention")
