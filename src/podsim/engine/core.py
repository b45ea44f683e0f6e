"""Runs a program on the C++ engine: the Python side of podsim._core."""

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from podsim import _core
from podsim.errors import SpecError
from podsim.lowering.program import Kind, Program, check_program_size
from podsim.specs.clusters import Cluster

if TYPE_CHECKING:
    from podsim.engine.noise import NoiseModel

NetworkMode = Literal["analytical", "contention"]
NETWORK_MODES = ("analytical", "contention")
# Events handled per call into C++: long runs return to Python this often, so Ctrl-C works.
CHUNK_EVENTS = 1 << 20
# Ops x steps of one noise Monte Carlo, a bound on its time (its memory is one step's, whatever
# the steps): a noisy step of a 16,384-rank job takes ~0.3 us per op on 2 cores in the event
# loop (contention mode), ~0.06 us per op swept (analytical mode; docs/engine.md, "Event loop"),
# so this is at most about five minutes; it admits 100 steps of the Llama 3 405B / 16,384-H100
# step (8.4M ops each).
MAX_MONTE_CARLO_OPS = 1_000_000_000
# Replicated Monte Carlo steps (simulate_replicated_steps) run on threads, each holding one
# step's ready times: at most this many threads, and their work space at most this many bytes.
MAX_THREADS = 8
REPLICATED_MEMORY = 1 << 30
# Ops of one replicated step: 8 bytes each of ready times a thread (4 GB at the limit), where
# every rank's program takes about 150 bytes an op (MAX_PROGRAM_OPS).
MAX_REPLICATED_OPS = 500_000_000


def check_monte_carlo_size(steps: int, ops: int) -> None:
    """Refuses a noise Monte Carlo of `steps` runs of an `ops`-op program that would take too
    long, before anything runs (SpecError with the estimate and the limit)."""
    if steps * ops > MAX_MONTE_CARLO_OPS:
        raise SpecError(
            f"noise.steps = {steps:,} steps of {ops:,} ops each would simulate "
            f"{steps * ops:,.3g} ops; podsim simulates at most {MAX_MONTE_CARLO_OPS:,.3g} per "
            "Monte Carlo: use fewer noise.steps or a smaller job"
        )


def _check_steps(steps: object) -> None:
    ok = isinstance(steps, int | np.integer) and not isinstance(steps, bool) and steps >= 1
    if not ok:
        raise SpecError(f"steps = {steps!r} is not allowed: an integer >= 1")


def _check_chunk_events(chunk_events: object) -> int:
    ok = isinstance(chunk_events, int | np.integer) and not isinstance(chunk_events, bool)
    if not (ok and 1 <= chunk_events <= 2**62):
        raise SpecError(f"chunk_events = {chunk_events!r} is not allowed: an integer >= 1")
    return int(chunk_events)


@dataclass(frozen=True)
class Timeline:
    """What the engine measured: per-op start and end (seconds) and run statistics."""

    start: np.ndarray
    end: np.ndarray
    resolved_algorithm: np.ndarray  # per op: the algorithm a collective ran, -1 otherwise
    events: int
    makespan: float
    # A symmetric analytical run with copies: why some copy would not take its representative's
    # time over pod links (the run is then not exact; docs/engine.md, "Symmetric runs").
    symmetry_note: str = ""


def network_mode(network: str) -> int:
    if network not in NETWORK_MODES:
        raise SpecError(f"network = {network!r} is not known; allowed: " + ", ".join(NETWORK_MODES))
    return NETWORK_MODES.index(network)


def core_topology(cluster: Cluster) -> "_core.Topology":
    return _core.Topology(*cluster.topology())


def collective_time(
    cluster: Cluster,
    op: int,
    algorithm: int,
    ranks: np.ndarray,
    nbytes: float,
    message_bytes: float = 0.0,
    fanout: float = 1.0,
) -> tuple[int, float]:
    """(resolved algorithm, seconds) of one collective's closed form on the cluster."""
    ranks = np.asarray(ranks, dtype=np.int32)
    return _core.collective_time(
        core_topology(cluster), op, algorithm, ranks, nbytes, message_bytes, fanout
    )


def collective_protocol(
    cluster: Cluster, op: int, algorithm: int, ranks: np.ndarray, nbytes: float
) -> int:
    """The protocol (1 ll, 2 ll128, 3 simple: specs.clusters.PROTOCOLS) the collective runs."""
    ranks = np.asarray(ranks, dtype=np.int32)
    return _core.collective_protocol(core_topology(cluster), op, algorithm, ranks, nbytes)


