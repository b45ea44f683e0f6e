"""The showcase's training runs: per model and chip, the plan chosen from the candidates, then
the scenario with and without instability written and run from its file; and the scale sweeps
of the R2-class run with instability."""

from collections.abc import Callable
from typing import Any

from podsim.front.api import train
from podsim.front.scenario import load_scenario
from podsim.front.showcase import assumptions as a
from podsim.front.showcase.documents import train_document, train_precision
from podsim.front.showcase.folder import Report, compare_row
from podsim.front.showcase.plans import Choice, choose_train_plan
from podsim.front.showcase.rows import train_row
from podsim.front.sweep import scale_sweep

Say = Callable[[str], None]


def train_runs(
    report: Report,
    models: list[str],
    setups: list[a.ChipSetup],
    devices: dict[str, int],
    runs: int,
    say: Say,
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The training rows (each chip and model, without then with instability) and the plans;
    per model and state, the rows of all chips as `podsim compare --json` writes them."""
    rows: list[dict[str, Any]] = []
    plans: dict[str, dict[str, Any]] = {}
    for model in models:
        plans[model] = {}
        compared: dict[str, list[dict[str, Any]]] = {"stable": [], "unstable": []}
        for setup in setups:
            say(f"training {model} on {devices[setup.chip]:,} {setup.chip}")
            choice = choose_train_plan(model, setup, devices[setup.chip], runs)
            fallback = train_precision(setup.chip) != a.TRAIN_BASE["precision"]
            plans[model][setup.chip] = {
                "plan": choice.label,
                "reason": choice.reason,
                "tried": choice.tried,
                "precision_fallback": fallback,
            }
            for state in compared:
                row, result = _train_run(report, model, setup, devices[setup.chip], choice, state)
                rows.append(row)
                changes = [
                    f"{devices[setup.chip]:,} devices (equal budget)",
                    f"plan: {choice.label}",
                ]
                if fallback:
                    changes.append(f"precision fp8 -> {row['precision']} (no FP8 peak)")
                row_of = compare_row(setup.chip, result, changes, row["precision"], fallback)
                compared[state].append(row_of)
        for state, chip_rows in compared.items():
            scenario = f"showcase: {model}, {state}"
            report.run_json(
                f"compare-train-{model}-{state}", {"scenario": scenario, "rows": chip_rows}
            )
    return rows, plans


def _train_run(
    report: Report, model: str, setup: a.ChipSetup, devices: int, choice: Choice, state: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One training scenario written to its file and run from it: (its row, its result)."""
    unstable = state == "unstable"
    document = train_document(model, setup, devices, choice.plan, unstable, choice.runs)
    stem = f"train-{model}-{setup.chip}-{state}"
    path = report.scenario(stem, document, train_comments(model, setup, choice, unstable))
    result = train(load_scenario(path)).to_dict()
    row = train_row(model, setup.chip, unstable, result)
    if row["precision"] != a.TRAIN_BASE["precision"]:
        row["precision_shown"] += "*"
    row["plan"] = choice.label
    row["scenario"] = f"scenarios/{stem}.toml"
    row["run"] = report.run_json(stem, result)
    return row, result


def scale_runs(
    report: Report,
    setups: list[a.ChipSetup],
    devices: dict[str, int],
    factors: tuple[int, ...],
    say: Say,
) -> dict[str, list[dict[str, Any]]]:
    """`podsim train FILE --scale N1,N2,...` on each chip's R2-class run with instability."""
    out = {}
    for setup in setups:
        scenario = f"scenarios/train-{a.FOCUS_MODEL}-{setup.chip}-unstable.toml"
        sizes = [devices[setup.chip] * f for f in factors]
        say(
            f"scaling {a.FOCUS_MODEL} on {setup.chip}: {', '.join(f'{n:,}' for n in sizes)} devices"
        )
        rows = scale_sweep(report.root / scenario, sizes)
        out[setup.chip] = rows
        stem = f"scale-{a.FOCUS_MODEL}-{setup.chip}-unstable"
        report.run_json(stem, {"scenario": scenario, "max_global_batch": None, "rows": rows})
    return out


def train_comments(model: str, setup: a.ChipSetup, choice: Choice, unstable: bool) -> list[str]:
    lines = [
        f"{model} pre-training on {setup.chip}, written by `podsim showcase` (docs/showcase.md).",
        f"Devices: what the showcase's equal budget buys. Plan: {choice.label};",
        f"chosen as {choice.reason}.",
    ]
    if model == "r2-class":
        lines.append(
            f"ASSUMPTION: R2-class = DeepSeek-V3 with {a.R2_LAYERS} layers "
            "(no public R2 architecture)."
        )
    if unstable:
        lines.append(
            f"Instability: {setup.failure_rate_per_device_day:.3g} failures per device-day, "
            f"restart {setup.restart}"
            + "".join(f", {k} {v}" for k, v in setup.unstable_links.items())
            + " (sources and ASSUMPTIONS: docs/showcase.md)."
        )
    return lines
