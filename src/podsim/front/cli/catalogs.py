"""`podsim chips`, `clusters`, `models` and `scenarios`: the catalogs, with sources."""

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from podsim.errors import SpecError
from podsim.front.api import builtin_scenarios
from podsim.front.cli.output import check_new_file, print_json
from podsim.front.reference_page import reference_markdown
from podsim.specs.chips import catalog
from podsim.specs.clusters import preset_cluster, presets
from podsim.specs.models import catalog as model_catalog


def cmd_chips(args: argparse.Namespace, console: Console) -> None:
    chips = catalog()
    if args.json:
        print_json({cid: chip.to_dict() for cid, chip in chips.items()})
        return
    table = Table(title="chips (dense peaks; bandwidths per direction)")
    for column in (
        "id",
        "bf16 TFLOP/s",
        "fp8 TFLOP/s",
        "HBM (GB)",
        "HBM (TB/s)",
        "scale-up (GB/s)",
        "domain",
        "scale-out (Gb/s)",
        "TDP (W)",
    ):
        table.add_column(column, justify="right")
    for cid, c in chips.items():
        fp8 = c.peak_flops.get("fp8")
        table.add_row(
            cid,
            f"{c.peak('bf16') / 1e12:,.0f}",
            f"{fp8 / 1e12:,.0f}" if fp8 else "-",
            f"{c.hbm_bytes / 1e9:,.0f}",
            f"{c.hbm_bandwidth / 1e12:.2f}",
            f"{c.scale_up_bandwidth / 1e9:,.0f}",
            str(c.domain_size),
            f"{c.scale_out_bandwidth * 8 / 1e9:,.0f}",
            f"{c.tdp_watts:,.0f}",
        )
    console.print(table)
    console.print("Sources: `podsim chips --json` lists the source of every value.")


def cmd_clusters(args: argparse.Namespace, console: Console) -> None:
    if args.json:
        print_json(
            {
                pid: {**preset_cluster(pid).to_dict(), **dict(table)}
                for pid, table in presets().items()
            }
        )
        return
    table = Table(title="cluster presets")
    for column in ("id", "chip", "devices", "domain", "pod", "oversub.", "description"):
        table.add_column(column)
    for pid, raw in presets().items():
        c = preset_cluster(pid)
        table.add_row(
            pid,
            c.chip.id,
            str(c.devices),
            str(c.domain_size),
            str(c.pod_size),
            f"{c.oversubscription:g}",
            str(raw.get("description", "")),
        )
    console.print(table)


def cmd_models(args: argparse.Namespace, console: Console) -> None:
    models = model_catalog()
    if args.json:
        print_json({mid: m.to_dict() for mid, m in models.items()})
        return
    table = Table(title="models")
    for column in (
        "id",
        "layers",
        "hidden",
        "heads / kv",
        "ffn",
        "experts (top-k)",
        "params (B)",
        "active (B)",
    ):
        table.add_column(column, justify="right")
    for mid, m in models.items():
        experts = f"{m.experts} ({m.top_k})" if m.experts else "-"
        table.add_row(
            mid,
            str(m.layers),
            str(m.hidden),
            f"{m.heads} / {m.kv_heads}",
            str(m.ffn_hidden),
            experts,
            f"{m.params() / 1e9:,.1f}",
            f"{m.active_params() / 1e9:,.1f}",
        )
    console.print(table)


def cmd_scenarios(args: argparse.Namespace, console: Console) -> None:
    if args.reference:
        sys.stdout.write(reference_markdown())
        return
    builtins = builtin_scenarios()
    name = args.show or (args.copy[0] if args.copy else None)
    if name is not None and name not in builtins:
        flag = "--show" if args.show else "--copy"
        raise SpecError(
            f"{flag} = {name!r} is not allowed: a built-in scenario ({', '.join(builtins)})"
        )
    if args.show:
        sys.stdout.write(builtins[name])
        return
    if args.copy:
        _copy(name, Path(args.copy[1]), builtins[name], args.force)
        path = args.copy[1]
        console.print(f"wrote {path} (built-in {name}); run it: podsim train {path}")
        return
    if args.force:
        raise SpecError("--force goes with --copy NAME PATH")
    if args.json:
        print_json({n: {"what": _what(text), "toml": text} for n, text in builtins.items()})
        return
    table = Table(title="built-in scenarios (podsim train NAME)")
    table.add_column("name")
    table.add_column("what")
    for name, text in builtins.items():
        table.add_row(name, _what(text))
    console.print(table)
    console.print("podsim scenarios --show NAME prints one; --copy NAME PATH writes it to edit.")


def _what(text: str) -> str:
    return text.splitlines()[0].lstrip("# ") if text else ""


def _copy(name: str, path: Path, text: str, force: bool) -> None:
    """Write built-in `name` to `path`: never over a directory, nor over a file unless force."""
    check_new_file(f"--copy {name}", path, force)
    path.write_text(text, encoding="utf-8")
