"""`podsim plot` and podsim.results.plots: every kind of saved result, made by the real verbs
at small size, plotted; the files are real PNG / SVG, byte-identical run to run, and the data
drawn is the JSON's."""

import contextlib
import io
import json
import math
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from test_sweep import JOB

import podsim
from podsim.errors import DependencyError, SpecError
from podsim.front.cli import main
from podsim.front.serve import candidates
from podsim.results.plot_data import KINDS, result_kind
from podsim.results.plots import MISSING, figures_for, plot_result

SMALL = JOB.format(chip="h100-sxm", rate="failure_rate_per_device_day = 1e-2")
SERVE = """
[cluster]
chip = "h100-sxm"
devices = {devices}
[model]
preset = "llama3-8b"
[serve]
phase = "{phase}"
context_len = 2048
input_len = 2048
max_batch = 96
tpot_slo = "12 ms"
{extra}
"""
SWEEP_GRID = ("--grid", "train.tp=2,3,8", "--grid", "train.micro_batch=1,2")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def cli_json(*argv: str):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([*argv, "--json"]) == 0
    return json.loads(out.getvalue())


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    path = tmp_path_factory.mktemp("plots") / "job.toml"
    path.write_text(SMALL)
    return str(path)


@pytest.fixture(scope="module")
def results(job, tmp_path_factory):
    """One saved result of every kind, from the real CLI."""
    folder = tmp_path_factory.mktemp("serve")
    serve = {}
    for phase in ("decode", "prefill"):
        (folder / f"{phase}.toml").write_text(SERVE.format(phase=phase, devices=1, extra=""))
        serve[phase] = cli_json("serve", str(folder / f"{phase}.toml"))
    collective = ["collective", "--chip", "h100-sxm", "--size", "1K:1M:8"]
    return {
        "train": cli_json("train", job),
        "scale": cli_json("train", job, "--scale", "64:256"),
        "compare": cli_json("compare", job, "--chips", "h100-sxm,ascend-910b"),
        "collective": [
            cli_json(*collective, "--op", "all-reduce"),
            cli_json(*collective, "--op", "all-gather", "--devices", "16"),
        ],
        "serve": serve["decode"],
        "prefill": serve["prefill"],
        "sweep": cli_json("sweep", job, "--jobs", "1", *SWEEP_GRID),
    }


def bars(figure) -> dict[str, list[float]]:
    """Segment label -> bar heights of the figure's stacked bars."""
    axes = figure.axes[0]
    return {c.get_label(): [p.get_height() for p in c.patches] for c in axes.containers}


def lines(axes) -> dict[str, tuple[list[float], list[float]]]:
    return {
        line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
        for line in axes.get_lines()
        if not line.get_label().startswith("_")
    }


def assert_same(values, expected):
    assert len(values) == len(expected)
    for got, want in zip(values, expected, strict=True):
        assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize(
    ("kind", "what"),
    [
        ("train", "breakdown"),
        ("scale", "scale"),
        ("compare", "compare"),
        ("collective", "busbw"),
        ("serve", "decode"),
        ("prefill", "prefill"),
        ("sweep", "sweep"),
    ],
)
def test_every_kind_writes_real_png_and_svg(results, tmp_path, kind, what):
    assert result_kind(results[kind]) == ("serve" if kind == "prefill" else kind)
    written = plot_result(results[kind], tmp_path / "out", "r")
    assert written == [tmp_path / "out" / f"r-{what}.png", tmp_path / "out" / f"r-{what}.svg"]
    png, svg = (path.read_bytes() for path in written)
    assert png.startswith(PNG_MAGIC) and len(png) > 10_000
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg") and b"<dc:date>" not in svg


def test_train_breakdown_is_the_step(results):
    result = results["train"]
    b = result["breakdown"]
    expected = {
        "compute": b["compute_s"] - b["optimizer_s"],
        "optimizer": b["optimizer_s"],
        **{f"exposed comm {k}": v for k, v in b["exposed_comm_by_kind_s"].items()},
        "pipeline bubble": b["bubble_s"],
        "straggler wait": b["straggler_s"],
    }
    heights = {k: h for k, (h,) in bars(figures_for(result)["breakdown"]).items()}
    assert heights == pytest.approx({k: v for k, v in expected.items() if v}, rel=1e-12)
    assert {"compute", "exposed comm tp", "exposed comm dp"} <= set(heights)
    assert sum(heights.values()) == pytest.approx(result["step_time_s"], rel=1e-9)


