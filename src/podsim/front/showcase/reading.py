"""A short plain-language reading of the showcase's numbers: every figure in it is read from the
report's rows, and which way each comparison goes decides the words."""

from typing import Any

from podsim.specs.chips import get_chip

REFERENCE = "h800-sxm"
NAMES = {"h800-sxm": "H800", "h20": "H20", "ascend-910b": "910B", "ascend-910c": "910C"}


def _name(chip: str) -> str:
    return NAMES.get(chip, chip)


def _days(row: dict[str, Any]) -> float:
    return row["time_to_train_s"] / 86_400.0


def _rows(report: dict[str, Any], model: str, instability: str) -> dict[str, dict[str, Any]]:
    return {
        r["chip"]: r
        for r in report["training"]
        if r["model"] == model and r["instability"] == instability
    }


def reading(report: dict[str, Any]) -> list[str]:
    """Sentences, in order: the budget, each model's times and plans, what the step time is
    made of, what instability costs, serving, and the answer to the question."""
    lines = [_budget(report)]
    for model in dict.fromkeys(r["model"] for r in report["training"]):
        lines.append(_times(model, _rows(report, model, "off")))
        lines += _plans(model, report["plans"][model])
    lines.append(_communication(_rows(report, "r2-class", "off")))
    lines.append(_instability(_rows(report, "r2-class", "off"), _rows(report, "r2-class", "on")))
    lines.append(_serving(report["serving"]))
    lines.append(_answer(report))
    return lines


def _budget(report: dict[str, Any]) -> str:
    budget = report["budget"]
    amount = (
        f"{budget['amount'] / 1e6:,.2f} MW of all-in power"
        if budget["basis"] == "power"
        else f"{budget['amount']:,.0f} USD per hour"
    )
    bought = ", ".join(f"{n:,} {_name(c)}" for c, n in budget["devices"].items())
    return f"An equal budget of {amount} buys {bought}."


def _times(model: str, rows: dict[str, dict[str, Any]]) -> str:
    base = _days(rows[REFERENCE])
    parts = [f"{base:,.0f} days on H800"]
    parts += [
        f"{_days(r):,.0f} on {_name(c)} ({_days(r) / base:.2f}x)"
        for c, r in rows.items()
        if c != REFERENCE
    ]
    return f"Without instability, {model} trains in " + ", ".join(parts) + "."


def _plans(model: str, plans: dict[str, dict[str, Any]]) -> list[str]:
    """Chips whose fastest plans do not fit in their memory: what they run instead, and why."""
    out = []
    for chip, plan in plans.items():
        over = [t for t in plan["tried"] if t["valid"] and not t["fits_in_memory"]]
        fastest = max(over, key=lambda t: t["tokens_per_s"], default=None)
        chosen = next(t for t in plan["tried"] if t["plan"] == plan["plan"])
        if fastest is None or fastest["tokens_per_s"] <= chosen["tokens_per_s"]:
            continue
        hbm = get_chip(chip).hbm_bytes / 1e9
        out.append(
            f"{model} on {_name(chip)}: the fastest plan ({fastest['plan']}) needs "
            f"{fastest['memory_per_device_bytes'] / 1e9:,.0f} GB per device against {hbm:,.0f} "
            f"GB; it runs {plan['plan']} instead, "
            f"{1 - chosen['tokens_per_s'] / fastest['tokens_per_s']:.0%} slower."
        )
    return out


def _communication(rows: dict[str, dict[str, Any]]) -> str:
    base = rows[REFERENCE]
    parts = [
        f"{_name(c)} spends {r['exposed_ep_share']:.0%} of its step in exposed EP communication "
        f"and {r['bubble_share']:.0%} in pipeline bubbles (MFU {r['mfu']:.0%})"
        for c, r in rows.items()
        if c != REFERENCE
    ]
    return (
        "R2-class step: " + "; ".join(parts) + f"; against {base['exposed_ep_share']:.0%} and "
        f"{base['bubble_share']:.0%} on H800 (MFU {base['mfu']:.0%})."
    )


def _instability(stable: dict[str, dict[str, Any]], unstable: dict[str, dict[str, Any]]) -> str:
    parts = []
    for chip, row in unstable.items():
        before, after = _days(stable[chip]), _days(row)
        parts.append(
            f"{_name(chip)} {row['interruptions_per_day']:,.1f} interruptions per day, goodput "
            f"{row['goodput']:.0%}, {before:,.0f} -> {after:,.0f} days (+{after / before - 1:.0%})"
        )
    return "With instability (R2-class): " + "; ".join(parts) + "."


def _serving(rows: list[dict[str, Any]]) -> str:
    by_chip = {r["chip"]: r for r in rows}
    base = by_chip[REFERENCE]
    parts = [
        f"{_name(c)} decodes {r['decode_tokens_per_s_per_device']:,.0f} tokens/s per chip "
        f"({r['decode_tokens_per_s_per_device'] / base['decode_tokens_per_s_per_device']:.0%} of "
        f"H800's {base['decode_tokens_per_s_per_device']:,.0f}) at "
        f"{r['cost_per_million_tokens_usd']:,.2f} USD per million output tokens "
        f"({r['cost_per_million_tokens_usd'] / base['cost_per_million_tokens_usd']:.2f}x H800's)"
        for c, r in by_chip.items()
        if c != REFERENCE
    ]
    return "Serving DeepSeek-R1 within the same TPOT limit: " + "; ".join(parts) + "."


def _answer(report: dict[str, Any]) -> str:
    """Training against serving on the same budget: the best Ascend fleet's training speed (the
    R2-class model, with instability) and serving throughput, each as a share of the H800
    fleet's; and the goodput of the largest scale-sweep point."""
    unstable = _rows(report, "r2-class", "on")
    devices = report["budget"]["devices"]
    ascend = [c for c in unstable if get_chip(c).vendor.lower() == "huawei"]
    chip = min(ascend, key=lambda c: unstable[c]["time_to_train_s"])
    row, base = unstable[chip], unstable[REFERENCE]
    train_share = base["time_to_train_s"] / row["time_to_train_s"]
    serving = {r["chip"]: r for r in report["serving"]}

    def fleet_rate(c: str) -> float:
        return serving[c]["decode_tokens_per_s_per_device"] * devices[c]

    serve_chip = max(ascend, key=fleet_rate)
    serve_share = fleet_rate(serve_chip) / fleet_rate(REFERENCE)
    largest = {c: rows[-1] for c, rows in report["scale"].items()}
    closer = "serving" if serve_share > train_share else "training"
    return (
        f"Answer: on the same budget the best Ascend fleet ({_name(chip)}) trains the R2-class "
        f"model at {train_share:.0%} of the H800 fleet's speed with instability "
        f"({_days(row):,.0f} against {_days(base):,.0f} days, {1 - row['goodput']:.0%} of its "
        f"wall time lost to failures against {1 - base['goodput']:.0%}); on "
        f"{largest[chip]['devices']:,} devices its goodput falls to "
        f"{largest[chip]['goodput']:.0%} (H800 on {largest[REFERENCE]['devices']:,}: "
        f"{largest[REFERENCE]['goodput']:.0%}). Serving R1, the {_name(serve_chip)} fleet makes "
        f"{serve_share:.0%} of the H800 fleet's output tokens per second, from deployments of "
        f"{serving[serve_chip]['decode_devices']:,} devices: Ascend comes closer to NVIDIA for "
        f"{closer}."
    )
