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
]


def cmd_serve(args: argparse.Namespace, console: Console) -> None:
    scenario = resolve_scenario(args.scenario)
    result = serve_scenario(scenario)
    if args.trace:
        server = server_of(scenario)
        write_step_trace(args.trace, decode_step_trace(server, result.batch))
    if args.json:
        print_json(result.to_dict())
        return
    row = result.to_dict()
    row["ttft_ms"], row["tpot_ms"] = 1e3 * row["ttft_s"], 1e3 * row["tpot_s"]
    console.print(rows_table(f"{args.scenario}: {result.model} serving", COLUMNS, [row]))
    for note in result.notes:
        console.print(f"note: {note}")
