"""The `podsim` command: JSON keys of the interface contract, tables, and errors."""

import json

import pytest
from test_training import CONTRACT as TRAIN_KEYS

from podsim.front.cli import main
from podsim.front.cli.collective import parse_sizes

CONTRACT = {
    "op",
    "devices",
    "size_bytes",
    "algorithm",
    "time_s",
    "algbw_bytes_per_s",
    "busbw_bytes_per_s",
}


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_collective_json_has_the_contract_keys(capsys):
    code, out, _ = run(
        capsys,
        "collective",
        "--cluster",
        "dgx-h100",
        "--devices",
        "16",
        "--op",
        "all-reduce",
        "--size",
        "1G",
        "--json",
    )
    data = json.loads(out)
    assert code == 0
    assert set(data) >= CONTRACT
    assert data["devices"] == 16 and data["size_bytes"] == 2**30
    assert data["busbw_bytes_per_s"] == pytest.approx(data["algbw_bytes_per_s"] * 2 * 15 / 16)


def test_collective_range_json_lists_every_size(capsys):
    code, out, _ = run(
        capsys,
        "collective",
        "--chip",
        "h100-sxm",
        "--op",
        "all-gather",
        "--size",
        "8:1K",
        "--json",
        "--network",
        "contention",
    )
    data = json.loads(out)
    assert code == 0
    assert [r["size_bytes"] for r in data["results"]] == [8.0 * 2**k for k in range(8)]
    assert all(set(r) >= CONTRACT for r in data["results"])


def test_collective_table_is_readable(capsys):
    code, out, _ = run(
        capsys, "collective", "--cluster", "atlas-800t-a2", "--op", "broadcast", "--size", "1M:4M"
    )
    assert code == 0
    for text in ("busbw (GB/s)", "1 MiB", "2 MiB", "4 MiB", "ascend-910b"):
        assert text in out


def test_chips_json_lists_sources(capsys):
    code, out, _ = run(capsys, "chips", "--json")
    chips = json.loads(out)
    assert code == 0
    assert {"h100-sxm", "ascend-910c"} <= set(chips)
    assert chips["h100-sxm"]["peak_flops"]["bf16"] == pytest.approx(989e12, rel=0.01)
    assert chips["h800-sxm"]["sources"]["scale_up_bandwidth"]


def test_clusters_table(capsys):
    code, out, _ = run(capsys, "clusters")
    assert code == 0
    assert "cloudmatrix384" in out and "gb200-nvl72" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["collective", "--chip", "h1000", "--op", "all-reduce", "--size", "8"], "h1000"),
        (["collective", "--chip", "h100-sxm", "--op", "all-reduce", "--size", "-8"], "size"),
        (
            ["collective", "--chip", "h100-sxm", "--op", "all-reduce", "--size", "8 parsecs"],
            "unknown size unit",
        ),
        (
            [
                "collective",
                "--chip",
                "h100-sxm",
                "--devices",
                "0",
                "--op",
                "all-reduce",
                "--size",
                "8",
            ],
            "devices",
        ),
        (
            [
                "collective",
                "--cluster",
                "dgx-h100",
                "--devices",
                "12",
                "--op",
                "all-reduce",
                "--size",
                "8",
                "--algorithm",
                "halving-doubling",
            ],
            "halving-doubling cannot run",
        ),
        (["collective", "--op", "all-reduce", "--size", "8"], "give --chip"),
    ],
)
def test_errors_go_to_stderr_with_a_nonzero_exit(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert message in err


def test_size_ranges_follow_nccl_tests():
    assert parse_sizes("8:64") == [8, 16, 32, 64]
    assert parse_sizes("1K:16K:4") == [1024, 4096, 16384]
    assert parse_sizes("1 GiB") == [2**30]


def test_train_json_has_the_contract_keys(capsys, tmp_path):
    scenario = tmp_path / "small.toml"
    scenario.write_text(
        '[cluster]\nchip = "h100-sxm"\ndevices = 16\n[model]\npreset = "llama3-8b"\n'
        '[train]\nseq_len = 4096\nglobal_batch = 16\ntp = 8\ntokens = "1e12"\n'
    )
    code, out, _ = run(capsys, "train", str(scenario), "--json")
    assert code == 2  # tokens must be a number, not a string: a clear error
    scenario.write_text(scenario.read_text().replace('"1e12"', "1e12"))
    code, out, _ = run(capsys, "train", str(scenario), "--json")
    data = json.loads(out)
    assert code == 0 and set(data) >= TRAIN_KEYS
    assert {"time_to_train_s", "device_hours"} <= set(data)
    assert set(data["breakdown"]) >= {"compute_s", "exposed_comm_s", "bubble_s", "straggler_s"}


def test_train_writes_a_perfetto_trace(capsys, tmp_path):
    trace = tmp_path / "step.json"
    code, out, _ = run(capsys, "train", "llama3-70b-ascend-910b", "--trace", str(trace))
    assert code == 0 and "step time" in out
    events = json.loads(trace.read_text())["traceEvents"]
    ranks = {e["pid"] for e in events if e["ph"] == "X"}
    assert len(ranks) == 1024
    names = {e["name"] for e in events if e["ph"] == "X" and e["pid"] == 0}
    assert {"optimizer", "dp grads", "tp all-reduce", "send act mb0"} <= names


def test_models_scenarios_and_validate_listings(capsys):
    code, out, _ = run(capsys, "models", "--json")
    models = json.loads(out)
    assert code == 0 and models["deepseek-v3"]["experts"] == 256
    assert models["llama3-405b"]["sources"]["layers"]
    code, out, _ = run(capsys, "scenarios")
    assert code == 0 and "deepseek-v3-h800" in out


def test_unknown_scenario_is_named(capsys):
    code, _, err = run(capsys, "train", "no-such-scenario")
    assert code == 2 and "no-such-scenario" in err and "built-in" in err
