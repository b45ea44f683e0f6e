"""Lowering: model x plan x cluster -> every rank's program for one training step.

Ranks follow Megatron-LM's order (tp fastest, then cp, dp, pp), so a tensor-parallel group
sits inside a scale-up domain whenever tp divides the domain size. All ranks of a pipeline
stage run the same sequence of ops, so each stage is written once as a template and copied to
its ranks with numpy: no Python loop runs per rank.

Streams: 0 compute (tensor-, expert- and context-parallel collectives and pipeline sends run
here too: they sit on the critical path, as in Megatron without overlap), 1 data-parallel
gradients and ZeRO gathers, 2 sends and 3 expert all-to-alls when a schedule overlaps them
(DualPipe), 4 to 7 receives (posted early, so a send waits only for its sender's compute).
"""

from dataclasses import dataclass, field

import numpy as np

from podsim.errors import SpecError
from podsim.lowering.program import (
    OP_COLUMNS,
    Algorithm,
    Collective,
    Kind,
    Program,
    check_program_size,
)

COMPUTE, DP_STREAM, SEND_STREAM, EP_STREAM = 0, 1, 2, 3
# Receives: one stream per (pass kind, direction the data comes from), posted in order of use.
RECV_STREAMS = {("F", -1): 4, ("F", +1): 5, ("B", +1): 6, ("B", -1): 7}
ROLES = ("tp", "dp", "cp", "ep", "edp", "etp")


@dataclass(frozen=True)
class Layout:
    tp: int
    cp: int
    dp: int
    pp: int

    @property
    def stage_size(self) -> int:
        return self.tp * self.cp * self.dp

    @property
    def devices(self) -> int:
        return self.stage_size * self.pp

    def coordinates(self) -> dict[str, np.ndarray]:
        """Per rank: its tp, cp, dp and pp index."""
        rank = np.arange(self.devices, dtype=np.int64)
        return {
            "tp": rank % self.tp,
            "cp": rank // self.tp % self.cp,
            "dp": rank // (self.tp * self.cp) % self.dp,
            "pp": rank // self.stage_size,
        }


@dataclass
class TemplateOp:
    """One op of a stage's template; `deps` index earlier ops of the same template."""

    name: str
    kind: Kind
    stream: int
    duration: float = 0.0
    nbytes: float = 0.0
    role: str = ""  # collective: the group (tp, dp, cp, ep)
    collective: Collective | None = None
    repeat: int = 1
    message_bytes: float = 0.0  # all-to-all: one message (a token's vector); 0: one per peer
    fanout: float = 1.0  # all-to-all: ranks of a domain one per-domain copy reaches
    algorithm: str = "auto"  # collective: the algorithm, by label
    stage_offset: int = 0  # send/recv: the peer's stage minus this stage
    tag: int = -1  # send/recv: the logical channel (activations or gradients of one chunk)
    deps: list[int] = field(default_factory=list)


class Template:
    """A stage's ops in order; add() returns the op's index for later deps."""

    def __init__(self) -> None:
        self.ops: list[TemplateOp] = []

    def add(self, op: TemplateOp) -> int:
        if any(d < 0 for d in op.deps):
            raise ValueError(f"template op {op.name} has a negative dep")
        self.ops.append(op)
        return len(self.ops) - 1


def group_tables(layout: Layout, ep: int, etp: int = 0) -> dict[str, tuple[np.ndarray, ...]]:
    """Per role: each rank's group key (0, 1, ...), the size of each group, and all ranks
    sorted by group (so each group's members are in rank order).

    Experts fold over a stage's tp x cp x dp ranks as Megatron-Core's MoE parallel folding
    does: a rank's place r in its stage splits into (etp fastest, then ep, then expert dp);
    etp = 0 means tp, which keeps expert groups inside tensor-parallel ones' complement."""
    c = layout.coordinates()
    etp = etp or layout.tp
    r = np.arange(layout.devices, dtype=np.int64) % layout.stage_size
    e_tp, e_p, e_dp = r % etp, r // etp % ep, r // (etp * ep)
    edp = layout.stage_size // (etp * ep)
    keys = {
        "tp": (c["pp"] * layout.dp + c["dp"]) * layout.cp + c["cp"],
        "dp": (c["pp"] * layout.cp + c["cp"]) * layout.tp + c["tp"],
        "cp": (c["pp"] * layout.dp + c["dp"]) * layout.tp + c["tp"],
        "ep": (c["pp"] * edp + e_dp) * etp + e_tp,
        "edp": (c["pp"] * ep + e_p) * etp + e_tp,
        "etp": (c["pp"] * edp + e_dp) * ep + e_p,
    }
    return {
        role: (key, np.bincount(key), np.argsort(key, kind="stable")) for role, key in keys.items()
    }


