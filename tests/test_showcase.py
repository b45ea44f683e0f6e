"""`podsim showcase` at reduced size (--quick): every number it prints is in its JSON and is
what the ordinary API gives on the scenario file it wrote; every plan fits; instability never
helps; the report folder and the CLI."""

import contextlib
import io
import json
import math
import tomllib
from pathlib import Path

import pytest

import podsim
from podsim.errors import DependencyError, SpecError
from podsim.front.api import serve, train
from podsim.front.cli import main
from podsim.front.cli.output import finite_json
from podsim.front.doc_tables import block
from podsim.front.scenario import load_scenario
from podsim.front.showcase import assumptions as a
from podsim.front.showcase.documents import global_batch, toml_text
from podsim.front.showcase.figures import write_figures
from podsim.front.showcase.folder import Report
from podsim.front.showcase.plans import budget_devices, choose_train_plan, per_device
from podsim.front.showcase.readme import doc_blocks, markdown_table
from podsim.front.showcase.rows import (
    SCALE_COLUMNS,
    SERVE_COLUMNS,
    TRAIN_COLUMNS,
    scale_rows,
    serve_row,
    train_row,
)
from podsim.front.sweep import scale_sweep
from podsim.results.tables import cell

CHIPS = ["h800-sxm", "h20", "ascend-910b", "ascend-910c"]


@pytest.fixture(scope="module")
def shown(tmp_path_factory):
    """One CLI run: `podsim showcase --quick --out DIR --json`; (exit code, report, folder)."""
    out = tmp_path_factory.mktemp("showcase") / "report"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["showcase", "--quick", "--out", str(out), "--json"])
    return code, json.loads(stdout.getvalue()), out


def test_the_cli_exits_cleanly_and_writes_the_folder(shown):
    code, report, out = shown
    assert code == 0
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == report["files"]
    assert {"README.md", "showcase.json"} <= set(written)
    stems = {f"{m}-{c}-{s}" for m in ["r2-class"] for c in CHIPS for s in ("stable", "unstable")}
    assert {f"scenarios/train-{s}.toml" for s in stems} <= set(written)
    assert {f"runs/train-{s}.json" for s in stems} <= set(written)
    for phase in ("decode", "prefill"):
        assert {f"scenarios/serve-deepseek-r1-{phase}-{c}.toml" for c in CHIPS} <= set(written)
    assert json.loads((out / "showcase.json").read_text()) == report
    assert not list(out.rglob("*.tmp"))


def test_every_training_row_is_what_its_scenario_file_gives(shown):
    _, report, out = shown
    assert len(report["training"]) == 2 * len(CHIPS)
    for row in report["training"]:
        result = train(load_scenario(out / row["scenario"])).to_dict()
        again = finite_json(
            train_row(row["model"], row["chip"], row["instability"] == "on", result)
        )
        again.pop("precision_shown")  # the row marks a BF16 fallback with "*"
        assert again == {k: row[k] for k in again}
        assert json.loads((out / row["run"]).read_text()) == finite_json(result)


def test_every_serving_row_is_what_its_scenario_files_give(shown):
    _, report, out = shown
    for row in report["serving"]:
        decode, prefill = (serve(load_scenario(out / path)).to_dict() for path in row["scenarios"])
        again = serve_row(row["chip"], decode, prefill)
        assert finite_json(again) == {k: row[k] for k in again}
        stem = Path(row["scenarios"][0]).stem
        assert json.loads((out / "runs" / f"{stem}.json").read_text()) == finite_json(decode)


def test_the_json_holds_every_number_printed(shown):
    """Each table cell (terminal and README use the same columns) formats a value of the JSON,
    and the README's tables are exactly those cells."""
    _, report, out = shown
    readme = (out / "README.md").read_text()
    tables = (
        (TRAIN_COLUMNS, report["training"]),
        (SERVE_COLUMNS, report["serving"]),
        (SCALE_COLUMNS, scale_rows(report["scale"])),
    )
    for columns, rows in tables:
        for row in rows:
            assert all(key in row and row[key] is not None for _, key, _ in columns)
        for line in markdown_table(columns, rows)[2:]:
            assert line in readme
    for line in report["reading"]:
        assert line in readme


