"""One collective lowered: every rank runs it on the group of all ranks."""

import numpy as np

from podsim.errors import SpecError
from podsim.lowering.program import (
    MAX_PROGRAM_OPS,
    Algorithm,
    Collective,
    Kind,
    Program,
    check_program_size,
)

SEND_RECV = "send-recv"
# A collective on N ranks holds about 250 bytes per rank (its ops, the group, the topology's
# links and the timeline): 16M ranks are ~4 GB and ~10 s.
MAX_COLLECTIVE_OPS = 16_000_000
OPS = (*(c.label for c in Collective), SEND_RECV)


def _check(op: str, size: float) -> None:
    if op not in OPS:
        raise SpecError(f"op = {op!r} is not known; allowed: {', '.join(OPS)}")
    ok = isinstance(size, int | float | np.integer | np.floating) and not isinstance(size, bool)
    if not (ok and np.isfinite(size) and size >= 1):
        raise SpecError(f"size = {size!r} bytes is not allowed: a finite number >= 1")


def collective_program(op: str, devices: int, size: float, algorithm: str = "auto") -> Program:
    """Every rank runs one collective on the group of all ranks (send-recv: a ring of pairs)."""
    _check(op, size)
    n = devices
    if not (isinstance(n, int | np.integer) and not isinstance(n, bool) and n >= 1):
        raise SpecError(f"devices = {n!r} is not allowed: an integer >= 1")
    ops = 2 * n if op == SEND_RECV else n
    check_program_size(ops, f"{op} on {n:,} devices", min(MAX_COLLECTIVE_OPS, MAX_PROGRAM_OPS))
    ranks = np.arange(n, dtype=np.int32)
    if op == SEND_RECV:
        if n < 2:
            raise SpecError(f"devices = {n} is not allowed for send-recv: at least 2")
        return _columns(
            rank=np.concatenate([ranks, ranks]),
            kind=np.repeat(np.array([Kind.SEND, Kind.RECV], dtype=np.int8), n),
            peer=np.concatenate([(ranks + 1) % n, (ranks - 1) % n]).astype(np.int32),
            streams=np.repeat(np.array([1, 2], dtype=np.int32), n),
            size=size,
            collective=-1,
            algorithm=-1,
            group_ranks=np.empty(0, np.int32),
        )
    return _columns(
        rank=ranks,
        kind=np.full(n, Kind.COLLECTIVE, np.int8),
        peer=np.zeros(n, np.int32),
        streams=np.ones(n, np.int32),
        size=size,
        collective=Collective.parse(op),
        algorithm=Algorithm.parse(algorithm),
        group_ranks=ranks,
    )


def _columns(rank, kind, peer, streams, size, collective, algorithm, group_ranks) -> Program:
    count = len(rank)
    groups = [0, len(group_ranks)] if len(group_ranks) else [0]
    return Program(
        rank=rank.astype(np.int32),
        stream=streams,
        kind=kind,
        duration=np.zeros(count),
        bytes=np.full(count, float(size)),
        peer=peer,
        collective=np.full(count, collective, np.int8),
        algorithm=np.full(count, algorithm, np.int8),
        repeat=np.ones(count, np.int32),
        dep_offsets=np.zeros(count + 1, np.int64),
        dep_ops=np.empty(0, np.int32),
        group_offsets=np.array(groups, np.int64),
        group_ranks=group_ranks,
    )
