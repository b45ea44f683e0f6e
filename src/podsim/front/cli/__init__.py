"""podsim: simulate clusters of AI accelerators running collectives and training large models."""

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from rich.console import Console

from podsim.engine.core import NETWORK_MODES
from podsim.errors import PodsimError
from podsim.front.cli import (
    calibrate,
    catalogs,
    collective,
    compare,
    plot,
    search,
    serve,
    showcase,
    sweep,
    train,
    validate,
)
from podsim.front.cli.executor_options import add_executor_options
from podsim.lowering.collective import OPS
from podsim.lowering.program import Algorithm
from podsim.specs.clusters import PROTOCOLS
from podsim.version import __version__


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Help with each option's default, where it has one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False, [], argparse.SUPPRESS):
            return action.help
        return super()._get_help_string(action)


_JSON = "print one JSON object on stdout instead of a table (SI units; null = not defined)"
_NETWORK = (
    "network model: analytical (alpha-beta per algorithm step) or contention (links shared "
    "max-min fairly)"
)
_SCENARIO = "a scenario file (TOML), or a built-in name (`podsim scenarios`)"
_SET = (
    "override a scenario key, KEY=VALUE with a dotted key (train.tp=4, "
    "train.schedule=1f1b, cluster.scale_out_latency='5 us'); VALUE is read as TOML, else as a "
    "string; repeatable, applied in order, checked as the file is"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="podsim", description=__doc__, formatter_class=_Help)
    parser.add_argument("--version", action="version", version=f"podsim {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, text: str) -> argparse.ArgumentParser:
        return verbs.add_parser(name, help=text, description=text, formatter_class=_Help)

    chips = verb("chips", "the chip catalog, with sources")
    chips.add_argument("--json", action="store_true", help=_JSON + "; every value with its source")
    chips.set_defaults(run=catalogs.cmd_chips)
    clusters = verb("clusters", "cluster presets")
    clusters.add_argument("--json", action="store_true", help=_JSON)
    clusters.set_defaults(run=catalogs.cmd_clusters)
    coll = verb("collective", "time, algbw and busbw of one collective (nccl-tests style)")
    coll.add_argument(
        "--chip", help="catalog chip id (`podsim chips`): one scale-up domain unless --devices"
    )
    coll.add_argument("--cluster", help="cluster preset id (`podsim clusters`)")
    coll.add_argument(
        "--devices",
        type=int,
        help="number of devices (ranks); default: the chip's domain or the preset's size",
    )
    coll.add_argument("--op", required=True, choices=OPS, help="the collective operation")
    coll.add_argument(
        "--size",
        required=True,
        help="message size in bytes per rank buffer: 8, 128K, 1G (binary), '1 GiB', or a range "
        "MIN:MAX[:FACTOR] (FACTOR default 2, as nccl-tests -b/-e/-f)",
    )
    coll.add_argument(
        "--algorithm",
        default="auto",
        choices=[a.label for a in Algorithm],
        help="collective algorithm; auto picks the fastest",
    )
    coll.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        help="protocol of rings and nccl-tree: auto (NCCL's choice per size), ll, ll128 or simple; "
        "default: the cluster's (auto on the NVIDIA presets, simple elsewhere)",
    )
    coll.add_argument("--network", default="analytical", choices=NETWORK_MODES, help=_NETWORK)
    coll.add_argument(
        "--json",
        action="store_true",
        help=_JSON + '; always has "results" (one object per size) and, for one size, that '
        "size's keys at the top level too",
    )
    coll.set_defaults(run=collective.cmd_collective)
    train_cmd = verb("train", "one training step of a scenario, or a sweep of cluster sizes")
    train_cmd.add_argument("scenario", help=_SCENARIO)
    train_cmd.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", dest="sets", help=_SET
    )
    train_cmd.add_argument("--network", default="analytical", choices=NETWORK_MODES, help=_NETWORK)
    train_cmd.add_argument(
        "--strict", action="store_true", help="fail if the plan does not fit in device memory"
    )
    train_cmd.add_argument(
        "--trace",
        metavar="FILE",
        help="write a Chrome/Perfetto trace (.json or .json.gz; at most 2M ops: see --trace-ranks)",
    )
    train_cmd.add_argument(
        "--trace-ranks",
        metavar="A:B",
        help="trace only ranks A to B - 1 (A:B) or one rank (A); with --trace",
    )
    train_cmd.add_argument("--json", action="store_true", help=_JSON)
    train_cmd.add_argument(
        "--scale",
        metavar="MIN:MAX[:F]",
        help="sweep cluster sizes in devices, MIN:MAX doubling (or times F), or N1,N2,...: "
        "weak scaling (each replica keeps its batch, so the global batch grows with the "
        "cluster; see --max-global-batch)",
    )
    train_cmd.add_argument(
        "--max-global-batch",
        type=int,
        metavar="N",
        help="with --scale: the largest global batch in sequences; past it the batch is held "
        "(strong scaling); default: no limit",
    )
    train_cmd.set_defaults(run=train.cmd_train)
    serve_cmd = verb("serve", "prefill / decode of a serving scenario")
    serve_cmd.add_argument("scenario", help=_SCENARIO)
    serve_cmd.add_argument(
        "--trace", help="write the Chrome trace of one decode step (.json or .json.gz)"
    )
    serve_cmd.add_argument("--json", action="store_true", help=_JSON)
    serve_cmd.set_defaults(run=serve.cmd_serve)
    for name, runner, text in (
        ("models", catalogs.cmd_models, "the model catalog, with sources"),
        ("validate", validate.cmd_validate, "published runs against podsim, with errors"),
    ):
        sub = verb(name, text)
        sub.add_argument("--json", action="store_true", help=_JSON)
        sub.set_defaults(run=runner)
    calibrate.add_parser(verb, _JSON)
    scen = verb("scenarios", "built-in scenarios: list, show or copy one; the key reference")
    what = scen.add_mutually_exclusive_group()
    what.add_argument("--show", metavar="NAME", help="print built-in scenario NAME (TOML)")
    what.add_argument(
        "--copy",
        nargs=2,
        metavar=("NAME", "PATH"),
        help="write built-in scenario NAME to PATH to edit (never over a file without --force)",
    )
    what.add_argument(
        "--reference",
        action="store_true",
        help="print the scenario key reference (Markdown: docs/scenario-reference.md)",
    )
    scen.add_argument("--force", action="store_true", help="with --copy: overwrite PATH")
    scen.add_argument("--json", action="store_true", help=_JSON + ": name -> {what, toml}")
    scen.set_defaults(run=catalogs.cmd_scenarios)
    comp = verb(
        "compare",
        "the same training or serving scenario on several chips: only what the chip brings changes "
        "(compute, memory, its scale-up links), each row says what changed",
    )
    comp.add_argument("scenario", help=_SCENARIO)
    comp.add_argument(
        "--chips", required=True, metavar="A,B,...", help="catalog chip ids, comma-separated"
    )
    comp.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", dest="sets", help=_SET
    )
    comp.add_argument(
        "--standard-system",
        action="store_true",
        help="put each chip on its own standard system instead (its domain size and links)",
    )
    comp.add_argument("--network", default="analytical", choices=NETWORK_MODES, help=_NETWORK)
    comp.add_argument("--json", action="store_true", help=_JSON)
    comp.set_defaults(run=compare.cmd_compare)
    swp = verb(
        "sweep",
        "a scenario at every point of the Cartesian product of some keys' values: one row per "
        "point (train, or serve for a serving scenario); invalid points keep their reason",
    )
    swp.add_argument("scenario", help=_SCENARIO)
    swp.add_argument(
        "--grid",
        action="append",
        default=[],
        required=True,
        metavar="KEY=V1,V2,...",
        help="a dotted key and its values, comma-separated, each read as --set reads one "
        "(train.tp=4,8 or train.schedule=1f1b,dualpipe); repeatable: the points are the "
        "product of all grids (the first varies slowest), at most 10,000",
    )
    swp.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", dest="sets", help=_SET
    )
    swp.add_argument(
        "--out",
        metavar="FILE",
        help="also write the rows to FILE.csv (one column per key), FILE.json (as --json) or "
        "FILE.parquet (needs pandas and pyarrow: extra frames)",
    )
    add_executor_options(swp, "points", "sweep", "min(points, CPUs)")
    swp.add_argument("--network", default="analytical", choices=NETWORK_MODES, help=_NETWORK)
    swp.add_argument("--json", action="store_true", help=_JSON)
    swp.set_defaults(run=sweep.cmd_sweep)
    search.add_parser(verb, _SCENARIO, _SET, _JSON, _NETWORK)
    _plot_verb(verb("plot", "figures (PNG, SVG) of results saved with --json; prints the files"))
    showcase.add_parser(verb)
    return parser


