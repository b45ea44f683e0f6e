"""`podsim sweep` / podsim.sweep: grid order, invalid points kept, jobs-independent rows, the
in-process cache, CSV / JSON output and the CLI's one-line errors."""

import csv
import json

import pytest

import podsim
from podsim.errors import SpecError
from podsim.front import grid_sweep
from podsim.front.cli import main
from podsim.front.grid_sweep import MAX_POINTS, grid_points, parse_grid, sweep

SCENARIO = "llama3-70b-h100"
GRID = {"train.tp": [4, 3, 8], "train.schedule": ["1f1b", "dualpipe"]}


def test_points_are_the_product_in_grid_order():
    points = grid_points({"a.x": [1, 2], "b.y": ["p", "q", "r"]})
    assert [(p["a.x"], p["b.y"]) for p in points] == [
        (1, "p"), (1, "q"), (1, "r"), (2, "p"), (2, "q"), (2, "r")
    ]  # fmt: skip


def test_parse_grid_reads_values_as_set_does():
    assert parse_grid(["train.tp=4,8", "train.schedule=1f1b"]) == {
        "train.tp": [4, 8],
        "train.schedule": ["1f1b"],
    }


@pytest.mark.parametrize("text", ["train.tp", "=4,8", "train.tp=", "train.tp=4,,8", "a..b=1"])
def test_malformed_grid_is_refused(text):
    with pytest.raises(SpecError, match="--grid"):
        parse_grid([text])


def test_too_many_points_are_refused():
    with pytest.raises(SpecError, match=r"--grid .*at most"):
        grid_points({"a.x": list(range(MAX_POINTS)), "b.y": [1, 2]})


def test_rows_hold_swept_keys_results_and_invalid_points():
    grid_sweep.clear_cache()
    rows = sweep(SCENARIO, GRID, jobs=1)
    assert [(r["train.tp"], r["train.schedule"]) for r in rows] == [
        (tp, s) for tp in (4, 3, 8) for s in ("1f1b", "dualpipe")
    ]
    for row in rows:
        if row["train.tp"] == 3:  # 3 does not divide the cluster: kept, with its reason
            assert "--grid train.tp=3" in row["error"] and "step_time_s" not in row
        else:
            assert "error" not in row
            assert row["step_time_s"] > 0 and 0 < row["mfu"] < 1
            assert row["breakdown.compute_s"] > 0
            assert not any(isinstance(v, dict | list) for v in row.values())
    assert podsim.sweep is sweep


def test_jobs_do_not_change_the_rows():
    grid_sweep.clear_cache()
    serial = sweep(SCENARIO, GRID, jobs=1)
    grid_sweep.clear_cache()
    parallel = sweep(SCENARIO, GRID, jobs=2)
    assert serial == parallel


def test_a_repeated_point_is_not_run_again(monkeypatch):
    grid_sweep.clear_cache()
    calls = []
    run = grid_sweep._run_point

    def counted(*args):
        calls.append(args)
        return run(*args)

    monkeypatch.setattr(grid_sweep, "_run_point", counted)
    first = sweep(SCENARIO, {"train.tp": [4, 4, 8]}, jobs=1)
    assert len(calls) == 2  # 4 twice in one sweep: run once
    assert first[0] == first[1]
    again = sweep(SCENARIO, {"train.tp": ["8", 4]}, jobs=1)  # "8" is read as 8
    assert len(calls) == 2 and again[0]["step_time_s"] == first[2]["step_time_s"]
    sweep(SCENARIO, {"train.tp": [4]}, jobs=1, network="contention")  # another network
    assert len(calls) == 3


def test_serving_scenario_runs_serve():
    rows = sweep("llama3-70b-serve-h100", {"cluster.pue": [1.1, 1.3]}, jobs=1)
    assert all("tpot_s" in row and "error" not in row for row in rows)
    assert rows[0]["energy_per_million_tokens_j"] < rows[1]["energy_per_million_tokens_j"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_json_table_and_csv(capsys, tmp_path):
    out_csv = tmp_path / "rows.csv"
    argv = ["sweep", SCENARIO, "--grid", "train.tp=4,3", "--jobs", "1"]
    code, out, err = run(capsys, *argv, "--json", "--out", str(out_csv))
    assert code == 0, err
    document = json.loads(out)
    assert document["scenario"] == SCENARIO and len(document["rows"]) == 2
    with out_csv.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert [r["train.tp"] for r in rows] == ["4", "3"]
    assert float(rows[0]["step_time_s"]) == document["rows"][0]["step_time_s"]
    assert rows[0]["error"] == "" and "train.tp=3" in rows[1]["error"]
    assert list(tmp_path.iterdir()) == [out_csv]  # no temporary file left
    out_json = tmp_path / "rows.json"
    code, out, err = run(capsys, *argv, "--out", str(out_json))
    assert code == 0, err
    assert "grid points" in out and "[1] --grid train.tp=3" in out
    assert json.loads(out_json.read_text())["rows"] == document["rows"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--grid", "train.tp"], "--grid"),
        (["--grid", "train.tp=4", "--grid", "train.tp=8"], "--grid"),
        (
            [
                "--grid",
                "a.x=" + ",".join(map(str, range(101))),
                "--grid",
                "b.y=" + ",".join(map(str, range(100))),
            ],
            "--grid",
        ),
        (["--grid", "train.tp=4", "--out", "rows.txt"], "--out"),
        (["--grid", "train.tp=4", "--jobs", "0"], "--jobs"),
        (["--grid", "train.tp=4", "--set", "train.tp=3"], "--set"),
    ],
)
def test_cli_errors_are_one_line(capsys, argv, needle):
    code, out, err = run(capsys, "sweep", SCENARIO, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("podsim: error: ") and needle in err


def test_interrupt_stops_the_pool_and_propagates():
    """Ctrl-C while points run on the pool: the workers are ended and KeyboardInterrupt goes on
    to the caller (the CLI then exits with status 130)."""
    grid_sweep.clear_cache()
    base, source = grid_sweep.scenario_document(SCENARIO)
    points = [{"train.tp": tp, "train.micro_batch": mb} for tp in (4, 8) for mb in (1, 2)]

    def interrupt(done: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        grid_sweep.run_points(base, source, points, jobs=2, progress=interrupt)