def _columns(program: Program) -> dict[str, np.ndarray]:
    """The program's columns by field name, what the engine copies; its size checked first."""
    check_program_size(program.num_ops, "the program")
    return {name: getattr(program, name) for name in program.__dataclass_fields__}


def _engine(
    columns: dict[str, np.ndarray],
    cluster: Cluster,
    network: str,
    noise,
    symmetric: bool = False,
    copies: dict[str, np.ndarray] | None = None,
    consume: bool = False,
    record: bool = True,
) -> "_core.Engine":
    """An engine over a program's columns (_columns); `consume`: it takes each column out of
    `columns` as it copies it; `record`: its first analytical run records its order of
    completions, for restarts and replicate (a single run leaves it out)."""
    core_noise = noise.to_core(cluster) if noise is not None else _core.Noise()
    return _core.Engine(
        columns,
        core_topology(cluster),
        network_mode(network),
        core_noise,
        symmetric,
        copies,
        consume=consume,
        record=record,
    )


def _run(engine: "_core.Engine", chunk_events: int) -> None:
    while not engine.advance(chunk_events):
        pass


def simulate(
    program: Program,
    cluster: Cluster,
    network: NetworkMode = "analytical",
    chunk_events: int = CHUNK_EVENTS,
    noise: "NoiseModel | None" = None,
    iteration: int = 0,
    symmetric: bool = False,
    copies: dict[str, np.ndarray] | None = None,
) -> Timeline:
    """Run every rank's program on the cluster; raises DeadlockError if it cannot finish.
    With noise, `iteration` picks the step whose draws are used. `symmetric`: the program holds
    one representative per class of identical ranks, its collectives' groups at full size
    (docs/engine.md, "Symmetric runs"); no noise then. `copies`: what its groups and ranks stand
    for (podsim.lowering.layout.symmetric_copies), so that pod links see every copy's traffic."""
    chunk_events = _check_chunk_events(chunk_events)
    engine = _engine(_columns(program), cluster, network, noise, symmetric, copies, record=False)
    if iteration:
        engine.restart(iteration)
    return finish(engine, chunk_events)


def start_once(
    build: Callable[[], Program], cluster: Cluster, network: NetworkMode = "analytical"
) -> "_core.Engine":
    """A noise-free engine, not run yet (see finish), for a program built for it alone: only the
    engine's argument holds the program's columns, and the engine takes each one as it copies
    it, so that a large program is never held twice in full (the peak of a run of every rank)."""
    return _engine(_columns(build()), cluster, network, None, consume=True, record=False)


def finish(engine: "_core.Engine", chunk_events: int = CHUNK_EVENTS) -> Timeline:
    """Runs an engine (start_once) to the end; its timeline."""
    _run(engine, _check_chunk_events(chunk_events))
    return Timeline(
        engine.start,
        engine.end,
        engine.resolved_algorithm,
        int(engine.events_processed),
        float(engine.makespan),
        engine.symmetry_note,
    )


def simulate_steps(
    program: Program,
    cluster: Cluster,
    network: NetworkMode,
    noise: "NoiseModel",
    steps: int,
    progress: Callable[[int], None] | None = None,
    chunk_events: int = CHUNK_EVENTS,
) -> np.ndarray:
    """Monte Carlo: the makespan of `steps` runs of the program, run k with the draws of step
    k. The program is checked once; each run restarts the engine (analytical mode: every run
    after the first sweeps the first one's order of completions, the same bits as the event
    loop; docs/engine.md, "Event loop")."""
    chunk_events = _check_chunk_events(chunk_events)
    _check_steps(steps)
    check_monte_carlo_size(int(steps), program.num_ops)
    engine = _engine(_columns(program), cluster, network, noise)
    times = np.empty(steps)
    for k in range(steps):
        if k:
            engine.restart(k)
        _run(engine, chunk_events)
        times[k] = engine.makespan
        if progress is not None:
            progress(k + 1)
    return times


def replicated_engine(
    program: Program, copies: dict[str, np.ndarray], cluster: Cluster, noise: "NoiseModel"
) -> "_core.Engine":
    """An engine that runs every rank of the program a symmetric one stands for, with noise
    (docs/engine.md, "Replicated runs"): the symmetric program (with rank and group copies, as
    podsim.lowering.layout.symmetric_copies gives them) is run once without noise in the
    analytical network, and its order of completions swept for every copy at once
    (replicated_makespans, replicated_times). The every-rank program it stands for lists each
    representative's copies (representatives in rank order), each copy's ops in its
    representative's order, as podsim.lowering.layout.build_program lays a step out: its runs
    give that program's results bit for bit, each op's draws keyed by its number there."""
    engine = _engine(_columns(program), cluster, "analytical", None, True, copies)
    _run(engine, CHUNK_EVENTS)
    engine.replicate(noise.to_core(cluster))
    return engine