def build_program(templates: list[Template], layout: Layout, ep: int, etp: int = 0) -> Program:
    """Copies each stage's template to its ranks and wires groups and peers."""
    ops = sum(len(t.ops) for t in templates) * layout.stage_size
    check_program_size(ops, f"a training step on {layout.devices:,} devices")
    tables = group_tables(layout, ep, etp)
    group_base, sizes, members, total = {}, [], [], 0
    for role in ROLES:
        _, counts, order = tables[role]
        group_base[role] = total
        total += len(counts)
        sizes.append(counts)
        members.append(order)
    total_ops = sum(len(t.ops) for t in templates) * layout.stage_size
    cols = {name: np.empty(total_ops, dtype) for name, dtype in OP_COLUMNS.items()}
    dep_counts, dep_values = [], []
    base = 0
    for stage, template in enumerate(templates):
        ranks = np.arange(stage * layout.stage_size, (stage + 1) * layout.stage_size)
        length = len(template.ops)
        block = {name: column[base : base + length * len(ranks)] for name, column in cols.items()}
        _fill_stage(block, template, ranks, stage, layout, tables, group_base)
        counts = np.array([len(op.deps) for op in template.ops], np.int64)
        flat = np.array([d for op in template.ops for d in op.deps], np.int64)
        starts = base + np.arange(len(ranks), dtype=np.int64) * length
        dep_counts.append(_copies(counts, len(ranks)))
        dep_values.append((starts[:, None] + flat[None, :]).ravel())
        base += length * len(ranks)
    counts = np.concatenate(dep_counts)
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return Program(
        **cols,
        dep_offsets=offsets,
        dep_ops=np.concatenate(dep_values, dtype=np.int32),
        group_offsets=np.concatenate([[0], np.cumsum(np.concatenate(sizes))]).astype(np.int64),
        group_ranks=np.concatenate(members).astype(np.int32),
    )


def _fill_stage(
    block: dict[str, np.ndarray],
    template: Template,
    ranks: np.ndarray,
    stage: int,
    layout: Layout,
    tables,
    group_base,
) -> None:
    """Writes a stage's ops, [rank, template op] in order, into the program's columns."""
    ops = template.ops
    n_ranks, length = len(ranks), len(ops)
    if length == 0:
        raise SpecError(f"pipeline stage {stage} has no work: give it at least one layer")
    per_op = {
        "stream": [op.stream for op in ops],
        "kind": [int(op.kind) for op in ops],
        "duration": [op.duration for op in ops],
        "bytes": [op.nbytes for op in ops],
        "collective": [int(op.collective) if op.collective is not None else op.tag for op in ops],
        "algorithm": [
            int(Algorithm.parse(op.algorithm)) if op.collective is not None else -1 for op in ops
        ],
        "repeat": [op.repeat for op in ops],
        "message_bytes": [op.message_bytes for op in ops],
        "fanout": [op.fanout for op in ops],
    }
    for name, values in per_op.items():
        block[name].reshape(n_ranks, length)[:] = np.asarray(values, OP_COLUMNS[name])
    block["rank"].reshape(n_ranks, length)[:] = ranks[:, None]
    # Peer per (rank, op): a group index for collectives, a rank for sends and receives.
    candidates = [np.full(n_ranks, -1, np.int64)]
    candidates += [group_base[role] + tables[role][0][ranks] for role in ROLES]
    shift = {}  # stage offset -> the peers' ranks
    for op in ops:
        if op.kind in (Kind.SEND, Kind.RECV) and op.stage_offset not in shift:
            target = (stage + op.stage_offset) % layout.pp
            shift[op.stage_offset] = len(candidates)
            candidates.append(ranks + (target - stage) * layout.stage_size)
    choice = np.array(
        [
            ROLES.index(op.role) + 1
            if op.role
            else shift.get(op.stage_offset, 0)
            if op.kind in (Kind.SEND, Kind.RECV)
            else 0
            for op in ops
        ]
    )
    table = np.stack(candidates).astype(np.int32)  # [candidate, rank]
    block["peer"].reshape(n_ranks, length)[:] = table[choice].T  # [rank, op]


def _copies(row: np.ndarray, times: int) -> np.ndarray:
    """`times` copies of a template column, one after the other (np.tile, in one pass)."""
    return np.broadcast_to(row, (times, len(row))).reshape(-1)
