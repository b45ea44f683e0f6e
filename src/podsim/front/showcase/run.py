"""`podsim showcase`: the whole story, run and written to a report folder.

Every number comes from a scenario file the showcase writes and then runs with the ordinary API
(load_scenario + train / serve), so `podsim train FILE` or `podsim serve FILE` on that file
gives the same numbers; each run's JSON is written in the shape of the CLI's --json.
"""

import math
from collections.abc import Callable
from os import PathLike
from pathlib import Path
from typing import Any

from podsim.errors import check
from podsim.front.showcase import assumptions as a
from podsim.front.showcase.figures import write_figures
from podsim.front.showcase.folder import Report
from podsim.front.showcase.plans import budget_devices, per_device
from podsim.front.showcase.reading import reading
from podsim.front.showcase.readme import readme_text
from podsim.front.showcase.serve_runs import serve_runs
from podsim.front.showcase.train_runs import scale_runs, train_runs
from podsim.version import __version__

QUESTION = (
    "Could DeepSeek train its next model on Huawei Ascend, and why does it serve there instead?"
)
FAILURE_RUNS = 300  # failure Monte Carlo runs per training scenario (--quick too)
# The R2-class run with instability on more devices (weak scaling, as `--scale`): where goodput
# collapses. Multiples of each chip's budget fleet (1x is the training table's row).
FULL_SCALES, QUICK_SCALES = (2, 4, 8), (2,)


def showcase(
    out_dir: "str | PathLike[str]" = "podsim-showcase",
    *,
    quick: bool = False,
    budget_basis: a.BudgetBasis = "power",
    budget: float | None = None,
    ascend_failure_multiple: float = a.ASCEND_FAILURE_MULTIPLE,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the showcase and write its report folder; returns the report (every number).
    quick: the R2-class model only and one scale-sweep point (for tests). budget_basis: "power"
    (equal all-in W) or "spend" (equal USD per hour); budget: the amount (W or USD/h), by
    default what 2,048 H800s draw or cost. ascend_failure_multiple: the
    Ascend failure rate as a multiple of Llama 3's H100 rate (an ASSUMPTION)."""
    check(budget_basis in ("power", "spend"), "budget_basis", budget_basis, '"power" or "spend"')
    check(ascend_failure_multiple > 0, "ascend_failure_multiple", ascend_failure_multiple, "> 0")
    if budget is not None:
        finite = math.isfinite(budget) and budget > 0
        check(finite, "budget", budget, "a positive, finite amount (W or USD per hour)")
    say = progress or (lambda _: None)
    setups = a.chip_setups(ascend_failure_multiple)
    plan_budget = a.Budget(budget_basis)
    amount = budget if budget is not None else _reference_amount(setups[0], plan_budget)
    devices = {s.chip: budget_devices(s, plan_budget, amount) for s in setups}
    report = Report(Path(out_dir))
    runs = FAILURE_RUNS
    models = [a.FOCUS_MODEL] if quick else list(a.MODELS)
    training, plans = train_runs(report, models, setups, devices, runs, say)
    scale = scale_runs(report, setups, devices, QUICK_SCALES if quick else FULL_SCALES, say)
    serving, serve_plans = serve_runs(report, setups, say)
    out = {
        "question": QUESTION,
        "podsim_version": __version__,
        "quick": quick,
        "budget": {
            "basis": budget_basis,
            "amount": amount,
            "unit": "W (all-in IT power)" if budget_basis == "power" else "USD per hour",
            "devices": devices,
            "per_device": {s.chip: per_device(s) for s in setups},
        },
        "assumptions": _assumptions(setups, ascend_failure_multiple, runs),
        "training": training,
        "plans": plans,
        "scale": scale,
        "serving": serving,
        "serving_plans": serve_plans,
    }
    out["reading"] = reading(out)
    out["plots"] = write_figures(report, say)
    report.write("README.md", readme_text(out))
    out["files"] = sorted([*report.files, "showcase.json"])
    report.write_json("showcase.json", out)
    return out


def _reference_amount(setup: a.ChipSetup, budget: a.Budget) -> float:
    """What the reference fleet (2,048 H800s) draws or costs."""
    key = "power_w" if budget.basis == "power" else "price_usd_per_hour"
    return a.REFERENCE_DEVICES * per_device(setup)[key]


def _assumptions(setups, multiple: float, runs: int) -> dict[str, Any]:
    return {
        "reference_fleet": f"{a.REFERENCE_DEVICES:,} {a.REFERENCE_CHIP} (DeepSeek-V3's cluster)",
        "device_block": a.DEVICE_BLOCK,
        "tokens": a.TOKENS,
        "r2_class": {
            "base": "deepseek-v3",
            "layers": a.R2_LAYERS,
            "note": "ASSUMPTION: no public R2 architecture",
        },
        "target_global_batch": a.TARGET_GLOBAL_BATCH,
        "candidates": [c.label for c in a.CANDIDATES],
        "ascend_failure_multiple": multiple,
        "failure_runs": runs,
        "tpot_slo": a.TPOT_SLO,
        "chips": {
            s.chip: {
                "cluster": s.cluster,
                "price_per_device_hour": s.price_per_device_hour,
                "failure_rate_per_device_day": s.failure_rate_per_device_day,
                "restart": s.restart,
                "unstable_links": s.unstable_links,
                "serving_deployment": s.serve_base,
            }
            for s in setups
        },
    }
