"""Per-rank programs as a struct of numpy arrays: the one thing that crosses into the engine.

The semantics are specified in docs/engine.md; `ProgramBuilder` is the convenient way to write one.
"""

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from podsim.errors import SpecError

MAX_STREAMS = 64
MAX_REPEAT = 2**20
# The engine holds about 150 bytes per op: beyond this a run would not fit in memory.
MAX_PROGRAM_OPS = 50_000_000


def check_program_size(
    ops: int, what: str, limit: int = MAX_PROGRAM_OPS, bytes_per_op: int = 150
) -> None:
    """Refuses programs too large to simulate, before anything is allocated for them."""
    if ops > limit:
        raise SpecError(
            f"{what} needs {ops:,} ops; podsim simulates at most {limit:,} "
            f"(about {bytes_per_op} bytes each): use fewer devices or microbatches"
        )


class Kind(IntEnum):
    COMPUTE = 0
    COLLECTIVE = 1
    SEND = 2
    RECV = 3
    WAIT = 4


class _Named(IntEnum):
    """An enum written in files and on the command line as a lower-case, dashed label."""

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")

    @classmethod
    def parse(cls, name):
        if isinstance(name, cls):
            return name
        if isinstance(name, int) and not isinstance(name, bool) and name in cls._value2member_map_:
            return cls(name)
        for member in cls:
            if member.label == str(name).lower().replace("_", "-"):
                return member
        allowed = ", ".join(m.label for m in cls)
        raise SpecError(f"{cls._field} = {name!r} is not known; allowed: {allowed}")


class Collective(_Named):
    ALL_REDUCE = 0
    ALL_GATHER = 1
    REDUCE_SCATTER = 2
    ALL_TO_ALL = 3
    BROADCAST = 4
    REDUCE = 5


class Algorithm(_Named):
    AUTO = 0
    RING = 1
    TREE = 2
    HALVING_DOUBLING = 3
    HIERARCHICAL = 4
    DIRECT = 5
    LOW_LATENCY = 6
    NODE_FORWARDED = 7
    MESH = 8  # full mesh: one step over every pair link (HCCL's mesh algorithms)
    TORUS = 9  # torus: dimension-ordered bidirectional rings (TPU)
    NVLS = 10  # all-reduce reduced in the scale-up switch (NVLink SHARP)
    NVLS_TREE = 11  # all-reduce: nvls in each domain, a tree across domains (NCCL's NVLSTree)
    NCCL_TREE = 12  # all-reduce: a chain in each domain, a tree across domains (NCCL's Tree)


Collective._field = "op"
Algorithm._field = "algorithm"


@dataclass(frozen=True)
class Program:
    """Ops of all ranks (struct of arrays) plus the groups their collectives use."""

    rank: np.ndarray  # int32
    stream: np.ndarray  # int32
    kind: np.ndarray  # int8
    duration: np.ndarray  # float64, seconds
    bytes: np.ndarray  # float64
    peer: np.ndarray  # int32: group (collective), peer rank (send/recv), -1
    collective: np.ndarray  # int8
    algorithm: np.ndarray  # int8
    repeat: np.ndarray  # int32: a collective stands for this many back-to-back instances
    dep_offsets: np.ndarray  # int64, len ops + 1
    dep_ops: np.ndarray  # int32
    group_offsets: np.ndarray  # int64, len groups + 1
    group_ranks: np.ndarray  # int32
    # Optional all-to-all shape (docs/engine.md); None: every op takes the default.
    message_bytes: np.ndarray | None = None  # float64: bytes of one message; 0: one per peer
    fanout: np.ndarray | None = None  # float64 >= 1: ranks of a domain one per-domain copy reaches

    @property
    def num_ops(self) -> int:
        return len(self.rank)

    @property
    def num_groups(self) -> int:
        return len(self.group_offsets) - 1

    def deps(self, op: int) -> np.ndarray:
        return self.dep_ops[self.dep_offsets[op] : self.dep_offsets[op + 1]]

    def group(self, index: int) -> np.ndarray:
        return self.group_ranks[self.group_offsets[index] : self.group_offsets[index + 1]]


