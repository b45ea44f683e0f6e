"""Long runs through the front door, and scale sweeps: where goodput collapses."""

import json

import pytest

from podsim import SpecError, parse_scenario, train
from podsim.front.api import compare, on_chip
from podsim.front.cli import main
from podsim.front.cli.train import parse_scale
from podsim.front.sweep import scale_sweep, weak_scaled
from podsim.results.training import LONG_RUN_KEYS

JOB = """
[cluster]
chip = "{chip}"
devices = 64
[model]
preset = "llama3-8b"
[train]
seq_len = 4096
global_batch = 64
tp = 8
tokens = 1e11
[failures]
{rate}
checkpoint_interval = "auto"
checkpoint_write = "30 s"
restart = "10 min"
runs = 200
"""


def job(chip: str = "h100-sxm", rate: str = "failure_rate_per_device_day = 1e-2"):
    return parse_scenario(JOB.format(chip=chip, rate=rate))


def test_failures_add_the_contract_keys():
    result = train(job()).to_dict()
    assert set(LONG_RUN_KEYS) - {"deadline_probability"} <= set(result)
    assert 0 < result["goodput"] < 1
    assert (
        result["time_to_train_p90_s"] >= result["time_to_train_p50_s"] > result["time_to_train_s"]
    )


def test_ascend_has_no_public_failure_rate_so_one_must_be_given():
    with pytest.raises(SpecError, match="no public per-device failure rate"):
        train(job("ascend-910b", rate=""))
    assert train(job("ascend-910b")).long_run["goodput"] > 0


def test_goodput_falls_as_the_cluster_grows():
    rows = scale_sweep(job(), [64, 256, 1024])
    goodput = [row["goodput"] for row in rows]
    assert goodput[0] > goodput[1] > goodput[2]
    # Weak scaling: the step stays about the same, the failure-free time to train shrinks.
    assert rows[2]["time_to_train_s"] == pytest.approx(rows[0]["time_to_train_s"] / 16, rel=0.05)


def test_weak_scaling_keeps_each_replica_batch():
    scaled = weak_scaled(job(), 256)
    assert (scaled.train.dp, scaled.train.global_batch, scaled.cluster.devices) == (32, 256, 256)
    with pytest.raises(SpecError, match="multiple of tp"):
        weak_scaled(job(), 100)


def test_scale_cli(capsys, tmp_path):
    path = tmp_path / "job.toml"
    path.write_text(JOB.format(chip="h100-sxm", rate="failure_rate_per_device_day = 1e-2"))
    assert main(["train", str(path), "--scale", "64:256", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [row["devices"] for row in rows] == [64, 128, 256]
    assert parse_scale("1024:65536") == [1024 * 2**k for k in range(7)]
    assert parse_scale("8,24") == [8, 24]
    with pytest.raises(SpecError, match="--scale"):
        parse_scale("big")


def test_compare_runs_the_same_work_on_each_chip(capsys):
    scenario = job()
    rows = compare(scenario, ["h100-sxm", "a100-sxm-80gb"])
    assert [row["chip"] for row in rows] == ["h100-sxm", "a100-sxm-80gb"]
    assert rows[1]["step_time_s"] > rows[0]["step_time_s"]  # a slower chip, a longer step
    assert on_chip(scenario, "ascend-910c").cluster.domain_size == 384  # its standard system
    code = main(["compare", "llama3-70b-h100", "--chips", "h100-sxm,h200-sxm", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and {row["chip"] for row in out["rows"]} == {"h100-sxm", "h200-sxm"}
    assert all("goodput" in row for row in out["rows"])
