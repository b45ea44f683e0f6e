"""Timelines as Chrome / Perfetto traces (the JSON "Trace Event Format").

One process per rank (pid = rank), one thread per stream (tid = stream), one complete event
("ph": "X") per op with its start and duration in microseconds, to the nanosecond. Open the
file in https://ui.perfetto.dev or chrome://tracing. Traces of a million ops are built column
by column with numpy; only communication ops get an `args` dict of their own.
"""

import contextlib
import gzip
import json
import os
import stat
import tempfile
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from podsim.engine.core import Timeline
from podsim.errors import SpecError
from podsim.lowering.program import MAX_STREAMS, Algorithm, Collective, Kind, Program

STREAM_NAMES = {0: "compute", 1: "communication"}
_KIND_LABELS = [kind.name.lower() for kind in Kind]
# Event names without a `names` list: one per kind, then one per collective (looked up at
# len(Kind) + collective code). Send and receive names carry the peer and are built apart.
_NAME_TABLE = np.array(_KIND_LABELS + [c.label for c in Collective], dtype=object)
_ALGORITHM_LABELS = {a.value: a.label for a in Algorithm}
_COMM_KINDS = (Kind.COLLECTIVE, Kind.SEND, Kind.RECV)
# Events a trace may hold: about 100 bytes of JSON and 1 KB of Python objects each while it is
# built, so 2M events are a ~200 MB file and a few GB of memory; viewers struggle beyond.
MAX_TRACE_EVENTS = 2_000_000


def chrome_trace(
    program: Program,
    timeline: Timeline,
    names: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    ranks: range | None = None,
) -> dict[str, Any]:
    """The trace of one run as a JSON-ready dict: {"traceEvents", "displayTimeUnit",
    "otherData"}. names: one per op (default: the kind, the collective, "send to R", ...);
    metadata: anything JSON-serialisable, shown by the viewers as the trace's metadata;
    ranks: only these ranks' ops (default: all). More than MAX_TRACE_EVENTS ops is a SpecError
    (trace a range of ranks)."""
    _check_lengths(program, timeline, names)
    ops = _shown_ops(program, timeline, ranks)
    check_trace_events(len(ops))
    lanes = None if ranks is None else ops  # the ranks' and streams' names
    events = _metadata_events(program, lanes) + _op_events(program, timeline, names, ops)
    return {"traceEvents": events, "displayTimeUnit": "ms", "otherData": dict(metadata or {})}


def check_trace_events(events: int) -> None:
    """Refuses a trace of more than MAX_TRACE_EVENTS ops, with its estimated size."""
    if events > MAX_TRACE_EVENTS:
        raise SpecError(
            f"the trace would hold {events:,} ops (about {events * 100 / 1e9:,.1f} GB of JSON); "
            f"podsim writes at most {MAX_TRACE_EVENTS:,}: trace a range of ranks "
            "(--trace-ranks A:B)"
        )


def check_trace_path(path: str | PathLike[str]) -> Path:
    """The path a trace will be written to, checked before any work: not empty, not a
    directory, a symbolic link or a special file, in an existing directory we may write to.
    A SpecError says what is wrong."""
    text = os.fspath(path)
    if not text:
        raise SpecError("--trace = '' is not allowed: a file path ending in .json or .json.gz")
    target = Path(text)
    where = f"--trace = {text!r}"
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        info = None
    except OSError as error:
        raise SpecError(f"{where}: {error.strerror or error}") from None
    if info is not None:
        if stat.S_ISLNK(info.st_mode):
            raise SpecError(f"{where} is a symbolic link; give the file itself")
        if stat.S_ISDIR(info.st_mode):
            raise SpecError(f"{where} is a directory; give a file path")
        if not stat.S_ISREG(info.st_mode):
            raise SpecError(f"{where} is not a regular file")
    parent = target.parent
    if not parent.is_dir():
        raise SpecError(f"{where}: the directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SpecError(f"{where}: the directory {str(parent)!r} is not writable")
    return target


def write_chrome_trace(
    path: str | PathLike[str],
    program: Program,
    timeline: Timeline,
    names: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    ranks: range | None = None,
) -> None:
    """Write chrome_trace(...) as compact JSON; a path ending in .gz (any case) is gzipped
    (Perfetto and chrome://tracing open those directly, and traces compress about tenfold).
    The file is written whole or not at all: to a temporary file in the same directory, then
    renamed over `path` (an error, such as a full disk, leaves an existing file as it was)."""
    target = check_trace_path(path)
    trace = chrome_trace(program, timeline, names, metadata, ranks)
    # json.dumps, not json.dump: only the one-shot encoder runs in C, and it is ~5x faster.
    data = json.dumps(trace, separators=(",", ":"), allow_nan=False).encode("utf-8")
    del trace
    if target.suffix.lower() == ".gz":
        data = gzip.compress(data, compresslevel=6)
    _write_atomically(target, data)


def _write_atomically(target: Path, data: bytes) -> None:
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, target)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            reason = error.strerror or str(error)
            raise SpecError(f"could not write the trace to {str(target)!r}: {reason}") from None
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _check_lengths(program: Program, timeline: Timeline, names: list[str] | None) -> None:
    ops = program.num_ops
    if len(timeline.start) != ops or len(timeline.end) != ops:
        raise SpecError(f"timeline: {len(timeline.start)} ops, program: {ops}; not the same run")
    if names is not None and len(names) != ops:
        raise SpecError(f"names: {len(names)} names for {ops} ops; give one name per op")


