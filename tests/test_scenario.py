"""Scenario files: the published calibration scenarios load as they are; every mistake is a
SpecError that names the field (and the file)."""

import json
from importlib import resources
from pathlib import Path

import pytest

from podsim import SpecError
from podsim.front.scenario import Scenario, load_scenario, parse_scenario

SCENARIOS = Path(str(resources.files("podsim").joinpath("data/validation")))

# devices, tp, pp, dp as the papers give them (Megatron-LM SC'21 Table 1; Korthikanti et al.).
EXPECTED = {
    "korthikanti22_22B": (8, 8, 1, 1),
    "deepseek_v3_2048_h800": (2048, 1, 16, 128),
    "korthikanti22_175B": (64, 8, 8, 1),
    "korthikanti22_530B": (280, 8, 35, 1),
    "korthikanti22_1T": (512, 8, 64, 1),
    "megatron_sc21_t1_1p7B": (32, 1, 1, 32),
    "megatron_sc21_t1_3p6B": (64, 2, 1, 32),
    "megatron_sc21_t1_7p5B": (128, 4, 1, 32),
    "megatron_sc21_t1_18p4B": (256, 8, 1, 32),
    "megatron_sc21_t1_39p1B": (512, 8, 2, 32),
    "megatron_sc21_t1_76p1B": (1024, 8, 4, 32),
    "megatron_sc21_t1_145p6B": (1536, 8, 8, 24),
    "megatron_sc21_t1_310p1B": (1920, 8, 16, 15),
    "megatron_sc21_t1_529p6B": (2520, 8, 35, 9),
    "megatron_sc21_t1_1008p0B": (3072, 8, 64, 6),
    "megatron_sc21_t2_174p6B_384gpu": (384, 8, 12, 4),
    "megatron_sc21_t2_174p6B_768gpu": (768, 8, 12, 8),
    "megatron_sc21_t2_174p6B_1536gpu": (1536, 8, 12, 16),
    "megatron_sc21_t2_529p6B_560gpu": (560, 8, 35, 2),
    "megatron_sc21_t2_529p6B_1120gpu": (1120, 8, 35, 4),
}

BASE = """
[cluster]
chip = "a100-sxm-80gb"
devices = 64

[model]
layers = 24
hidden = 2304
heads = 24
ffn_hidden = 9216
vocab = 51200

[train]
seq_len = 2048
global_batch = 512
tp = 2
pp = 2
"""