def _plot_verb(plt: argparse.ArgumentParser) -> None:
    plt.add_argument(
        "results",
        nargs="+",
        metavar="RESULTS.json",
        help="JSON written by podsim train (also --scale), compare, collective, serve or sweep "
        "with --json (or sweep --out FILE.json); each gives files named after it: "
        "NAME-breakdown, NAME-scale, NAME-compare, NAME-busbw, NAME-decode or NAME-sweep",
    )
    plt.add_argument(
        "--out", default=".", metavar="DIR", help="folder to write into (created if missing)"
    )
    plt.add_argument(
        "--format",
        default="png,svg",
        metavar="FMT[,FMT]",
        help="file formats, comma-separated: png, svg",
    )
    plt.set_defaults(run=plot.cmd_plot)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one verb. Exit status: 0 done, 2 an error (one line on stderr, `podsim: error: ...`),
    130 interrupted (Ctrl-C: `podsim: interrupted`), 141 stdout closed early (a broken pipe,
    e.g. `podsim ... | head`: quietly, as other command-line tools)."""
    try:
        args = build_parser().parse_args(argv)
        run: Callable[[argparse.Namespace, Console], None] = args.run
        # A pipe gets wide tables rather than rich's 80-column default.
        run(args, Console() if sys.stdout.isatty() else Console(width=140))
        sys.stdout.flush()
    except PodsimError as error:
        return _error(str(error))
    except KeyboardInterrupt:
        print("podsim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 141
    except MemoryError:
        return _error("out of memory: the job is too large for this machine")
    except OSError as error:  # a file that cannot be read or written
        where = f"{error.filename}: " if error.filename else ""
        return _error(f"{where}{error.strerror or error}")
    return 0


def _error(message: str) -> int:
    print(f"podsim: error: {message}", file=sys.stderr)
    return 2


def _silence_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so that Python's final flush at exit does
    not fail again (the recipe of the Python docs, signal module, "Note on SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
