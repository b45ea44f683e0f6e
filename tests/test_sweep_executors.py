"""Sweeps on every executor give the same rows; the on-disk cache; DataFrames and Parquet."""

import json

import pandas
import pytest

from podsim.engine.core import replicated_threads
from podsim.errors import SpecError
from podsim.front import grid_sweep
from podsim.front.cli import main
from podsim.front.executors import run_all
from podsim.front.grid_sweep import sweep, sweep_frame
from podsim.front.result_cache import ResultCache, result_key

SCENARIO = "llama3-70b-h100"
GRID = {"train.tp": [4, 3, 8], "train.pp": [4, 8]}


def square(x: int, y: int) -> int:
    return x * x + y


def test_run_all_keeps_order_on_every_local_executor():
    items = [(i, 1) for i in range(7)]
    expected = [i * i + 1 for i in range(7)]
    seen: list[int] = []
    assert run_all(square, items, "serial", progress=seen.append) == expected
    assert seen == list(range(1, 8))
    assert run_all(square, items, "processes", jobs=2) == expected
    assert run_all(square, [], "processes") == []


def threads_for_many_steps(steps: int) -> int:
    return replicated_threads(steps, 1000)


def test_workers_run_noisy_steps_on_one_thread_each(dask_client):
    # A pool's workers share out the CPUs: their replicated noisy steps take one thread each,
    # where this process takes as many as it may use.
    here = threads_for_many_steps(100)
    assert here == replicated_threads(100, 1000) >= 1
    assert run_all(threads_for_many_steps, [(100,)] * 2, "processes", jobs=2) == [1, 1]
    assert run_all(threads_for_many_steps, [(100,)], dask_client) == [1]
    assert threads_for_many_steps(100) == here  # this process is not limited


@pytest.mark.parametrize("executor", ["threads", 3, "dask"])
def test_unknown_executor_is_refused_before_work(executor):
    with pytest.raises(SpecError, match=r"executor = .* is not allowed"):
        run_all(square, [(1, 2)], executor)


def test_local_pool_and_dask_local_cluster_give_identical_tables(dask_client):
    grid_sweep.clear_cache()
    pool_rows = sweep(SCENARIO, GRID, jobs=2, executor="processes")
    grid_sweep.clear_cache()
    dask_rows = sweep(SCENARIO, GRID, executor=dask_client)
    grid_sweep.clear_cache()
    serial_rows = sweep(SCENARIO, GRID, executor="serial")
    assert pool_rows == dask_rows == serial_rows
    assert sum("error" in row for row in pool_rows) == 2  # tp 3 divides nothing


def test_disk_cache_makes_a_repeated_sweep_free(tmp_path, monkeypatch):
    grid_sweep.clear_cache()
    first = sweep(SCENARIO, {"train.tp": [4, 8]}, jobs=1, cache=tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == 2
    grid_sweep.clear_cache()  # as a new process would start

    def refuse(*args):
        raise AssertionError("a cached point was run again")

    monkeypatch.setattr(grid_sweep, "_run_point", refuse)
    assert sweep(SCENARIO, {"train.tp": [8, 4]}, jobs=1, cache=tmp_path) == first[::-1]


def test_cache_restores_non_finite_numbers_and_ignores_broken_files(tmp_path):
    cache = ResultCache(tmp_path)
    cache.put("k", {"a": float("inf"), "b": 1.5, "c": "x"})
    again = ResultCache(tmp_path)
    assert again.get("k") == {"a": float("inf"), "b": 1.5, "c": "x"}
    (tmp_path / "broken.json").write_text("{not json")
    assert again.get("broken") is None
    with pytest.raises(SpecError, match="--cache"):
        ResultCache(tmp_path / "broken.json")


def test_key_changes_with_document_and_network():
    document = {"train": {"tp": 4}}
    key = result_key(document, "analytical")
    assert key == result_key({"train": {"tp": 4}}, "analytical")
    assert key != result_key({"train": {"tp": 8}}, "analytical")
    assert key != result_key(document, "contention")


def test_frame_and_parquet_hold_the_rows(tmp_path, capsys):
    grid_sweep.clear_cache()
    frame = sweep_frame(SCENARIO, {"train.tp": [4, 3]}, jobs=1)
    assert list(frame.columns[:1]) == ["train.tp"]
    assert frame["train.tp"].tolist() == [4, 3]
    assert pandas.isna(frame["step_time_s"][1]) and "train.tp=3" in frame["error"][1]
    out = tmp_path / "rows.parquet"
    argv = ["sweep", SCENARIO, "--grid", "train.tp=4,3", "--jobs", "1", "--json"]
    code = main([*argv, "--out", str(out)])
    printed = json.loads(capsys.readouterr().out)
    assert code == 0
    table = pandas.read_parquet(out)
    assert table["step_time_s"][0] == printed["rows"][0]["step_time_s"]
    assert table["train.tp"].tolist() == [4, 3]


def test_cli_dask_and_cache_options(tmp_path, capsys):
    argv = ["sweep", SCENARIO, "--grid", "train.tp=4,8", "--json", "--cache", str(tmp_path)]
    code = main([*argv, "--dask", "local", "--jobs", "1"])
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert code == 0 and len(list(tmp_path.glob("*.json"))) == 2
    grid_sweep.clear_cache()
    code = main([*argv, "--jobs", "1"])
    assert code == 0 and json.loads(capsys.readouterr().out)["rows"] == rows