def test_every_chip_runs_a_plan_that_fits(shown):
    _, report, _ = shown
    assert all(row["fits_in_memory"] for row in report["training"])
    for chips in report["plans"].values():
        for plan in chips.values():
            fitting = [t for t in plan["tried"] if t["valid"] and t["fits_in_memory"]]
            best = max(fitting, key=lambda t: t["tokens_per_s"])
            assert plan["plan"] == best["plan"]  # the fastest that fits won
    for chip in CHIPS:
        for phase in ("decode", "prefill"):
            path = f"serve-deepseek-r1-{phase}-{chip}.json"
            assert json.loads((shown[2] / "runs" / path).read_text())["fits_in_memory"]


def test_chips_without_fp8_train_in_bf16_and_say_so(shown):
    _, report, _ = shown
    for row in report["training"]:
        fp8 = "fp8" in podsim.get_chip(row["chip"]).peak_flops
        assert row["precision"] == ("fp8" if fp8 else "bf16")
        assert row["precision_shown"].endswith("*") == (not fp8)


def test_instability_never_improves_goodput_or_time_to_train(shown):
    _, report, _ = shown
    rows = {(r["model"], r["chip"], r["instability"]): r for r in report["training"]}
    for (model, chip, state), row in rows.items():
        if state == "on":
            calm = rows[(model, chip, "off")]
            assert row["goodput"] < calm["goodput"] == 1.0
            assert row["time_to_train_s"] > calm["time_to_train_s"]
            assert row["step_time_s"] >= calm["step_time_s"]
            assert row["interruptions_per_day"] > calm["interruptions_per_day"] == 0.0


def test_equal_budget_devices_are_what_the_budget_buys(shown):
    _, report, _ = shown
    budget = report["budget"]
    assert budget["amount"] == pytest.approx(2048 * per_device(a.chip_setups()[0])["power_w"])
    for chip, devices in budget["devices"].items():
        power = budget["per_device"][chip]["power_w"]
        assert devices % a.DEVICE_BLOCK == 0
        assert devices * power <= budget["amount"] < (devices + a.DEVICE_BLOCK) * power
        assert all(r["devices"] == devices for r in report["training"] if r["chip"] == chip)


def test_per_run_json_has_the_cli_shapes(shown):
    _, report, out = shown
    compare = json.loads((out / "runs" / "compare-train-r2-class-unstable.json").read_text())
    assert [row["chip"] for row in compare["rows"]] == CHIPS
    for row in compare["rows"]:
        assert {"changes", "precision", "precision_fallback", "goodput", "step_time_s"} <= set(row)
    chip = "ascend-910b"
    scale = json.loads((out / "runs" / f"scale-r2-class-{chip}-unstable.json").read_text())
    assert scale["scenario"] == f"scenarios/train-r2-class-{chip}-unstable.toml"
    sizes = [row["devices"] for row in scale["rows"]]
    assert finite_json(scale_sweep(out / scale["scenario"], sizes)) == scale["rows"]
    assert report["scale"][chip] == scale["rows"]


def test_the_reading_is_made_of_the_numbers(shown):
    _, report, _ = shown
    text = " ".join(report["reading"])
    rows = {(r["chip"], r["instability"]): r for r in report["training"]}
    for chip, name in (("ascend-910b", "910B"), ("h20", "H20")):
        share = rows[(chip, "off")]["exposed_ep_share"]
        assert f"{name} spends {share:.0%} of its step in exposed EP communication" in text
        per_day = rows[(chip, "on")]["interruptions_per_day"]
        assert f"{name} {per_day:,.1f} interruptions per day" in text
    serving = {r["chip"]: r for r in report["serving"]}
    assert f"H800's {serving['h800-sxm']['decode_tokens_per_s_per_device']:,.0f})" in text


