"""The plan each chip runs: a small explicit list of candidates, each run with the ordinary API;
the winner is the fastest that fits in the chip's memory, and the record says why it won."""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from podsim.costs.memory import reserve_bytes
from podsim.errors import SpecError
from podsim.front.api import serve, train
from podsim.front.scenario import scenario_from_document
from podsim.front.showcase.assumptions import (
    CANDIDATES,
    DEVICE_BLOCK,
    SERVE_SCALES,
    Budget,
    Candidate,
    ChipSetup,
)
from podsim.front.showcase.documents import Document, cluster_table, serve_document, train_document
from podsim.specs.chips import get_chip
from podsim.specs.clusters import cluster_from_table


def per_device(setup: ChipSetup) -> dict[str, float]:
    """What one device of the chip's system draws (all-in W, before PUE) and costs (USD/h)."""
    cluster = cluster_from_table(cluster_table(setup, DEVICE_BLOCK))
    return {"power_w": cluster.device_power_w, "price_usd_per_hour": setup.price_per_device_hour}


def budget_devices(setup: ChipSetup, budget: Budget, amount: float) -> int:
    """Devices of the chip that `amount` (W or USD/h, see Budget) buys, in whole blocks."""
    per = per_device(setup)["power_w" if budget.basis == "power" else "price_usd_per_hour"]
    devices = math.floor(amount / per / budget.block) * budget.block
    if devices < budget.block:
        unit = "W" if budget.basis == "power" else "USD per hour"
        raise SpecError(
            f"budget = {amount:,.0f} {unit} is not allowed: it buys no block of "
            f"{budget.block} {setup.chip} devices ({per:,.0f} {unit} each)"
        )
    return devices


@dataclass(frozen=True)
class Choice:
    """The winning scenario document, and every candidate tried (for the report)."""

    document: Document
    label: str
    reason: str
    tried: list[dict[str, Any]]
    plan: Candidate | None = None  # a training plan (serving deployments have none)
    runs: int = 0  # failure Monte Carlo runs of its scenarios with instability


def _tried(label: str, run: Callable[[], dict[str, Any]], keys: tuple[str, ...]) -> dict:
    try:
        result = run()
    except SpecError as error:  # a plan the chip or the cluster cannot run: kept with why
        return {"plan": label, "valid": False, "error": str(error).split(": ", 1)[-1]}
    return {"plan": label, "valid": True, **{k: result[k] for k in keys}}


def choose_train_plan(model: str, setup: ChipSetup, devices: int, runs: int) -> Choice:
    """The fastest candidate (most tokens/s) that fits in memory, without instability."""
    documents = [train_document(model, setup, devices, c, False, runs) for c in CANDIDATES]
    keys = ("tokens_per_s", "step_time_s", "memory_per_device_bytes", "fits_in_memory")
    tried = [
        _tried(c.label, lambda d=d: train(scenario_from_document(d)).to_dict(), keys)
        for c, d in zip(CANDIDATES, documents, strict=True)
    ]
    best = _best(tried, "tokens_per_s")
    if best is None:
        raise SpecError(_none_fits(model, setup.chip, devices, tried))
    winner: Candidate = CANDIDATES[best]
    reason = _reason(tried, best, "tokens/s", "tokens_per_s")
    return Choice(documents[best], winner.label, reason, tried, winner, runs)


def choose_serve_plan(setup: ChipSetup, phase: str) -> Choice:
    """The published deployment at each scale of SERVE_SCALES; the one that fits with the most
    tokens/s per device of the phase."""
    documents = [serve_document(setup, phase, scale) for scale in SERVE_SCALES]
    key = f"{phase}_tokens_per_s_per_device"
    labels = [f"{d['serve']['ep']} devices (ep = dp = {d['serve']['ep']})" for d in documents]
    tried = [
        _tried(
            label,
            lambda d=d: serve(scenario_from_document(d)).to_dict(),
            (key, "fits_in_memory", "memory_per_device_bytes"),
        )
        for label, d in zip(labels, documents, strict=True)
    ]
    best = _best(tried, key)
    if best is None:
        raise SpecError(f"no DeepSeek-R1 {phase} deployment fits on {setup.chip}")
    reason = _reason(tried, best, "tokens/s per device", key)
    return Choice(documents[best], labels[best], reason, tried)


def _none_fits(model: str, chip: str, devices: int, tried: list[dict[str, Any]]) -> str:
    hbm = get_chip(chip).hbm_bytes
    usable = hbm - reserve_bytes(hbm)
    valid = [t["memory_per_device_bytes"] for t in tried if t["valid"]]
    least = (
        f": the least any needs is {min(valid) / 1e9:,.0f} GB per device, more than the "
        f"{usable / 1e9:,.0f} GB a {hbm / 1e9:,.0f} GB {chip} leaves for tensors"
        if valid
        else ""
    )
    return (
        f"no candidate plan of {model} fits on {devices:,} {chip} devices{least}; the budget "
        "buys too few devices to shard the optimizer states: give a larger --budget"
    )


def _best(tried: list[dict[str, Any]], key: str) -> int | None:
    fitting = [i for i, t in enumerate(tried) if t["valid"] and t["fits_in_memory"]]
    return max(fitting, key=lambda i: tried[i][key], default=None)  # first of equals wins


def _reason(tried: list[dict[str, Any]], best: int, what: str, key: str) -> str:
    """Why the winner won: the fastest that fits, and what was faster but did not fit."""
    win = tried[best]
    fitting = sum(1 for t in tried if t["valid"] and t["fits_in_memory"])
    some = f"the fastest of {fitting} candidates that fit" if fitting > 1 else "the only fit"
    text = f"{some} ({win[key]:,.0f} {what})"
    faster = [
        f"{t['plan']} ({t['memory_per_device_bytes'] / 1e9:,.1f} GB per device)"
        for t in tried
        if t["valid"] and not t["fits_in_memory"] and t[key] > win[key]
    ]
    if faster:
        text += "; faster but over the memory: " + "; ".join(faster)
    return text
