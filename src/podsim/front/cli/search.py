"""`podsim search`: the best training plans for a scenario's model on its cluster."""

import argparse
from typing import Any

from rich.console import Console

from podsim.engine.core import NETWORK_MODES
from podsim.front.cli.executor_options import add_executor_options, executor_of
from podsim.front.cli.output import print_json
from podsim.front.cli.progress import progress_after
from podsim.front.plan_space import parse_space
from podsim.front.search import DEFAULT_MARGIN, DEFAULT_MAX_SIMULATIONS, SearchResult, search
from podsim.results.tables import rows_table

COLUMNS = [
    ("#", "rank", "{}"),
    ("tp", "tp", "{}"),
    ("pp", "pp", "{}"),
    ("dp", "dp", "{}"),
    ("cp", "cp", "{}"),
    ("ep", "ep", "{}"),
    ("etp", "etp", "{}"),
    ("v", "virtual_stages", "{}"),
    ("mb", "micro_batch", "{}"),
    ("zero", "zero", "{}"),
    ("recompute", "recompute", "{}"),
    ("schedule", "schedule", "{}"),
    ("step (s)", "step_time_s", "{:,.3f}"),
    ("MFU", "mfu", "{:.1%}"),
    ("memory (GB)", "memory_per_device_bytes", "gb"),
    ("compute (s)", "compute_s", "{:,.3f}"),
    ("exposed comm (s)", "exposed_comm_s", "{:,.3f}"),
    ("bubble (s)", "bubble_s", "{:,.3f}"),
    ("estimate (s)", "estimate_s", "{:,.3f}"),
    ("estimate error", "estimate_error", "{:+.1%}"),
    ("time to train (days)", "time_to_train_s", "days"),
]


def _flat(item: dict[str, Any], rank: Any) -> dict[str, Any]:
    row = {"rank": rank, **item["plan"], **item["breakdown"]}
    row |= {k: v for k, v in item.items() if not isinstance(v, dict)}
    row["rank"] = rank
    if "estimate" in item:
        row["estimate_s"] = item["estimate"]["step_time_s"]
    if item.get("time_to_train_p50_s") is not None:
        row["time_to_train_s"] = item["time_to_train_p50_s"]
    return row


def cmd_search(args: argparse.Namespace, console: Console) -> None:
    kwargs = {
        "top": args.top,
        "objective": args.objective,
        "space": parse_space(args.space, "--space"),
        "fix": {k: v[0] for k, v in parse_space(args.fix, "--fix").items()},
        "sets": args.sets,
        "jobs": args.jobs,
        "network": args.network,
        "margin": args.margin,
        "max_simulations": args.max_simulations,
        "executor": executor_of(args),
        "cache": args.cache,
    }
    if args.json:
        print_json(search(args.scenario, **kwargs).to_dict())
        return
    with progress_after(console, "plans screened and simulated", 1) as advance:
        result = search(args.scenario, progress=advance, **kwargs)
    show(result, console)


def _columns(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """COLUMNS without cp, ep and etp where every row leaves them at their identity (cp 1,
    ep 1, etp 0 or tp), so that dense-model tables stay narrow."""
    identity = {"cp": lambda r: r["cp"] == 1, "ep": lambda r: r["ep"] == 1}
    identity["etp"] = lambda r: r["etp"] in (0, r["tp"])
    hidden = {key for key, same in identity.items() if all(same(row) for row in rows)}
    return [column for column in COLUMNS if column[1] not in hidden]


def show(result: SearchResult, console: Console) -> None:
    rows = [_flat(item, item["rank"]) for item in result.plans]
    if result.scenario_plan is not None:
        rows.append(_flat(result.scenario_plan, "scenario"))
    title = (
        f"{result.scenario}: best {len(result.plans)} plans by {result.objective} "
        f"({result.network} network)"
    )
    console.print(rows_table(title, _columns(rows), rows))
    for item in result.plans:
        console.print(f"#{item['rank']}: {item['why']}", markup=False, highlight=False)
    own, best = result.scenario_plan, result.best
    if own is not None and best is not None:
        speedup = own["step_time_s"] / best["step_time_s"]
        console.print(
            f"the scenario's own plan: {own['step_time_s']:,.3f} s per step "
            f"({own['mfu']:.1%} MFU); the best found is {speedup:.2f}x as fast",
            markup=False,
            highlight=False,
        )
    summary = result.to_dict()
    console.print(
        f"space: {result.candidates:,} plans; pruned {summary['pruned_total']:,}; "
        f"screened {result.screened:,} in {result.screening_s:.1f} s "
        f"({summary['screening_s_per_plan'] * 1e3:.2f} ms per plan of the space); "
        f"simulated {result.simulated:,} in {result.simulation_s:.1f} s ({result.stopped})",
        markup=False,
        highlight=False,
    )
    for reason, number in result.pruned.items():
        console.print(f"  pruned {number:>7,}: {reason}", markup=False, highlight=False)
    for reason, number in result.refused.items():
        console.print(f"  refused by the run {number:,}: {reason}", markup=False, highlight=False)
    for note in result.notes:
        console.print(f"note: {note}", markup=False, highlight=False)


def add_parser(verb, scenario_help: str, set_help: str, json_help: str, network_help: str) -> None:
    """The `search` verb's options (called by podsim.front.cli.build_parser)."""
    cmd = verb(
        "search",
        "the best training plans (tp, pp, dp, ep, cp, etp, virtual stages, micro-batch, ZeRO, "
        "recompute, schedule) for the scenario's model on its cluster, same devices and global "
        "batch: prune, screen in closed form, simulate the best (docs/search.md)",
    )
    cmd.add_argument("scenario", help=scenario_help)
    cmd.add_argument("--top", type=int, default=5, metavar="N", help="plans to report")
    cmd.add_argument(
        "--objective",
        default="mfu",
        choices=("mfu", "time-to-train"),
        help="highest MFU (shortest step), or shortest time to train train.tokens (with "
        "[failures]: the median with failures)",
    )
    cmd.add_argument(
        "--space",
        action="append",
        default=[],
        metavar="train.KEY=V1,V2,...",
        help="the values to search for a key (tp, pp, cp, ep, etp, micro_batch, zero, "
        "recompute, schedule, virtual_stages) instead of its defaults; repeatable",
    )
    cmd.add_argument(
        "--fix",
        action="append",
        default=[],
        metavar="train.KEY=V",
        help="hold a searched key at one value (e.g. train.tp=8); repeatable",
    )
    cmd.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", dest="sets", help=set_help
    )
    cmd.add_argument(
        "--margin",
        type=float,
        default=DEFAULT_MARGIN,
        help="simulate on while the next plan's estimate x (1 - margin) could beat the N-th best",
    )
    cmd.add_argument(
        "--max-simulations",
        type=int,
        default=DEFAULT_MAX_SIMULATIONS,
        metavar="N",
        help="simulate at most N plans",
    )
    add_executor_options(cmd, "plans", "search", "the CPUs")
    cmd.add_argument("--network", default="analytical", choices=NETWORK_MODES, help=network_help)
    cmd.add_argument("--json", action="store_true", help=json_help)
    cmd.set_defaults(run=cmd_search)
