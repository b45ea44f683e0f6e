"""Timelines as Chrome / Perfetto traces (the JSON "Trace Event Format").

One process per rank (pid = rank), one thread per stream (tid = stream), one complete event
("ph": "X") per op with its start and duration in microseconds, to the nanosecond. Open the
file in https://ui.perfetto.dev or chrome://tracing. Traces of a million ops are built column
by column with numpy; only communication ops get an `args` dict of their own.
"""

import gzip
import json
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


def chrome_trace(
    program: Program,
    timeline: Timeline,
    names: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The trace of one run as a JSON-ready dict: {"traceEvents", "displayTimeUnit",
    "otherData"}. names: one per op (default: the kind, the collective, "send to R", ...);
    metadata: anything JSON-serialisable, shown by the viewers as the trace's metadata."""
    _check_lengths(program, timeline, names)
    ops = _shown_ops(program, timeline)
    events = _metadata_events(program) + _op_events(program, timeline, names, ops)
    return {"traceEvents": events, "displayTimeUnit": "ms", "otherData": dict(metadata or {})}


def write_chrome_trace(
    path: str | PathLike[str],
    program: Program,
    timeline: Timeline,
    names: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Write chrome_trace(...) as compact JSON; a path ending in .gz is gzipped (Perfetto and
    chrome://tracing open those directly, and traces compress about tenfold)."""
    trace = chrome_trace(program, timeline, names, metadata)
    # json.dumps, not json.dump: only the one-shot encoder runs in C, and it is ~5x faster.
    data = json.dumps(trace, separators=(",", ":")).encode("utf-8")
    if Path(path).suffix == ".gz":
        data = gzip.compress(data, compresslevel=6)
    Path(path).write_bytes(data)


def _check_lengths(program: Program, timeline: Timeline, names: list[str] | None) -> None:
    ops = program.num_ops
    if len(timeline.start) != ops or len(timeline.end) != ops:
        raise SpecError(f"timeline: {len(timeline.start)} ops, program: {ops}; not the same run")
    if names is not None and len(names) != ops:
        raise SpecError(f"names: {len(names)} names for {ops} ops; give one name per op")


def _shown_ops(program: Program, timeline: Timeline) -> np.ndarray:
    # A zero-length WAIT only joins streams: drawn, it would be clutter with no time in it.
    hidden = (program.kind == Kind.WAIT) & (timeline.end == timeline.start)
    return np.flatnonzero(~hidden)


def _metadata_events(program: Program) -> list[dict[str, Any]]:
    ranks = np.unique(program.rank).tolist()
    lanes = np.unique(program.rank.astype(np.int64) * MAX_STREAMS + program.stream).tolist()
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
