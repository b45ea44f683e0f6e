"""`podsim serve`: prefill / decode of a scenario's [serve] deployment."""

import argparse

from rich.console import Console

from podsim.front.api import resolve_scenario
from podsim.front.cli.output import print_json
from podsim.front.serve import serve_scenario, server_of
from podsim.front.serve_trace import decode_step_trace
from podsim.results.serving import write_step_trace
from podsim.results.tables import rows_table

COLUMNS = [
    ("phase", "phase", "{}"),
    ("batch", "batch", "{:,}"),
    ("max batch", "max_batch", "{:,}"),
    ("TTFT (ms)", "ttft_ms", "{:,.1f}"),
    ("TPOT (ms)", "tpot_ms", "{:,.2f}"),
    ("prefill tok/s/dev", "prefill_tokens_per_s_per_device", "{:,.0f}"),
    ("decode tok/s/dev", "decode_tokens_per_s_per_device", "{:,.0f}"),
    ("memory (GB)", "memory_per_device_bytes", "gb"),
    ("fits", "fits_in_memory", "{}"),
    ("power/dev (W)", "power_per_device_w", "{:,.0f}"),
    ("kWh / M output tok", "energy_per_million_tokens_kwh", "{:,.3f}"),
    ("USD / M output tok", "cost_per_million_tokens_usd", "{:,.3f}"),
    ("kWh / M prompt tok", "prefill_energy_per_million_tokens_kwh", "{:,.3f}"),
    ("USD / M prompt tok", "prefill_cost_per_million_tokens_usd", "{:,.3f}"),
]


def with_kwh(row: dict) -> dict:
    """The row with its energies per million tokens in kWh too (the keys are in J)."""
    for key in ("energy_per_million_tokens", "prefill_energy_per_million_tokens"):
        if f"{key}_j" in row:
            row[f"{key}_kwh"] = row[f"{key}_j"] / 3.6e6
    return row


def cmd_serve(args: argparse.Namespace, console: Console) -> None:
    scenario = resolve_scenario(args.scenario)
    result = serve_scenario(scenario)
    if args.trace:
        server = server_of(scenario)
        write_step_trace(args.trace, decode_step_trace(server, result.batch))
    if args.json:
        print_json(result.to_dict())
        return
    row = with_kwh(result.to_dict())
    row["ttft_ms"], row["tpot_ms"] = 1e3 * row["ttft_s"], 1e3 * row["tpot_s"]
    console.print(rows_table(f"{args.scenario}: {result.model} serving", COLUMNS, [row]))
    for note in result.notes:
        console.print(f"note: {note}")
    console.print(
        f"energy at {result.energy['power_per_device_w']:,.0f} W per device x PUE "
        f"{result.energy['pue']:g}, cost at {result.energy['price_per_device_hour']:g} USD per "
        "device-hour (assumptions: docs/serving.md, 'Energy and cost')"
    )