def test_compare_stacks_each_chip_and_labels_its_precision(results):
    result = results["compare"]
    figure = figures_for(result)["compare"]
    heights = bars(figure)
    totals = [sum(h[i] for h in heights.values()) for i in range(len(result["rows"]))]
    assert_same(totals, [r["step_time_s"] for r in result["rows"]])
    labels = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert labels == [f"{r['chip']}\n{r['precision']}" for r in result["rows"]]


def test_scale_lines_are_the_rows(results):
    rows = results["scale"]["rows"]
    panels = {a.get_title(): lines(a) for a in figures_for(results["scale"])["scale"].axes}
    devices = [r["devices"] for r in rows]
    x, goodput = panels["Goodput"]["goodput"]
    assert x == devices and goodput == pytest.approx([r["goodput"] for r in rows], rel=1e-12)
    days = [r["time_to_train_p90_s"] / 86400 for r in rows]
    assert panels["Time to train"]["with failures, p90"][1] == pytest.approx(days)
    assert panels["MFU"]["MFU"][1] == pytest.approx([100 * r["mfu"] for r in rows])


def test_collective_has_a_busbw_line_per_op_and_cluster(results):
    documents = results["collective"]
    got = lines(figures_for(documents)["busbw"].axes[0])
    assert len(got) == 2
    for document in documents:
        (label,) = [k for k in got if k.startswith(document["op"])]
        assert f"{document['devices']} x h100-sxm" in label
        assert document["chip"] == "h100-sxm" and document["cluster"] is None  # --chip: no preset
        x, y = got[label]
        assert x == [r["size_bytes"] for r in document["results"]]
        assert_same(y, [r["busbw_bytes_per_s"] / 1e9 for r in document["results"]])


def test_serve_curve_holds_the_chosen_batch(results):
    result = results["serve"]
    curve = result["curve"]
    assert [p["batch"] for p in curve] == candidates(min(result["max_batch"], 96))
    slo = result["plan"]["tpot_slo"]
    met = [p for p in curve if p["tpot_s"] <= slo]
    best = max(met, key=lambda p: p["decode_tokens_per_s_per_device"])
    assert (best["batch"], best["tpot_s"]) == (result["batch"], result["tpot_s"])
    assert len(met) < len(curve)  # the SLO binds: the figure shows both sides of it
    got = lines(figures_for(result)["decode"].axes[0])
    x, y = got["batches that fit (label: batch per attention rank)"]
    assert x == pytest.approx([1e3 * p["tpot_s"] for p in curve])
    assert y == pytest.approx([p["decode_tokens_per_s_per_device"] for p in curve])
    x, y = got[f"chosen: batch {result['batch']}"]
    assert x == [pytest.approx(1e3 * result["tpot_s"])]
    assert y == [pytest.approx(result["decode_tokens_per_s_per_device"])]
    assert got["TPOT SLO"][0] == [1e3 * slo, 1e3 * slo]


def test_prefill_curve_holds_its_batch(results):
    result = results["prefill"]
    assert "curve" not in result
    chosen = [p for p in result["prefill_curve"] if p["batch"] == result["batch"]]
    assert chosen and chosen[0]["ttft_s"] == result["ttft_s"]


def test_sweep_draws_a_line_per_combination_with_gaps_for_invalid_points(results):
    result = results["sweep"]
    assert result["grid"] == {"train.tp": [2, 3, 8], "train.micro_batch": [1, 2]}
    panels = {a.get_title(): lines(a) for a in figures_for(result)["sweep"].axes}
    for micro in (1, 2):
        rows = [r for r in result["rows"] if r["train.micro_batch"] == micro]
        x, y = panels["Step time"][f"train.micro_batch={micro}"]
        assert x == [2.0, 3.0, 8.0]
        assert_same(y, [r.get("step_time_s", math.nan) for r in rows])
        assert math.isnan(y[1]) and "error" in rows[1]  # tp 3 does not divide 64 devices


def test_grid_keys_are_found_without_the_grid_key(results):
    old = {k: v for k, v in results["sweep"].items() if k != "grid"}
    assert result_kind(old) == "sweep"
    assert len(lines(figures_for(old)["sweep"].axes[0])) == 2


def test_same_json_gives_the_same_bytes(results, tmp_path):
    one = plot_result(results["compare"], tmp_path / "a", "x")
    two = plot_result(results["compare"], tmp_path / "b", "x")
    assert [p.read_bytes() for p in one] == [p.read_bytes() for p in two]


