"""The showcase's serving runs: DeepSeek-R1 decode and prefill on each chip, the deployment
chosen from its candidates, written and run from its file."""

from collections.abc import Callable
from typing import Any

from podsim.front.api import serve
from podsim.front.scenario import load_scenario
from podsim.front.showcase import assumptions as a
from podsim.front.showcase.folder import Report, compare_row
from podsim.front.showcase.plans import choose_serve_plan
from podsim.front.showcase.rows import serve_row


def serve_runs(
    report: Report, setups: list[a.ChipSetup], say: Callable[[str], None]
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """One serving row per chip (its decode and prefill deployments) and the plans."""
    rows, plans = [], {}
    compare_rows: dict[str, list[dict[str, Any]]] = {"decode": [], "prefill": []}
    for setup in setups:
        say(f"serving DeepSeek-R1 on {setup.chip}")
        results = {}
        plans[setup.chip] = {}
        for phase in ("decode", "prefill"):
            choice = choose_serve_plan(setup, phase)
            stem = f"serve-deepseek-r1-{phase}-{setup.chip}"
            comments = [
                f"DeepSeek-R1 {phase} on {setup.chip} ({choice.label}),",
                "written by `podsim showcase` (docs/showcase.md).",
                f"The published {setup.serve_base} deployment on this chip's standard system; "
                f"TPOT limit {a.TPOT_SLO}, no prefix-cache hits.",
                f"Chosen: {choice.reason}.",
            ]
            path = report.scenario(stem, choice.document, comments)
            results[phase] = serve(load_scenario(path)).to_dict()
            plans[setup.chip][phase] = {
                "plan": choice.label,
                "reason": choice.reason,
                "tried": choice.tried,
            }
            report.run_json(stem, results[phase])
            precision = results[phase]["plan"]["precision"]
            compare_rows[phase].append(
                compare_row(setup.chip, results[phase], [choice.label], precision, False)
            )
        row = serve_row(setup.chip, results["decode"], results["prefill"])
        row["scenarios"] = [
            f"scenarios/serve-deepseek-r1-{p}-{setup.chip}.toml" for p in ("decode", "prefill")
        ]
        rows.append(row)
    for phase, crows in compare_rows.items():
        report.run_json(
            f"compare-serve-deepseek-r1-{phase}",
            {"scenario": f"showcase: DeepSeek-R1 {phase}", "rows": crows},
        )
    return rows, plans
