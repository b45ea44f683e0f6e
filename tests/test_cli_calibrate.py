"""`podsim calibrate` (the named fits of podsim.front.calibration) and the in-sample /
held-out / out-of-sample split of `podsim validate`."""

import json
import tomllib
from dataclasses import replace

import pytest
from test_cli import run

from podsim.front import calibration
from podsim.front.calibration import FITS, Outcome, Row
from podsim.front.cli import validate as validate_cli
from podsim.front.scenario import scenario_from_document
from podsim.front.serve_validation import run_serving_case
from podsim.front.validation import HELD_OUT_PREFIX, OUT_OF_SAMPLE, SOFTWARE_STACKS, Case


def test_list_names_every_fit_with_its_rows_and_target(capsys):
    code, out, _ = run(capsys, "calibrate", "--list", "--json")
    listed = json.loads(out)
    assert code == 0 and list(listed) == list(FITS) == ["a100", "h800", "serving", "deepspeed-2021"]
    assert "megatron_sc21_t1_1p7B" in listed["a100"]["rows"]
    assert "megatron_sc21_t2" not in listed["a100"]["rows"]  # held out
    assert "chips.toml [a100-sxm-80gb]" in listed["a100"]["target"]
    code, out, _ = run(capsys, "calibrate", "--list")
    assert code == 0 and "deepseek_v3_2048_h800" in out and "[h800-sxm]" in out


def test_serving_fit_reports_rows_parameters_and_in_sample_errors(capsys):
    code, out, _ = run(capsys, "calibrate", "serving", "--json")
    result = json.loads(out)
    assert code == 0 and result["name"] == "serving"
    assert (
        set(result["before"])
        == set(result["after"])
        == {
            "decode_efficiency",
            "prefill_efficiency",
        }
    )
    rows = {r["name"]: r for r in result["rows"]}
    assert set(rows) == {"deepseek-r1-decode-h800", "deepseek-r1-prefill-h800"}
    for row in rows.values():
        assert row["error_after"] == pytest.approx(row["predicted_after"] / row["published"] - 1)
    errors = [abs(r["error_after"]) for r in rows.values()]
    assert result["in_sample_mape_after"] == pytest.approx(sum(errors) / 2)
    assert result["in_sample_worst_after"] == max(errors)
    # Fitted by bisection to 3 decimals: each row within 1% of its published figure.
    assert max(errors) < 0.01
    assert result["scenario"] == {"serve": result["after"]}
    assert result["written"] is None and result["out"] is None
    code, out, _ = run(capsys, "calibrate", "serving")
    assert code == 0 and "deepseek-r1-decode-h800 | 1850" in out and "after: MAPE" in out


def _fake_fit(monkeypatch, name: str, after: dict[str, float], rows: list[Row]) -> None:
    """The fit `name` returning `after` at once (the real a100 fit runs for minutes)."""
    outcome = Outcome(dict(after), dict(after), rows, rows)
    monkeypatch.setitem(FITS, name, replace(FITS[name], run=lambda *_: outcome))


def test_out_file_passes_the_fitted_values_back_in_a_scenario(capsys, tmp_path, monkeypatch):
    # A100 values unlike the catalog's: the file's [stack] table, put in a calibration row's
    # scenario, gives that row's prediction at those values.
    after = {"gemm": 0.5, "memory": 0.7}
    row = "megatron_sc21_t1_1p7B"
    _fake_fit(monkeypatch, "a100", after, [Row(row, 137.0, 120.0)])
    path = tmp_path / "a100.toml"
    code, out, _ = run(capsys, "calibrate", "a100", "--out", str(path))
    assert code == 0 and f"wrote {path}" in out
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# podsim calibrate a100 (podsim ")
    assert "# declared calibration rows: the 14 A100 rows" in text
    assert "in-sample MAPE 12.4%, worst row 12.4% (1 rows)" in text
    fragment = tomllib.loads(text)
    assert fragment == {"stack": {"kernel_efficiency": {"a100-sxm-80gb": after}}}
    document = tomllib.loads(calibration._validation_file(row, ".toml"))
    assert "stack" not in document
    scenario = scenario_from_document(document | fragment, source=row)
    from podsim.front.api import train

    predicted = train(scenario).to_dict()["hardware_tflops_per_device"]
    assert predicted == calibration.row_prediction(row, tuple(sorted(after.items())))
    catalog = calibration.row_prediction(row, tuple(sorted(calibration.a100_catalog().items())))
    assert predicted < catalog  # the values took effect
    # Never over an existing file without --force.
    code, _, err = run(capsys, "calibrate", "a100", "--out", str(path))
    assert code == 2 and "the file exists; add --force" in err
    assert run(capsys, "calibrate", "a100", "--out", str(path), "--force")[0] == 0


def test_serving_out_file_sets_the_serve_efficiencies(capsys, tmp_path, monkeypatch):
    after = {"decode_efficiency": 0.5, "prefill_efficiency": 0.4}
    _fake_fit(monkeypatch, "serving", after, [])
    path = tmp_path / "serving.toml"
    assert run(capsys, "calibrate", "serving", "--out", str(path))[0] == 0
    fragment = tomllib.loads(path.read_text(encoding="utf-8"))
    assert fragment == {"serve": after}
    case = run_serving_case("deepseek-r1-decode-h800", fragment["serve"])
    default = run_serving_case("deepseek-r1-decode-h800")
    assert case.predicted < default.predicted


