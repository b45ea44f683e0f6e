"""--jobs, --dask and --cache, shared by the verbs that run many scenarios (`sweep`, `search`)."""

import argparse
from typing import Any

from podsim.front.executors import DASK_LOCAL


def add_executor_options(
    cmd: argparse.ArgumentParser, what: str, rerun: str, jobs_default: str
) -> None:
    """The three options; `what` names the runs ("points", "plans"), `rerun` the repeated
    command ("sweep", "search"), `jobs_default` how many processes run without --jobs."""
    cmd.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help=f"local processes to run the {what} on (1: serially); default: {jobs_default}",
    )
    cmd.add_argument(
        "--dask",
        metavar="ADDRESS",
        help=f"run the {what} on a dask.distributed cluster: a scheduler address "
        "(tcp://HOST:8786) or 'local' for a LocalCluster of --jobs workers on this machine "
        "(extra dask); default: local processes",
    )
    cmd.add_argument(
        "--cache",
        metavar="DIR",
        help=f"keep every simulated {what[:-1]}'s row in folder DIR (created if missing), so a "
        f"repeated {rerun} runs only new {what}; default: no cache on disk (rows are reused "
        "within one run)",
    )


def executor_of(args: argparse.Namespace) -> Any:
    """The executor --dask names (None: local processes)."""
    if args.dask is None:
        return None
    return DASK_LOCAL if args.dask == "local" else args.dask