_thread_limit: int | None = None  # limit_threads


def limit_threads(threads: int | None) -> None:
    """At most `threads` threads for this process's replicated steps (None: no limit beyond
    replicated_threads'): a worker of a pool of processes takes one, the pool using the CPUs."""
    global _thread_limit
    _thread_limit = threads


def replicated_ops(program: Program, copies: dict[str, np.ndarray]) -> int:
    """Ops of the every-rank program a symmetric one stands for: each op, once per copy of its
    rank."""
    if "rank_offsets" not in copies:
        raise SpecError("copies.rank_offsets is missing: a replicated run needs rank copies")
    counts = np.diff(np.asarray(copies["rank_offsets"], dtype=np.int64))
    # Ranks outside the table are the engine's to refuse (by name); here they count as clipped.
    return int(np.take(counts, program.rank, mode="clip").sum()) if len(counts) else 0


def replicated_threads(steps: int, ops: int) -> int:
    """Threads for `steps` replicated steps of an `ops`-op program: the CPUs this process may
    use, at most MAX_THREADS (and limit_threads'), and no more than keep the steps' work space
    (8 bytes an op each) within REPLICATED_MEMORY."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    most = min(MAX_THREADS, _thread_limit or MAX_THREADS)
    return max(1, min(cpus, most, steps, REPLICATED_MEMORY // max(8 * ops, 1)))


def simulate_replicated_steps(
    program: Program,
    copies: dict[str, np.ndarray],
    cluster: Cluster,
    noise: "NoiseModel",
    steps: int,
    progress: Callable[[int], None] | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """Monte Carlo over every rank, from a symmetric program (replicated_engine): the makespan
    of `steps` runs, run k with the draws of step k, the same bits as simulate_steps on the
    every-rank program. Steps run `threads` at a time (default: replicated_threads), each batch
    a call into C++, so that Ctrl-C and `progress` are seen between batches."""
    _check_steps(steps)
    ops = replicated_ops(program, copies)
    check_monte_carlo_size(int(steps), ops)
    check_program_size(ops, "every rank of the step", MAX_REPLICATED_OPS, 8)
    engine = replicated_engine(program, copies, cluster, noise)
    if threads is None:
        threads = replicated_threads(int(steps), ops)
    times = np.empty(steps)
    for first in range(0, steps, threads):
        count = min(threads, steps - first)
        times[first : first + count] = engine.replicated_makespans(first, count, threads)
        if progress is not None:
            progress(first + count)
    return times


def shared_links(program: Program, timeline: Timeline, domain_size: int) -> str | None:
    """In a symmetric contention run: the first place where one rank's communications overlap
    in time on the same class of links (scale-up, scale-out), or None. Without such overlaps,
    and without traffic across pods, every link of the full run carries the flows of one
    collective or transfer at a time, as in the symmetric run, so the two agree (the runs are
    identical up to the first overlap, so checking the symmetric run's own timeline suffices)."""
    kind = program.kind
    comm = np.flatnonzero((kind == Kind.COLLECTIVE) | (kind == Kind.SEND) | (kind == Kind.RECV))
    if len(comm) == 0:
        return None
    domains = program.group_ranks // domain_size
    offsets = program.group_offsets
    if len(domains):
        low = np.minimum.reduceat(domains, offsets[:-1])
        high = np.maximum.reduceat(domains, offsets[:-1])
        size = np.diff(offsets)
        # 0: no traffic (a group of one), 1: scale-up only, 3: scale-up and scale-out
        group_class = np.where(size < 2, 0, np.where(low == high, 1, 3))
    rank, peer = program.rank[comm], program.peer[comm]
    collective = kind[comm] == Kind.COLLECTIVE
    same = rank // domain_size == np.where(collective, rank, peer) // domain_size
    classes = np.where(collective, 0, np.where(same, 1, 2))
    if collective.any():
        classes[collective] = group_class[peer[collective]]
    start, end = timeline.start[comm], timeline.end[comm]
    order = np.lexsort((start, rank))
    latest: dict[tuple[int, int], float] = {}
    for i in order.tolist():
        for bit in (1, 2):
            if not classes[i] & bit:
                continue
            key = (int(rank[i]), bit)
            if start[i] < latest.get(key, -np.inf):
                return (
                    f"op {int(comm[i])} on rank {int(rank[i])} overlaps another communication "
                    f"on its {'scale-up' if bit == 1 else 'scale-out'} links"
                )
            latest[key] = max(latest.get(key, -np.inf), float(end[i]))
    return None
