"""Daily use of the `podsim` command: built-in scenarios shown and copied, --set overrides,
compare changing only the chip (and saying what changed), one JSON shape for collectives,
scale sweeps with a maximum global batch, help on every option."""

import argparse
import json
import tomllib

import pytest
from test_sweep import JOB, job

from podsim import SpecError, parse_scenario
from podsim.front.api import builtin_scenarios, compare
from podsim.front.chipswap import swap_chip
from podsim.front.cli import build_parser, main
from podsim.front.overrides import parse_value, with_overrides
from podsim.front.sweep import scale_sweep, weak_scaled

SMALL = JOB.format(chip="h100-sxm", rate="failure_rate_per_device_day = 1e-2")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_scenarios_show_prints_the_builtin_toml(capsys):
    code, out, _ = run(capsys, "scenarios", "--show", "llama3-70b-h100")
    assert code == 0 and out == builtin_scenarios()["llama3-70b-h100"]
    assert tomllib.loads(out)["cluster"]
    code, _, err = run(capsys, "scenarios", "--show", "llama3-70b")
    assert code == 2 and "--show = 'llama3-70b'" in err and "llama3-70b-h100" in err


def test_scenarios_copy_refuses_to_overwrite_without_force(capsys, tmp_path):
    path = tmp_path / "mine.toml"
    assert run(capsys, "scenarios", "--copy", "llama3-70b-h100", str(path))[0] == 0
    assert path.read_text() == builtin_scenarios()["llama3-70b-h100"]
    path.write_text("# my edits\n")
    code, _, err = run(capsys, "scenarios", "--copy", "llama3-70b-h100", str(path))
    assert code == 2 and "--force" in err and path.read_text() == "# my edits\n"
    assert run(capsys, "scenarios", "--copy", "llama3-70b-h100", str(path), "--force")[0] == 0
    assert path.read_text() == builtin_scenarios()["llama3-70b-h100"]
    code, _, err = run(capsys, "scenarios", "--copy", "llama3-70b-h100", str(tmp_path))
    assert code == 2 and "directory" in err


