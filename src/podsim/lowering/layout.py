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


@dataclass(slots=True)
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
        """Deps are checked when the template is copied to ranks (build_program)."""
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
    stages = [
        np.arange(stage * layout.stage_size, (stage + 1) * layout.stage_size)
        for stage in range(layout.pp)
    ]
    return _assemble(templates, stages, layout, tables, group_base, sizes, members)


def build_symmetric_program(
    templates: list[Template], layout: Layout, ep: int, etp: int = 0
) -> Program:
    """Each stage's template on one representative rank (the stage's first), for a symmetric
    run (see podsim.engine.core.simulate, symmetric=True): its collectives name its groups with
    their full membership, so that they are priced as the whole group; its sends and receives go
    to the other stages' representatives. Exact only where `symmetry` finds no reason against."""
    tables = group_tables(layout, ep, etp)
    reps = np.arange(layout.pp, dtype=np.int64) * layout.stage_size
    group_base, sizes, members = {}, [], []
    for index, role in enumerate(ROLES):
        key, counts, order = tables[role]
        first = np.concatenate([[0], np.cumsum(counts)])
        group_base[role] = index * layout.pp
        for rep in reps:
            g = key[rep]
            sizes.append([counts[g]])
            members.append(order[first[g] : first[g + 1]])
    # Each representative's group of a role is that role's group number `stage`.
    stage_key = np.zeros(layout.devices, np.int64)
    stage_key[reps] = np.arange(layout.pp)
    local = {role: (stage_key, None, None) for role in ROLES}
    stages = [reps[stage : stage + 1] for stage in range(layout.pp)]
    return _assemble(templates, stages, layout, local, group_base, sizes, members)


def symmetric_copies(layout: Layout, ep: int, etp: int = 0) -> dict[str, np.ndarray]:
    """What the representatives of build_symmetric_program stand for (podsim._core.Engine's
    `copies`), so that the analytical network charges pod links the traffic of every copy: each
    representative group of a role (role-major, then stage) stands for all the groups of that role
    in its stage, its own first (a stage's groups of a role cover its ranks once, in key order);
    each representative rank for its stage's ranks, in order (copy j of a send from stage a to
    stage b runs between the j-th ranks of the two stages, as build_program wires peers)."""
    tables = group_tables(layout, ep, etp)
    size, devices = layout.stage_size, layout.devices
    group_ranks = np.concatenate([tables[role][2] for role in ROLES]).astype(np.int32)
    group_offsets = np.arange(len(ROLES) * layout.pp + 1, dtype=np.int64) * size
    counts = np.where(np.arange(devices) % size == 0, size, 0)
    rank_offsets = np.zeros(devices + 1, np.int64)
    np.cumsum(counts, out=rank_offsets[1:])
    return {
        "group_offsets": group_offsets,
        "group_ranks": group_ranks,
        "rank_offsets": rank_offsets,
        "ranks": np.arange(devices, dtype=np.int32),
    }


def symmetry(
    templates: list[Template],
    layout: Layout,
    ep: int,
    domain_size: int,
    pod_size: int,
    etp: int = 0,
) -> tuple[str | None, bool]:
    """Whether every rank of a stage runs exactly as the stage's first rank when nothing is
    random: each group a template op uses has, member for member, the same place in the
    topology (which members share a scale-up domain, which a pod) as the first rank's group of
    that role, and each send or receive crosses the same kind of path. Returns the reason
    against it (None if none) and whether any traffic crosses pods (contention mode then shares
    pod uplinks between groups, which a symmetric run does not see)."""
    crosses_pods = False
    tables = group_tables(layout, ep, etp)
    for role in ROLES:  # all roles: groups of one always agree, larger ones are used
        _, counts, order = tables[role]
        if (counts != counts[0]).any():
            return f"the {role} groups differ in size", crosses_pods
        rows = order.reshape(-1, counts[0])  # groups in key order (stage-major), members ascending
        stage = rows[:, 0] // layout.stage_size
        first = np.searchsorted(stage, stage)  # each group's stage's first group
        for unit, what in ((domain_size, "scale-up domains"), (pod_size, "pods")):
            place = rows // unit
            place -= place[:, :1]
            if not (place == place[first]).all():
                return f"the {role} groups of a stage lie differently over {what}", crosses_pods
        crosses_pods |= bool(((rows // pod_size) != (rows[:, :1] // pod_size)).any())
    for stage in range(len(templates)):
        ranks = np.arange(stage * layout.stage_size, (stage + 1) * layout.stage_size)
        for offset in (-1, 1) if layout.pp > 1 else ():  # pipeline peers are neighbours
            peers = ranks + ((stage + offset) % layout.pp - stage) * layout.stage_size
            for unit, what in ((domain_size, "scale-up domain"), (pod_size, "pod")):
                same = ranks // unit == peers // unit
                if not (same == same[0]).all():
                    return (
                        f"some ranks of stage {stage} share a {what} with their pipeline peer "
                        "and some do not",
                        crosses_pods,
                    )
            crosses_pods |= bool((ranks // pod_size != peers // pod_size).any())
    return None, crosses_pods


def _assemble(templates, stages, layout, tables, group_base, sizes, members) -> Program:
    """The program: each stage's template on the ranks `stages[stage]`, [rank, op] in order."""
    total_ops = sum(len(t.ops) * len(r) for t, r in zip(templates, stages, strict=True))
    cols = {name: np.empty(total_ops, dtype) for name, dtype in OP_COLUMNS.items()}
    dep_counts, dep_values = [], []
    base = 0
    for stage, template in enumerate(templates):
        ranks = stages[stage]
        length = len(template.ops)
        block = {name: column[base : base + length * len(ranks)] for name, column in cols.items()}
        _fill_stage(block, template, ranks, stage, layout, tables, group_base)
        counts = np.array([len(op.deps) for op in template.ops], np.int64)
        flat = np.array([d for op in template.ops for d in op.deps], np.int64)
        if len(flat) and flat.min() < 0:
            bad = int(np.repeat(np.arange(length), counts)[np.argmax(flat < 0)])
            raise ValueError(f"template op {template.ops[bad].name} has a negative dep")
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
    # Each label parsed once (a template repeats a few labels thousands of times).
    labels = {op.algorithm for op in ops if op.collective is not None}
    algorithms = {label: int(Algorithm.parse(label)) for label in labels}
    per_op = {
        "stream": [op.stream for op in ops],
        "kind": [int(op.kind) for op in ops],
        "duration": [op.duration for op in ops],
        "bytes": [op.nbytes for op in ops],
        "collective": [int(op.collective) if op.collective is not None else op.tag for op in ops],
        "algorithm": [algorithms[op.algorithm] if op.collective is not None else -1 for op in ops],
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
    table = np.stack(candidates, axis=1).astype(np.int32)  # [rank, candidate]
    # [rank, op], written in place row by row (a transposed copy would stride through memory).
    np.take(table, choice, axis=1, out=block["peer"].reshape(n_ranks, length))


def _copies(row: np.ndarray, times: int) -> np.ndarray:
    """`times` copies of a template column, one after the other (np.tile, in one pass)."""
    return np.broadcast_to(row, (times, len(row))).reshape(-1)