@pytest.mark.parametrize("bad", [{"a": 1}, [], 3, {"rows": []}, {"rows": [{"x": 1}]}])
def test_unknown_json_is_refused_with_the_kinds_known(bad, tmp_path):
    with pytest.raises(SpecError, match="cannot plot this JSON") as error:
        plot_result(bad, tmp_path, "x")
    assert all(kind in str(error.value) for kind in KINDS)
    assert not any(tmp_path.iterdir())


def test_bad_formats_and_stems_are_refused(results, tmp_path):
    with pytest.raises(SpecError, match="format = 'jpg'"):
        plot_result(results["train"], tmp_path, "x", ("png", "jpg"))
    with pytest.raises(SpecError, match="stem"):
        plot_result(results["train"], tmp_path, "a/b")


def test_plot_cli_lists_the_files_it_wrote(results, tmp_path, capsys):
    saved = tmp_path / "step.json"
    saved.write_text(json.dumps(results["train"]))
    out = tmp_path / "figures"
    code = main(["plot", str(saved), "--out", str(out), "--format", "svg,png"])
    printed = capsys.readouterr().out.split()
    assert code == 0
    assert printed == [str(out / "step-breakdown.svg"), str(out / "step-breakdown.png")]
    assert sorted(p.name for p in out.iterdir()) == ["step-breakdown.png", "step-breakdown.svg"]


def test_plot_cli_errors_name_the_file(tmp_path, capsys):
    unknown, broken = tmp_path / "u.json", tmp_path / "b.json"
    unknown.write_text('{"hello": 1}')
    broken.write_text("{")
    assert main(["plot", str(unknown), "--out", str(tmp_path / "o")]) == 2
    assert f"{unknown}: cannot plot this JSON" in capsys.readouterr().err
    assert main(["plot", str(broken)]) == 2
    assert "not JSON" in capsys.readouterr().err
    assert main(["plot", str(unknown), "--format", "gif"]) == 2
    assert "format = 'gif' is not allowed" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_without_matplotlib_plots_say_how_to_install_it(results, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    with pytest.raises(DependencyError, match=r"pip install 'podsim\[plot\]'") as error:
        plot_result(results["train"], tmp_path, "x")
    assert str(error.value) == MISSING


def test_podsim_and_its_cli_import_without_matplotlib():
    """Importing podsim and running a verb never imports matplotlib (so neither needs it)."""
    code = (
        "import sys\n"
        "import podsim, podsim.front.cli as cli\n"
        "assert cli.main(['chips', '--json']) == 0 and podsim.plot_result\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_request_level_and_disaggregated_runs_carry_the_decode_curve(tmp_path):
    for phase, extra, label in (
        ("decode", "prefill_devices = 1\ndecode_devices = 1", "deployment: batch"),
        ("both", "arrival_rate = 5\nrequests = 100", "request-level run"),
    ):
        path = tmp_path / f"{phase}.toml"
        path.write_text(SERVE.format(phase=phase, devices=2, extra=extra))
        result = cli_json("serve", str(path))
        assert result["curve"] and all(p["batch"] <= 96 for p in result["curve"])
        assert any(k.startswith(label) for k in lines(figures_for(result)["decode"].axes[0]))


def test_a_result_without_the_breakdown_by_kind_plots_its_exposed_comm_whole(results):
    old = json.loads(json.dumps(results["train"]))
    del old["breakdown"]["exposed_comm_by_kind_s"]
    heights = bars(figures_for(old)["breakdown"])
    assert heights["exposed comm"] == [pytest.approx(old["breakdown"]["exposed_comm_s"])]
    assert not any(label.startswith("exposed comm ") for label in heights)


def test_the_python_results_plot_as_their_json_does(tmp_path):
    """A result made in Python (one collective's to_dict()) plots as the CLI's JSON does."""
    cluster = podsim.preset_cluster("dgx-h100", devices=16)
    one = podsim.collective(cluster, "all-reduce", 2**20).to_dict()
    assert result_kind(one) == "collective"
    ((x, y),) = lines(podsim.figures_for(one)["busbw"].axes[0]).values()
    assert x == [one["size_bytes"]] and y == [pytest.approx(one["busbw_bytes_per_s"] / 1e9)]
    assert podsim.plot_result(one, tmp_path, "c", ["svg"]) == [tmp_path / "c-busbw.svg"]