def _options(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from ((f"{name} {o}", a) for o, a in _options(sub))
        elif action.option_strings or action.dest != "help":
            yield "/".join(action.option_strings) or action.dest, action


def test_every_option_has_help_and_shows_its_default():
    options = list(_options(build_parser()))
    assert len(options) > 30
    missing = [name for name, action in options if not (action.help or "").strip()]
    assert missing == []
    sub = build_parser()._subparsers._group_actions[0].choices["collective"]
    text = " ".join(sub.format_help().split())
    assert "(default: auto)" in text and "(default: analytical)" in text


def test_set_values_are_toml_or_strings():
    assert parse_value("4") == 4 and parse_value("true") is True
    assert parse_value('"1f1b"') == "1f1b" and parse_value("1f1b") == "1f1b"
    assert parse_value("5 us") == "5 us" and parse_value("[1, 2]") == [1, 2]


def test_set_overrides_a_key_and_names_itself_on_bad_input(tmp_path):
    path = tmp_path / "job.toml"
    path.write_text(SMALL)
    scenario = with_overrides(path, ["train.tp=4", "train.schedule=1f1b", "noise.seed=3"])
    assert (scenario.train.tp, scenario.train.schedule, scenario.train.dp) == (4, "1f1b", 16)
    assert scenario.noise["seed"] == 3
    with pytest.raises(SpecError, match=r"^--set train\.tp=3: .*train\.tp.*\(in .*job\.toml\)"):
        with_overrides(path, ["train.tp=3"])
    with pytest.raises(SpecError, match=r"^--set train\.tpp=2: .*unknown key"):
        with_overrides(path, ["train.tpp=2"])
    with pytest.raises(SpecError, match=r"^--set = 'train' is not allowed"):
        with_overrides(path, ["train"])
    with pytest.raises(SpecError, match=r"^--set model\.preset\.x=1: model\.preset is"):
        with_overrides(path, ["model.preset.x=1"])


def test_train_set_on_the_command_line_changes_the_result(capsys, tmp_path):
    path = tmp_path / "job.toml"
    path.write_text(SMALL.replace("[failures]", "[noise]").split("[noise]")[0])
    base = json.loads(run(capsys, "train", str(path), "--json")[1])
    code, out, _ = run(capsys, "train", str(path), "--set", "train.tp=4", "--json")
    assert code == 0 and json.loads(out)["plan"]["tp"] == 4 and base["plan"]["tp"] == 8
    assert json.loads(out)["step_time_s"] != base["step_time_s"]
    code, _, err = run(capsys, "train", str(path), "--set", "train.zero=7")
    assert code == 2 and err.startswith("podsim: error: --set train.zero=7:")


def test_compare_keeps_the_fabric_and_says_what_changed():
    base = job()  # 64 H100s: domains of 8, the H100's scale-out
    swap = swap_chip(base, "ascend-910c")
    cluster = swap.scenario.cluster
    assert cluster.chip.id == "ascend-910c"
    assert cluster.domain_size == base.cluster.domain_size == 8  # not the 384 of CloudMatrix
    assert cluster.scale_out_bandwidth == base.cluster.scale_out_bandwidth
    assert cluster.scale_up_bandwidth == cluster.chip.scale_up_bandwidth  # the chip's links
    assert any(line.startswith("scale-up ") and "GB/s" in line for line in swap.changes)
    assert swap_chip(base, "h100-sxm").changes == ()
    # A domain the chip cannot build shrinks to the chip's own, and says so.
    cloudmatrix = parse_scenario(SMALL.replace("h100-sxm", "ascend-910c"))
    assert cloudmatrix.cluster.domain_size == 384
    wide = swap_chip(cloudmatrix, "h100-sxm")
    assert wide.scenario.cluster.domain_size == 8
    assert "scale-up domain 384 -> 8 (h100-sxm's largest)" in wide.changes


def test_compare_falls_back_to_bf16_where_the_chip_has_no_fp8():
    fp8 = parse_scenario(SMALL.replace("tp = 8", 'tp = 8\nprecision = "fp8"'))
    rows = compare(fp8, ["h100-sxm", "ascend-910b"])
    assert [r["precision"] for r in rows] == ["fp8", "bf16"]
    assert [r["precision_fallback"] for r in rows] == [False, True]
    assert any("precision fp8 -> bf16" in line for line in rows[1]["changes"])


def test_compare_cli_prints_a_line_per_chip(capsys, tmp_path):
    path = tmp_path / "job.toml"
    path.write_text(SMALL)
    code, out, _ = run(capsys, "compare", str(path), "--chips", "h100-sxm,ascend-910b")
    assert code == 0
    assert "h100-sxm: nothing" in out and "ascend-910b: chip h100-sxm -> ascend-910b" in out


def test_collective_json_has_one_shape_for_one_size_and_a_range(capsys):
    argv = ["collective", "--chip", "h100-sxm", "--op", "all-reduce", "--json", "--size"]
    one = json.loads(run(capsys, *argv, "1G")[1])
    many = json.loads(run(capsys, *argv, "1K:4K")[1])
    assert len(one["results"]) == 1 and len(many["results"]) == 3
    assert one["time_s"] == one["results"][0]["time_s"]  # the contract keys stay on top
    assert {"op", "devices", "network", "results"} <= set(many) and "time_s" not in many


def test_scale_sweep_holds_the_global_batch_at_its_maximum():
    assert weak_scaled(job(), 256, max_global_batch=128).train.global_batch == 128
    assert weak_scaled(job(), 128, max_global_batch=1000).train.global_batch == 128
    rows = scale_sweep(job(), [64, 128, 256], max_global_batch=128)
    assert [r["global_batch"] for r in rows] == [64, 128, 128]
    assert all(isinstance(r["fits_in_memory"], bool) for r in rows)
    with pytest.raises(SpecError, match="--max-global-batch"):
        weak_scaled(job(), 256, max_global_batch=16)  # dp is 32 there


def test_scale_cli_shows_the_global_batch(capsys, tmp_path):
    path = tmp_path / "job.toml"
    path.write_text(SMALL)
    code, out, _ = run(capsys, "train", str(path), "--scale", "64:128", "--max-global-batch", "64")
    assert code == 0 and "global batch" in out and "then strong" in out
    code, _, err = run(capsys, "train", str(path), "--max-global-batch", "64")
    assert code == 2 and "--max-global-batch goes with --scale" in err