def test_write_outside_a_source_checkout_is_refused_before_the_fit(capsys, tmp_path, monkeypatch):
    installed = tmp_path / "site-packages" / "podsim"
    installed.mkdir(parents=True)
    monkeypatch.setattr(calibration, "PACKAGE", installed)

    def never(*_):
        raise AssertionError("the fit ran")

    monkeypatch.setitem(FITS, "serving", replace(FITS["serving"], run=never))
    code, out, err = run(capsys, "calibrate", "serving", "--write")
    assert code == 2 and out == ""
    assert "installed package, not a source checkout" in err and "--out FILE" in err


def test_write_in_a_source_checkout_edits_the_fits_target(capsys, tmp_path, monkeypatch):
    # A copy of the checkout's layout: the serving fit writes its constants there.
    package = tmp_path / "src" / "podsim"
    (package / "plans").mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'podsim'\n", encoding="utf-8")
    original = (calibration.PACKAGE / "plans/serving.py").read_text(encoding="utf-8")
    (package / "plans/serving.py").write_text(original, encoding="utf-8")
    monkeypatch.setattr(calibration, "PACKAGE", package)
    assert calibration.source_checkout() == tmp_path
    _fake_fit(monkeypatch, "serving", {"decode_efficiency": 0.5, "prefill_efficiency": 0.4}, [])
    code, out, _ = run(capsys, "calibrate", "serving", "--write", "--json")
    assert code == 0 and json.loads(out)["written"] == FITS["serving"].target
    text = (package / "plans/serving.py").read_text(encoding="utf-8")
    assert "DECODE_EFFICIENCY = 0.5\n" in text and "PREFILL_EFFICIENCY = 0.4\n" in text
    assert text != original


@pytest.mark.parametrize(
    "argv, words",
    [
        ([], ["give a fit NAME", "a100, h800, serving, deepspeed-2021", "--list"]),
        (["b200"], ["calibration 'b200' is not known", "a100"]),
        (["--list", "a100"], ["--list takes no NAME"]),
        (["serving", "--force"], ["--force goes with --out FILE"]),
        (["serving", "--jobs", "0"], ["--jobs = 0", "1 or more"]),
    ],
)
def test_bad_calibrate_arguments_are_named(capsys, argv, words):
    code, out, err = run(capsys, "calibrate", *argv)
    assert code == 2 and out == ""
    for word in words:
        assert word in err


def test_out_into_a_directory_is_refused(capsys, tmp_path):
    code, _, err = run(capsys, "calibrate", "serving", "--out", str(tmp_path))
    assert code == 2 and "is a directory" in err


# -- podsim validate: in sample, held out and out of sample apart ------------------------------


def _fake_cases(monkeypatch):
    """Two calibration rows (errors +10%, -20%), one held out (+30%), one out of sample (-40%)
    and one other stack (+5%), without running them."""
    names = {
        "": ["megatron_sc21_t1_1p7B", "deepseek_v3_2048_h800", HELD_OUT_PREFIX + "x"],
        OUT_OF_SAMPLE: ["deepseek_v2_h800"],
        SOFTWARE_STACKS: ["zero3_row"],
    }
    errors = {
        "megatron_sc21_t1_1p7B": 0.1,
        "deepseek_v3_2048_h800": -0.2,
        HELD_OUT_PREFIX + "x": 0.3,
        "deepseek_v2_h800": -0.4,
        "zero3_row": 0.05,
    }
    monkeypatch.setattr(validate_cli, "case_names", lambda folder="": names[folder])
    monkeypatch.setattr(
        validate_cli,
        "run_case",
        lambda name, folder="": Case(name, "m", 100.0, 100.0 * (1 + errors[name]), "s"),
    )


def test_validate_reports_in_sample_and_held_out_error_apart(capsys, monkeypatch):
    _fake_cases(monkeypatch)
    code, out, _ = run(capsys, "validate", "--json")
    result = json.loads(out)
    assert code == 0
    assert result["in_sample_mape"] == pytest.approx(0.15)
    assert result["held_out_mape"] == pytest.approx(0.3)
    assert result["out_of_sample_mape"] == pytest.approx(0.4)
    assert result["mape"] == pytest.approx(0.2)  # every top-folder row, as before
    flags = {c["name"]: c["in_sample"] for c in result["cases"]}
    assert flags == {
        "megatron_sc21_t1_1p7B": True,
        "deepseek_v3_2048_h800": True,
        HELD_OUT_PREFIX + "x": False,
    }
    assert [c["name"] for c in result["software_stacks"]] == ["zero3_row"]
    code, out, _ = run(capsys, "validate")
    assert code == 0
    assert "in sample: the calibration rows" in out and "held out:" in out
    assert "mean absolute percentage error: 15.0% over 2 cases" in out
    assert "mean absolute percentage error: 30.0% over 1 cases" in out
    assert "mean absolute percentage error: 40.0% over 1 cases" in out


def test_the_calibration_rows_are_the_fits_declared_rows():
    # What `podsim validate` calls in sample is what the fits saw: the A100 and H800 rows.
    from podsim.front.validation import case_names, in_sample

    fitted = {n for n in case_names() if in_sample(Case(n, "m", 1.0, 1.0, "s"))}
    assert fitted == set(calibration.A100_ROWS) | {calibration.H800_CASE}