def test_every_calibration_scenario_is_expected():
    assert sorted(p.stem for p in SCENARIOS.glob("*.toml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_calibration_scenarios_load(name):
    path = SCENARIOS / f"{name}.toml"
    scenario = load_scenario(path)
    devices, tp, pp, dp = EXPECTED[name]
    assert scenario.source == str(path)
    assert scenario.cluster.devices == devices
    assert (scenario.train.tp, scenario.train.pp, scenario.train.dp) == (tp, pp, dp)
    assert scenario.model.layers > 0
    assert scenario.serve is scenario.noise is scenario.failures is None
    first_line = path.read_text(encoding="utf-8").splitlines()[0]
    assert first_line.startswith(("# calibration (shared): ", "# validation (held out): "))
    expect = json.loads((SCENARIOS / f"{name}.expect.json").read_text(encoding="utf-8"))
    assert {"metric", "value", "source"} <= set(expect)


def test_a_scenario_from_a_string():
    scenario = parse_scenario(BASE)
    assert isinstance(scenario, Scenario) and scenario.source == "<string>"
    assert scenario.train.dp == 16  # the default: devices / (tp * pp * cp)
    assert scenario.model.hidden == 2304


def test_a_cluster_alone_is_a_scenario():
    scenario = parse_scenario('[cluster]\nchip = "h100-sxm"\ndevices = 16\n')
    assert scenario.cluster.devices == 16
    assert scenario.model is scenario.train is None


def test_a_users_own_chip_table():
    text = """
[cluster]
devices = 32
domain_size = 16

[cluster.chip]
id = "my-npu"
name = "a user's own accelerator"
vendor = "me"
peak_flops = { bf16 = "500 TFLOP/s" }
hbm_bytes = "96 GB"
hbm_bandwidth = "2 TB/s"
scale_up_bandwidth = "300 GB/s"
scale_up_latency = "1.5 us"
domain_size = 16
scale_out_bandwidth = "200 Gb/s"
scale_out_latency = "6 us"
tdp_watts = 500
"""
    cluster = parse_scenario(text).cluster
    assert cluster.chip.id == "my-npu" and cluster.devices == 32
    assert cluster.scale_up_latency == pytest.approx(1.5e-6)
    assert cluster.scale_out_bandwidth == pytest.approx(25e9)


def test_noise_and_failures_in_si_units():
    text = (
        BASE
        + """
[noise]
seed = 7
compute_cv = 0.02
link_latency_median = "2 us"
link_latency_p99 = "20 us"
straggler_ranks = [5, 3, 5]
straggler_slowdown = 1.5

[failures]
device_mtbf = "50000 h"
checkpoint_interval = "auto"
checkpoint_write = "30 s"
checkpoint_async = true
restart = "10 min"
spares = 4
runs = 100
"""
    )
    scenario = parse_scenario(text)
    assert scenario.noise["link_latency_p99"] == pytest.approx(20e-6)
    assert scenario.noise["straggler_ranks"] == (3, 5)
    assert scenario.noise["seed"] == 7
    assert scenario.failures["device_mtbf"] == pytest.approx(50000 * 3600)
    assert scenario.failures["restart"] == pytest.approx(600)
    assert scenario.failures["checkpoint_interval"] == "auto"
    assert scenario.failures["checkpoint_async"] is True


def test_serve_is_kept_as_a_table():
    scenario = parse_scenario(BASE + '\n[serve]\nphase = "decode"\nbatch = 64\n')
    assert scenario.serve == {"phase": "decode", "batch": 64}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (BASE + "\n[optimizer]\nlr = 1e-4\n", r"unknown top-level key\(s\) \['optimizer'\]"),
        (BASE + "momentum = 0.9\n", r"train: unknown key\(s\) \['momentum'\]"),
        (BASE + "\n[noise]\njitter = 0.1\n", r"noise: unknown key\(s\) \['jitter'\]"),
        (BASE + "\n[failures]\nmtbf = 1\n", r"failures: unknown key\(s\) \['mtbf'\]"),
        (BASE + '\n[noise]\nlink_latency_p99 = "2 parsecs"\n', "noise.link_latency_p99"),
        (BASE + '\n[failures]\nrestart = "-5 min"\n', "failures.restart"),
        (BASE + '\n[failures]\ncheckpoint_interval = "soon"\n', "failures.checkpoint_interval"),
        (BASE + "\n[noise]\nstraggler_ranks = [64]\n", "noise.straggler_ranks"),
        (BASE + "\n[noise]\nstraggler_fraction = 1.5\n", "noise.straggler_fraction"),
        (BASE + "\n[noise]\nstraggler_slowdown = 0.5\n", "noise.straggler_slowdown"),
        (BASE + "\n[noise]\nseed = -1\n", "noise.seed"),
        (BASE + "\n[noise]\nsteps = 0\n", "noise.steps"),
        (BASE + '\n[noise]\nlink_latency_median = "9 us"\nlink_latency_p99 = "3 us"\n', "p99"),
        (BASE + '\n[failures]\ndevice_mtbf = "1 d"\nfailure_rate_per_device_day = 1\n', "not both"),
        (BASE + '\n[failures]\ncheckpoint_async = "yes"\n', "failures.checkpoint_async"),
        (
            BASE.replace('"a100-sxm-80gb"', '"a100-sxm-80gb"\nscale_out_latency = "5 lightyears"'),
            "cluster.scale_out_latency",
        ),
        (BASE + "dp = 8\n", r"train.tp \* pp \* dp \* cp"),
        (
            BASE.split("[model]")[0] + "[train]\nseq_len = 2048\nglobal_batch = 8\n",
            r"\[train\] needs",
        ),
        ("[model]\nlayers = 2\n", r"\[cluster\] is missing"),
        ("serve = 3\n" + BASE, "serve = 3"),
        (BASE + "\n[model.extra]\nx = 1\n", r"model: unknown key\(s\) \['extra'\]"),
    ],
)
def test_mistakes_name_the_field(text, match):
    with pytest.raises(SpecError, match=match) as error:
        parse_scenario(text, source="bad.toml")
    assert str(error.value).startswith("bad.toml: ")


def test_a_toml_syntax_error_names_the_file_and_line(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text(BASE + "seq_len = \n", encoding="utf-8")
    with pytest.raises(SpecError, match=r"broken\.toml, line 18: not valid TOML") as error:
        load_scenario(path)
    assert str(path) in str(error.value)


def test_with_devices_rescales_dp_and_keeps_the_batch():
    scenario = load_scenario(SCENARIOS / "megatron_sc21_t1_145p6B.toml")
    bigger = scenario.with_devices(3072)
    assert bigger.cluster.devices == 3072 and scenario.cluster.devices == 1536
    assert (bigger.train.tp, bigger.train.pp, bigger.train.dp) == (8, 8, 48)
    assert bigger.train.global_batch == scenario.train.global_batch == 2304
    assert bigger.model is scenario.model and bigger.source == scenario.source
    assert scenario.with_devices(1536) == scenario


def test_with_devices_checks_the_new_size():
    scenario = parse_scenario(BASE + "\n[noise]\nstraggler_ranks = [40]\n")
    with pytest.raises(SpecError, match=r"devices = 30 .*multiple of tp \* pp \* cp \(4\)"):
        scenario.with_devices(30)
    with pytest.raises(SpecError, match=r"noise\.straggler_ranks"):
        scenario.with_devices(32)
    with pytest.raises(SpecError, match=r"train\.global_batch"):  # 512 over dp = 1024
        scenario.with_devices(4096)
    with pytest.raises(SpecError, match="devices"):
        scenario.with_devices(0)
    assert scenario.with_devices(128).train.dp == 32


def test_with_devices_without_a_plan():
    scenario = parse_scenario('[cluster]\nchip = "h100-sxm"\ndevices = 16\n')
    assert scenario.with_devices(24).cluster.devices == 24
