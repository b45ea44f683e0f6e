"""The showcase's table rows, made from ordinary train / serve results (nothing recomputed but
shares and rates of what the results hold), and the columns every output prints them with."""

from typing import Any

SECONDS_PER_DAY = 86_400.0

# (heading, key, format) as podsim.results.tables.rows_table takes them.
TRAIN_COLUMNS = [
    ("chip", "chip", "{}"),
    ("unstable", "instability", "{}"),
    ("devices", "devices", "{:,}"),
    ("precision", "precision_shown", "{}"),
    ("step time (s)", "step_time_s", "{:,.2f}"),
    ("MFU", "mfu", "{:.1%}"),
    ("exposed EP comm", "exposed_ep_share", "{:.1%}"),
    ("memory (GB)", "memory_per_device_bytes", "gb"),
    ("time to train (days)", "time_to_train_s", "days"),
    ("interruptions/day", "interruptions_per_day", "{:,.2f}"),
    ("goodput", "goodput", "{:.1%}"),
    ("cost (M USD)", "cost_to_train_musd", "{:,.1f}"),
]
# The scale sweep's rows are `podsim train --scale --json`'s, with the chip added.
SCALE_COLUMNS = [
    ("chip", "chip", "{}"),
    ("devices", "devices", "{:,}"),
    ("global batch", "global_batch", "{:,}"),
    ("step time (s)", "step_time_s", "{:,.2f}"),
    ("days, failure-free", "time_to_train_s", "days"),
    ("days p50", "time_to_train_p50_s", "days"),
    ("interruptions", "interruptions", "{:,.0f}"),
    ("goodput", "goodput", "{:.1%}"),
]
SERVE_COLUMNS = [
    ("chip", "chip", "{}"),
    ("precision", "precision", "{}"),
    ("decode devices", "decode_devices", "{:,}"),
    ("TPOT (ms)", "tpot_ms", "{:,.1f}"),
    ("decode tok/s/chip", "decode_tokens_per_s_per_device", "{:,.0f}"),
    ("prefill devices", "prefill_devices", "{:,}"),
    ("TTFT (ms)", "ttft_ms", "{:,.0f}"),
    ("prefill tok/s/chip", "prefill_tokens_per_s_per_device", "{:,.0f}"),
    ("kWh / M output tok", "energy_per_million_tokens_kwh", "{:,.3f}"),
    ("USD / M output tok", "cost_per_million_tokens_usd", "{:,.3f}"),
    ("USD / M prompt tok", "prefill_cost_per_million_tokens_usd", "{:,.3f}"),
]


def train_row(model: str, chip: str, unstable: bool, result: dict[str, Any]) -> dict[str, Any]:
    """One training row: without instability the failure-free time to train (goodput 1, no
    interruptions); with it the median time with failures and the expected interruptions per
    day (86,400 s over the job's mean time between failures)."""
    step = result["step_time_s"]
    by_kind = result["breakdown"]["exposed_comm_by_kind_s"]
    plan = result["plan"]
    row = {
        "model": model,
        "chip": chip,
        "instability": "on" if unstable else "off",
        "devices": result["devices"],
        "precision": plan["precision"],
        "precision_shown": plan["precision"],
        "pp": plan["pp"],
        "ep": plan["ep"],
        "recompute": plan["recompute"],
        "micro_batch": plan["micro_batch"],
        "global_batch": plan["global_batch"],
        "step_time_s": step,
        "mfu": result["mfu"],
        "tokens_per_s": result["tokens_per_s"],
        "memory_per_device_bytes": result["memory_per_device_bytes"],
        "fits_in_memory": result["fits_in_memory"],
        "exposed_ep_share": by_kind.get("ep", 0.0) / step,
        "exposed_comm_share": result["breakdown"]["exposed_comm_s"] / step,
        "bubble_share": result["breakdown"]["bubble_s"] / step,
        "compute_share": result["breakdown"]["compute_s"] / step,
        "time_to_train_failure_free_s": result["time_to_train_s"],
        "time_to_train_s": result["time_to_train_s"],
        "interruptions_per_day": 0.0,
        "goodput": 1.0,
        "energy_to_train_mwh": result["energy_to_train_mwh"],
        "cost_to_train_usd": result["cost_to_train_usd"],
        "cost_to_train_musd": result["cost_to_train_usd"] / 1e6,
        "power_per_device_w": result["power_per_device_w"],
    }
    if unstable:
        long_run = result["long_run"]
        row["time_to_train_s"] = result["time_to_train_p50_s"]
        row["interruptions_per_day"] = SECONDS_PER_DAY / long_run["job_mtbf_s"]
        row["interruptions"] = result["interruptions"]
        row["goodput"] = result["goodput"]
    return row


def serve_row(chip: str, decode: dict[str, Any], prefill: dict[str, Any]) -> dict[str, Any]:
    """One chip's serving row: TPOT, tokens/s per chip, energy and cost per million output
    tokens from the decode deployment; TTFT and prompt tokens/s from the prefill one."""
    return {
        "chip": chip,
        "precision": decode["plan"]["precision"],
        "decode_devices": decode["devices"],
        "tpot_s": decode["tpot_s"],
        "tpot_ms": decode["tpot_s"] * 1e3,
        "decode_batch": decode["batch"],
        "decode_tokens_per_s_per_device": decode["decode_tokens_per_s_per_device"],
        "prefill_devices": prefill["devices"],
        "ttft_s": prefill["ttft_s"],
        "ttft_ms": prefill["ttft_s"] * 1e3,
        "prefill_tokens_per_s_per_device": prefill["prefill_tokens_per_s_per_device"],
        "energy_per_million_tokens_j": decode["energy_per_million_tokens_j"],
        "energy_per_million_tokens_kwh": decode["energy_per_million_tokens_j"] / 3.6e6,
        "cost_per_million_tokens_usd": decode["cost_per_million_tokens_usd"],
        "prefill_cost_per_million_tokens_usd": prefill["prefill_cost_per_million_tokens_usd"],
        "power_per_device_w": decode["power_per_device_w"],
    }


def scale_rows(scale: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Every chip's scale-sweep rows in one list, each with its chip."""
    return [{"chip": chip, **row} for chip, rows in scale.items() for row in rows]