def _shown_ops(program: Program, timeline: Timeline, ranks: range | None = None) -> np.ndarray:
    # A zero-length WAIT only joins streams: drawn, it would be clutter with no time in it.
    hidden = (program.kind == Kind.WAIT) & (timeline.end == timeline.start)
    if ranks is not None:
        hidden |= (program.rank < ranks.start) | (program.rank >= ranks.stop)
    return np.flatnonzero(~hidden)


def _metadata_events(program: Program, ops: np.ndarray | None = None) -> list[dict[str, Any]]:
    rank = program.rank if ops is None else program.rank[ops]
    stream = program.stream if ops is None else program.stream[ops]
    ranks = np.unique(rank).tolist()
    lanes = np.unique(rank.astype(np.int64) * MAX_STREAMS + stream).tolist()
    processes = [
        event
        for rank in ranks
        for event in (
            _meta("process_name", rank, 0, {"name": f"rank {rank}"}),
            # Without a sort index viewers may order "rank 10" before "rank 2".
            _meta("process_sort_index", rank, 0, {"sort_index": rank}),
        )
    ]
    threads = [_thread_name(*divmod(lane, MAX_STREAMS)) for lane in lanes]
    return processes + threads


def _thread_name(rank: int, stream: int) -> dict[str, Any]:
    return _meta("thread_name", rank, stream, {"name": stream_name(stream)})


def _meta(name: str, pid: int, tid: int, args: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "ph": "M", "pid": pid, "tid": tid, "args": args}


def stream_name(stream: int) -> str:
    """The thread name of a stream: by convention 0 is compute and 1 communication."""
    return STREAM_NAMES.get(stream, f"stream {stream}")


def _op_events(
    program: Program, timeline: Timeline, names: list[str] | None, ops: np.ndarray
) -> list[dict[str, Any]]:
    # Microseconds rounded to the nanosecond: what the viewers resolve, and short numbers make
    # the JSON about half the size and three times faster to write. Rounding start and end
    # (not the duration) keeps back-to-back ops exactly adjacent.
    start = np.round(timeline.start[ops] * 1e6, 3)
    end = np.round(timeline.end[ops] * 1e6, 3)
    kind = program.kind[ops]
    labels = _labels(program, ops, kind) if names is None else [names[i] for i in ops.tolist()]
    columns = zip(
        labels,
        np.array(_KIND_LABELS, dtype=object)[kind].tolist(),
        program.rank[ops].tolist(),
        program.stream[ops].tolist(),
        start.tolist(),
        np.round(end - start, 3).tolist(),
        strict=True,
    )
    events = [
        {"name": n, "cat": c, "ph": "X", "pid": p, "tid": t, "ts": s, "dur": d}
        for n, c, p, t, s, d in columns
    ]
    _add_comm_args(events, program, timeline, ops, kind)
    return events


def _labels(program: Program, ops: np.ndarray, kind: np.ndarray) -> list[str]:
    is_collective = kind == Kind.COLLECTIVE
    code = np.where(is_collective, len(Kind) + program.collective[ops], kind)
    labels = _NAME_TABLE[code].tolist()
    peers = program.peer[ops]
    for position in np.flatnonzero(kind == Kind.SEND).tolist():
        labels[position] = f"send to {peers[position]}"
    for position in np.flatnonzero(kind == Kind.RECV).tolist():
        labels[position] = f"recv from {peers[position]}"
    return labels


def _add_comm_args(
    events: list[dict[str, Any]],
    program: Program,
    timeline: Timeline,
    ops: np.ndarray,
    kind: np.ndarray,
) -> None:
    positions = np.flatnonzero(np.isin(kind, _COMM_KINDS))
    comm = ops[positions]
    group_sizes = np.diff(program.group_offsets).tolist()
    columns = zip(
        positions.tolist(),
        comm.tolist(),
        (kind[positions] == Kind.COLLECTIVE).tolist(),
        program.bytes[comm].tolist(),
        program.peer[comm].tolist(),
        timeline.resolved_algorithm[comm].tolist(),
        program.repeat[comm].tolist(),
        strict=True,
    )
    for position, op, collective, nbytes, peer, algorithm, repeat in columns:
        if collective:
            args = {
                "op": op,
                "bytes": nbytes,
                "algorithm": _ALGORITHM_LABELS.get(algorithm, str(algorithm)),
                "group": peer,
                "group_size": group_sizes[peer],
                "repeat": repeat,
            }
        else:
            args = {"op": op, "bytes": nbytes, "peer": peer}
        events[position]["args"] = args