class ProgramBuilder:
    """Appends ops one at a time and returns their indices, for use as deps of later ops."""

    def __init__(self) -> None:
        self._columns: dict[str, list] = {name: [] for name in OP_COLUMNS}
        self._deps: list[list[int]] = []
        self._groups: list[tuple[int, ...]] = []
        self._group_index: dict[tuple[int, ...], int] = {}

    def group(self, ranks) -> int:
        """The index of the group with these members (in this order), added if new."""
        key = tuple(_integer("group rank", r) for r in ranks)
        if key not in self._group_index:
            self._group_index[key] = len(self._groups)
            self._groups.append(key)
        return self._group_index[key]

    def compute(self, rank: int, duration: float, stream: int = 0, deps=()) -> int:
        return self._add(rank, stream, Kind.COMPUTE, duration, 0.0, -1, -1, -1, 1, deps)

    def wait(self, rank: int, stream: int = 0, deps=()) -> int:
        return self._add(rank, stream, Kind.WAIT, 0.0, 0.0, -1, -1, -1, 1, deps)

    def collective(
        self,
        rank: int,
        op,
        group: int,
        nbytes: float,
        algorithm="auto",
        stream: int = 1,
        deps=(),
        repeat: int = 1,
        message_bytes: float = 0.0,
        fanout: float = 1.0,
    ) -> int:
        """`repeat` back-to-back instances of one collective, as a single op. An all-to-all
        may give its shape: `message_bytes` (one message, e.g. a token; 0: one per peer) and
        `fanout` (ranks of a domain that one per-domain copy reaches, for node-forwarding)."""
        code, algo = Collective.parse(op), Algorithm.parse(algorithm)
        return self._add(
            rank,
            stream,
            Kind.COLLECTIVE,
            0.0,
            nbytes,
            group,
            code,
            algo,
            repeat,
            deps,
            message_bytes,
            fanout,
        )

    def send(
        self, rank: int, dst: int, nbytes: float, stream: int = 1, deps=(), tag: int = -1
    ) -> int:
        """The k-th send to dst with a tag matches dst's k-th recv from rank with that tag."""
        return self._add(rank, stream, Kind.SEND, 0.0, nbytes, dst, tag, -1, 1, deps)

    def recv(
        self, rank: int, src: int, nbytes: float, stream: int = 1, deps=(), tag: int = -1
    ) -> int:
        return self._add(rank, stream, Kind.RECV, 0.0, nbytes, src, tag, -1, 1, deps)

    def _add(
        self,
        rank,
        stream,
        kind,
        duration,
        nbytes,
        peer,
        collective,
        algorithm,
        repeat,
        deps,
        message_bytes=0.0,
        fanout=1.0,
    ):
        # Integer columns must get integers: numpy would truncate 1.9 to rank 1 silently.
        rank, stream = _integer("rank", rank), _integer("stream", stream)
        peer = _integer("peer" if kind in (Kind.SEND, Kind.RECV) else "group", peer)
        collective, repeat = _integer("tag", collective), _integer("repeat", repeat)
        values = (
            rank,
            stream,
            kind,
            duration,
            nbytes,
            peer,
            collective,
            algorithm,
            repeat,
            message_bytes,
            fanout,
        )
        for name, value in zip(OP_COLUMNS, values, strict=True):
            self._columns[name].append(value)
        self._deps.append([_integer("dep", d) for d in deps])
        return len(self._deps) - 1

    def build(self) -> Program:
        cols = {
            name: np.asarray(self._columns[name], dtype=dtype) for name, dtype in OP_COLUMNS.items()
        }
        return Program(
            **cols,
            dep_offsets=_offsets(self._deps),
            dep_ops=np.fromiter((d for ds in self._deps for d in ds), dtype=np.int32),
            group_offsets=_offsets(self._groups),
            group_ranks=np.fromiter((r for g in self._groups for r in g), dtype=np.int32),
        )


OP_COLUMNS = {
    "rank": np.int32,
    "stream": np.int32,
    "kind": np.int8,
    "duration": np.float64,
    "bytes": np.float64,
    "peer": np.int32,
    "collective": np.int8,
    "algorithm": np.int8,
    "repeat": np.int32,
    "message_bytes": np.float64,
    "fanout": np.float64,
}


def _integer(name: str, value) -> int:
    """`value` as an int if it is one (a Python or numpy integer, not a bool); else SpecError."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_):
        return int(value)
    raise SpecError(f"{name} = {value!r} is not allowed: an integer")


def _offsets(rows) -> np.ndarray:
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=offsets[1:])
    return offsets