def test_the_table_output_prints_the_reading(shown, capsys, monkeypatch):
    _, report, out = shown
    skipped = {"files": [], "skipped": "plots need matplotlib: pip install 'podsim[plot]'"}
    monkeypatch.setattr(
        "podsim.front.cli.showcase.showcase", lambda *args, **kw: report | {"plots": skipped}
    )
    assert main(["showcase", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Serving DeepSeek-R1" in printed and "report:" in printed
    assert "pip install 'podsim[plot]'" in printed
    row = report["serving"][0]
    assert cell(row["decode_tokens_per_s_per_device"], "{:,.0f}") in printed


def test_bad_options_are_named_errors(tmp_path, capsys):
    assert main(["showcase", "--budget", "-5", "--out", str(tmp_path / "r")]) == 2
    assert "budget = -5" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["showcase", "--quick", "--out", str(blocker)]) == 2
    assert "is not allowed: a file is there" in capsys.readouterr().err
    assert main(["showcase", "--ascend-failure-multiple", "0"]) == 2
    assert "ascend_failure_multiple" in capsys.readouterr().err


def test_a_budget_too_small_for_one_block_is_refused():
    setup = a.chip_setups()[3]
    with pytest.raises(SpecError, match="buys no block of 512 ascend-910c"):
        budget_devices(setup, a.Budget("power"), 1e5)
    spend = budget_devices(setup, a.Budget("spend"), 10_000.0)
    assert spend == math.floor(10_000.0 / setup.price_per_device_hour / 512) * 512


def test_global_batch_is_the_nearest_even_pipeline_multiple():
    assert global_batch(128, 1) == 15360
    assert global_batch(224, 1) == 15232  # 34 x 448
    assert global_batch(20000, 1) == 40000  # at least one multiple


def test_scenario_text_round_trips():
    document = {
        "cluster": {"preset": "hgx-h800", "devices": 16, "price_per_device_hour": 2.0},
        "serve": {"tpot_slo": "50 ms", "mtp": {"depth": 1, "acceptance": 0.85}, "flag": True},
        "train": {"tokens": 14.8e12, "note": 'a "quoted" word'},
    }
    text = toml_text(document, ["a comment"])
    assert text.startswith("# a comment\n")
    assert tomllib.loads(text) == document
    with pytest.raises(SpecError, match="finite"):
        toml_text({"t": {"x": math.inf}}, [])


def test_the_docs_quote_the_quick_run(shown):
    text = (Path(__file__).resolve().parents[1] / "docs/showcase.md").read_text(encoding="utf-8")
    for name, content in doc_blocks(shown[1]).items():
        assert block(text, name) == content, (
            f"docs/showcase.md block {name} is stale: run `PYTHONPATH=src python "
            "tools/gen_docs.py --showcase`"
        )


def test_the_comparisons_are_plotted(shown):
    pytest.importorskip("matplotlib")
    _, report, out = shown
    plotted = {Path(f).name for f in report["plots"]["files"]}
    for stem in ("compare-train-r2-class-unstable", "compare-serve-deepseek-r1-decode"):
        assert {f"{stem}-compare.png", f"{stem}-compare.svg"} <= plotted
    assert all((out / f).stat().st_size > 0 for f in report["plots"]["files"])


def test_without_matplotlib_the_report_says_how_to_install_it(tmp_path, monkeypatch):
    def missing(*args, **kwargs):
        raise DependencyError("plots need matplotlib: pip install 'podsim[plot]'")

    monkeypatch.setattr("podsim.front.showcase.figures.plot_result", missing)
    report = Report(tmp_path)
    report.run_json("compare-train-x-unstable", {"scenario": "x", "rows": []})
    assert write_figures(report, lambda _: None) == {
        "files": [],
        "skipped": "plots need matplotlib: pip install 'podsim[plot]'",
    }
    assert report.files == ["runs/compare-train-x-unstable.json"]


def test_a_fleet_too_small_for_any_plan_is_a_named_error():
    """The spend budget's 2,560 910Bs cannot shard the R2-class optimizer states enough."""
    with pytest.raises(SpecError, match=r"no candidate plan of r2-class fits on 2,560 ascend-910b"):
        choose_train_plan("r2-class", a.chip_setups()[2], 2560, 10)


def test_the_docs_budget_table_is_what_the_showcase_buys(shown):
    """docs/showcase.md quotes each chip's all-in power and the devices the budget buys."""
    _, report, _ = shown
    text = (Path(__file__).resolve().parents[1] / "docs/showcase.md").read_text(encoding="utf-8")
    budget = report["budget"]
    assert f"{budget['amount'] / 1e6:.2f} MW" in text
    for chip, devices in budget["devices"].items():
        power = budget["per_device"][chip]["power_w"]
        rows = [line for line in text.splitlines() if f"{power:,.0f} W" in line]
        assert any(f"| {devices:,}" in line for line in rows), (chip, power, devices)
