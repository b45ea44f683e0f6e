"""podsim: simulate clusters of AI accelerators running collectives and training large models."""

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from rich.console import Console

from podsim.engine.core import NETWORK_MODES
from podsim.errors import PodsimError
from podsim.front.cli import catalogs, collective, compare, serve, train, validate
from podsim.lowering.collective import OPS
from podsim.lowering.program import Algorithm
from podsim.version import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="podsim", description=__doc__)
    parser.add_argument("--version", action="version", version=f"podsim {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True)
    chips = verbs.add_parser("chips", help="the chip catalog, with sources")
    chips.add_argument("--json", action="store_true")
    chips.set_defaults(run=catalogs.cmd_chips)
    clusters = verbs.add_parser("clusters", help="cluster presets")
    clusters.add_argument("--json", action="store_true")
    clusters.set_defaults(run=catalogs.cmd_clusters)
    coll = verbs.add_parser("collective", help="time, algbw and busbw of one collective")
    coll.add_argument("--chip", help="catalog chip id (a single scale-up domain unless --devices)")
    coll.add_argument("--cluster", help="cluster preset id (`podsim clusters`)")
    coll.add_argument("--devices", type=int, help="number of devices (ranks)")
    coll.add_argument("--op", required=True, choices=OPS)
    coll.add_argument(
        "--size", required=True, help="bytes: 8, 128K, 1G (binary), '1 GiB', or MIN:MAX[:FACTOR]"
    )
    coll.add_argument("--algorithm", default="auto", choices=[a.label for a in Algorithm])
    coll.add_argument("--network", default="analytical", choices=NETWORK_MODES)
    coll.add_argument("--json", action="store_true", help="one JSON object on stdout (SI units)")
    coll.set_defaults(run=collective.cmd_collective)
    train_cmd = verbs.add_parser("train", help="one training step of a scenario")
    train_cmd.add_argument(
        "scenario", help="a scenario file, or a built-in name (podsim scenarios)"
    )
    train_cmd.add_argument("--network", default="analytical", choices=NETWORK_MODES)
    train_cmd.add_argument("--strict", action="store_true", help="fail if it does not fit")
    train_cmd.add_argument(
        "--trace",
        help="write a Chrome/Perfetto trace (.json or .json.gz; at most 2M ops: see --trace-ranks)",
    )
    train_cmd.add_argument(
        "--trace-ranks", help="trace only ranks A to B - 1 (A:B) or one rank (A); with --trace"
    )
    train_cmd.add_argument(
        "--json", action="store_true", help="one JSON object on stdout (SI units)"
    )
    train_cmd.add_argument("--scale", help="sweep cluster sizes, e.g. 1024:65536 (weak scaling)")
    train_cmd.set_defaults(run=train.cmd_train)
    serve_cmd = verbs.add_parser("serve", help="prefill / decode of a serving scenario")
    serve_cmd.add_argument(
        "scenario", help="a scenario file, or a built-in name (podsim scenarios)"
    )
    serve_cmd.add_argument("--trace", help="write the Chrome trace of one decode step (.json[.gz])")
    serve_cmd.add_argument(
        "--json", action="store_true", help="one JSON object on stdout (SI units)"
    )
    serve_cmd.set_defaults(run=serve.cmd_serve)
    for verb, runner, text in (
        ("models", catalogs.cmd_models, "the model catalog, with sources"),
        ("validate", validate.cmd_validate, "published runs against podsim"),
    ):
        sub = verbs.add_parser(verb, help=text)
        sub.add_argument("--json", action="store_true")
        sub.set_defaults(run=runner)
    verbs.add_parser("scenarios", help="built-in scenarios").set_defaults(
        run=catalogs.cmd_scenarios
    )
    comp = verbs.add_parser(
        "compare", help="the same training or serving scenario on several chips"
    )
    comp.add_argument("scenario", help="a scenario file, or a built-in name")
    comp.add_argument("--chips", required=True, help="catalog ids, comma-separated")
    comp.add_argument("--network", default="analytical", choices=NETWORK_MODES)
    comp.add_argument("--json", action="store_true")
    comp.set_defaults(run=compare.cmd_compare)
    return parser


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
