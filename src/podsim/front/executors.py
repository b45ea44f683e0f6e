"""Where independent runs go: one interface, three executors.

`run_all(function, items, executor)` calls `function(*item)` for every item and returns the
results in the items' order, whichever executor ran them:
- "serial": in this process, one after another;
- "processes" (the default for more than one item): a local process pool;
- a dask.distributed address ("tcp://host:8786"), "dask-local" for a LocalCluster on this
  machine, or a `distributed.Client` (extra `dask`).
Results are the same for every executor: each item is run by the same pure function.
Ctrl-C stops the run within a second: local workers are terminated, dask futures cancelled.
"""

import multiprocessing
import os
from collections.abc import Callable, Sequence
from typing import Any

from podsim.engine.core import limit_threads
from podsim.errors import SpecError, shown

DASK_LOCAL = "dask-local"
EXECUTORS = ("serial", "processes", DASK_LOCAL, "tcp://HOST:PORT or another dask address")


def _in_worker(function: Callable[..., Any], *item: Any) -> Any:
    """One item in a worker process: its noisy steps take one thread (limit_threads), since
    the workers already share out the CPUs."""
    limit_threads(1)
    return function(*item)


def _star(job: tuple[Callable[..., Any], tuple[Any, ...]]) -> Any:
    function, item = job
    return _in_worker(function, *item)


def _serial(function, items, progress) -> list[Any]:
    results = []
    for item in items:
        results.append(function(*item))
        if progress is not None:
            progress(len(results))
    return results


def _processes(function, items, workers: int, progress) -> list[Any]:
    # multiprocessing.Pool rather than concurrent.futures: terminate() stops running workers at
    # once on Ctrl-C, where ProcessPoolExecutor waits for the points already running.
    context = multiprocessing.get_context("spawn" if os.name == "nt" else "fork")
    pool = context.Pool(processes=workers)
    try:
        results = []
        for result in pool.imap(_star, [(function, item) for item in items], chunksize=1):
            results.append(result)
            if progress is not None:
                progress(len(results))
        pool.close()
        pool.join()
        return results
    except BaseException:
        pool.terminate()
        pool.join()
        raise


def _dask_client(executor: Any, workers: int) -> tuple[Any, bool]:
    """(client, whether this call owns it and must close it)."""
    try:
        import distributed
    except ImportError as error:
        raise SpecError(
            f"executor = {shown(str(executor))} needs dask.distributed: pip install 'podsim[dask]'"
        ) from error
    if isinstance(executor, distributed.Client):
        return executor, False
    if executor == DASK_LOCAL:
        cluster = distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, dashboard_address=None
        )
        return distributed.Client(cluster), True
    return distributed.Client(executor, timeout="10s"), True


def _dask(function, items, executor, workers: int, progress) -> list[Any]:
    import distributed

    client, owned = _dask_client(executor, workers)
    futures = [client.submit(_in_worker, function, *item, pure=False) for item in items]
    try:
        for done, _ in enumerate(distributed.as_completed(futures), start=1):
            if progress is not None:
                progress(done)
        return client.gather(futures)
    except BaseException:
        client.cancel(futures)
        raise
    finally:
        if owned:
            cluster = client.cluster
            client.close()
            if cluster is not None:
                cluster.close()


def check_executor(executor: Any) -> None:
    """Refuse an executor that is none of the allowed kinds, before any work."""
    if executor in ("serial", "processes", DASK_LOCAL) or executor is None:
        return
    if isinstance(executor, str) and "://" in executor:
        return
    if type(executor).__name__ == "Client":  # a distributed.Client, checked without importing
        return
    raise SpecError(
        f"executor = {shown(executor)} is not allowed: one of {', '.join(EXECUTORS)}, "
        "or a distributed.Client"
    )


def run_all(
    function: Callable[..., Any],
    items: Sequence[tuple[Any, ...]],
    executor: Any = None,
    jobs: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[Any]:
    """`function(*item)` for every item, results in order. executor: None (processes when
    there is more than one item and more than one job, else serial), "serial", "processes",
    "dask-local", a dask scheduler address or a distributed.Client; `jobs` caps local workers
    (default: the CPUs). `function` must be importable by name (a module-level function) for
    every executor but "serial". `progress` is called with the number of items done."""
    check_executor(executor)
    if not items:
        return []
    workers = max(1, min(len(items), jobs or os.cpu_count() or 1))
    if executor is None:
        executor = "processes" if workers > 1 else "serial"
    if executor == "serial":
        return _serial(function, items, progress)
    if executor == "processes":
        return _processes(function, items, workers, progress)
    return _dask(function, items, executor, workers, progress)
