"""The report folder's README.md: the question, the definitions and assumptions, the tables (the
same columns as the terminal), the plans chosen and why, the reading, and how to rerun each
number."""

from typing import Any

from podsim.front.showcase.rows import SCALE_COLUMNS, SERVE_COLUMNS, TRAIN_COLUMNS, scale_rows
from podsim.results.tables import cell


def markdown_table(columns: list[tuple[str, str, str]], rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| " + " | ".join(h for h, _, _ in columns) + " |"]
    lines.append("|" + " --- |" * len(columns))
    lines += ["| " + " | ".join(cell(r.get(k), f) for _, k, f in columns) + " |" for r in rows]
    return lines


def readme_text(report: dict[str, Any]) -> str:
    budget = report["budget"]
    assumptions = report["assumptions"]
    lines = [
        "# podsim showcase",
        "",
        f"**{report['question']}**",
        "",
        "Written by `podsim showcase` (podsim " + report["podsim_version"] + "). The definitions "
        "and every assumption, with sources, are in podsim's docs/showcase.md; the numbers below "
        "are all in `showcase.json`.",
        "",
        "## Reading",
        "",
        *[f"- {line}" for line in report["reading"]],
        "",
        "## Definitions",
        "",
        f"- Equal budget ({budget['basis']}): {budget['amount']:,.0f} {budget['unit']}, in "
        f"whole blocks of {assumptions['device_block']} devices. Per device: "
        + "; ".join(
            f"{chip} {v['power_w']:,.0f} W, {v['price_usd_per_hour']:g} USD/h (ASSUMPTION)"
            for chip, v in budget["per_device"].items()
        )
        + ".",
        f"- Models: DeepSeek-V3 and an R2-class model (ASSUMPTION: V3 with "
        f"{assumptions['r2_class']['layers']} layers), "
        f"{assumptions['tokens'] / 1e12:g}T tokens each.",
        "- Plans: the fastest of a fixed candidate list that fits in the chip's memory (below); "
        "chips without FP8 train in BF16 (marked *).",
        f"- Instability: failures ([failures], {assumptions['failure_runs']} Monte Carlo runs) "
        f"at Llama 3's H100 rate for NVIDIA and {assumptions['ascend_failure_multiple']:g}x it "
        "for Ascend (ASSUMPTION), with slower Ascend links; time to train is then the median.",
        f"- Serving: DeepSeek-R1 under a {assumptions['tpot_slo']} TPOT limit, no prefix hits.",
        "",
        "## Training",
        "",
    ]
    for model in dict.fromkeys(row["model"] for row in report["training"]):
        rows = [row for row in report["training"] if row["model"] == model]
        lines += [f"{model}:", "", *markdown_table(TRAIN_COLUMNS, rows), ""]
    lines += [
        "## Plans chosen",
        "",
    ]
    for model, chips in report["plans"].items():
        for chip, plan in chips.items():
            lines.append(f"- {model} on {chip}: {plan['plan']}: {plan['reason']}.")
    lines += [
        "",
        "## Scale: the R2-class job with instability on larger clusters (weak scaling)",
        "",
        *markdown_table(SCALE_COLUMNS, scale_rows(report["scale"])),
        "",
        "## Serving",
        "",
        *markdown_table(SERVE_COLUMNS, report["serving"]),
        "",
    ]
    lines += [
        "## Files",
        "",
        "- `scenarios/*.toml`: every run; `podsim train FILE --json` / `podsim serve FILE --json` "
        "reproduces `runs/FILE.json`.",
        "- `runs/compare-*.json`: the rows of each table in the shape of `podsim compare --json`;",
        "  `runs/scale-*.json` as `podsim train FILE --scale N1,N2,... --json`.",
        "- `plots/`: figures (PNG, SVG) of the comparisons with instability and of serving; every "
        "other run (scale sweeps, single runs) plots "
        "with `podsim plot runs/FILE.json --out plots`."
        + (
            f" Not written here: {report['plots']['skipped']}."
            if "skipped" in report["plots"]
            else ""
        ),
        "- `showcase.json`: every number above.",
        "",
    ]
    return "\n".join(lines)


def doc_blocks(report: dict[str, Any]) -> dict[str, str]:
    """The generated blocks of docs/showcase.md (from `podsim showcase --quick`, whose R2-class
    and serving rows are the default run's): the R2-class training table, serving, reading."""
    training = [row for row in report["training"] if row["model"] == "r2-class"]
    return {
        "showcase-training": "\n".join(markdown_table(TRAIN_COLUMNS, training)) + "\n",
        "showcase-serving": "\n".join(markdown_table(SERVE_COLUMNS, report["serving"])) + "\n",
        "showcase-reading": "".join(f"- {line}\n" for line in report["reading"]),
    }
