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
from functools import lru_cache

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
# The program columns a template op fills the same on every rank of its stage.
PER_OP_COLUMNS = (
    "stream",
    "kind",
    "duration",
    "bytes",
    "collective",
    "algorithm",
    "repeat",
    "message_bytes",
    "fanout",
)


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
    """A stage's ops in order; add() returns the op's index for later deps.

    The ops are TemplateOp objects, except that a template may start with a block of ops stored
    as copies of a few prototypes (add_block): a step's passes repeat a handful of op patterns
    thousands of times, and writing each as a Python object was most of a lowering's time. The
    block becomes objects only when `ops` is read (for traces and breakdowns); the program is
    built from columns (`columns`), the same either way."""

    def __init__(self) -> None:
        self._ops: list[TemplateOp] = []
        self._block: OpBlock | None = None
        self._blocked = 0  # ops in the block
        self._columns: dict[str, np.ndarray] | None = None  # columns(), until ops change

    def add(self, op: TemplateOp) -> int:
        """Deps are checked when the template is copied to ranks (build_program)."""
        self._ops.append(op)
        self._columns = None
        return self._blocked + len(self._ops) - 1

    def add_block(self, block: "OpBlock") -> None:
        """Starts an empty template with a block of copied prototypes."""
        if len(self):
            raise ValueError("a block must come first in a template")
        self._block, self._blocked, self._columns = block, len(block.proto), None

    def __len__(self) -> int:
        return self._blocked + len(self._ops)

    @property
    def ops(self) -> list[TemplateOp]:
        """Every op as a TemplateOp (the block written out once, on first use)."""
        if self._block is not None:
            self._ops = self._block.materialise() + self._ops
            self._block, self._blocked = None, 0
        self._columns = None  # the caller may change the ops
        return self._ops

    def name(self, j: int) -> str:
        """Op j's name (without writing the block out)."""
        block = self._block
        if block is None or j >= self._blocked:
            return self._ops[j - self._blocked].name
        return block.prototypes[block.proto[j]].name.replace(MARK, str(block.label[j]))

    def collectives(self) -> list[TemplateOp]:
        """The collective ops (a block's prototypes once each: changing one changes all its
        copies)."""
        ops = self._ops + (self._block.prototypes if self._block is not None else [])
        return [op for op in ops if op.kind == Kind.COLLECTIVE]

    def columns(self) -> dict[str, np.ndarray]:
        """Per op: the program's per-op columns that do not depend on the rank, plus `role`
        (0: none, else ROLES.index + 1), `stage_offset`, and deps as `dep_counts`/`dep_flat`
        (kept until the ops change: a lowered template is built into programs and read by its
        result; do not change the arrays)."""
        if self._columns is None and self._block is None:
            self._columns = op_columns(self._ops)
        elif self._columns is None:  # the ops after the block as prototypes of one copy each
            block, n = self._block, len(self._ops)
            protos = np.arange(len(block.prototypes), len(block.prototypes) + n)
            block = OpBlock(
                block.prototypes + self._ops,
                proto=np.concatenate([block.proto, protos]),
                base=np.concatenate([block.base, np.zeros(n, np.int64)]),
                extra=np.concatenate([block.extra, np.full(n, -1, np.int64)]),
                label=block.label,  # names are not columns
            )
            self._columns = block.columns()
        return self._columns


# Stands for a block op's label (its microbatch) in its prototype's name.
MARK = "\x00"


@dataclass(frozen=True)
class OpBlock:
    """Ops that are copies of a few prototypes: op i is prototypes[proto[i]] with base[i] added
    to each of its deps, the dep extra[i] (if >= 0) put first, and label[i] for MARK in its
    name. Prototypes' deps are relative to their copy's base."""

    prototypes: list[TemplateOp]
    proto: np.ndarray
    base: np.ndarray
    extra: np.ndarray
    label: np.ndarray

    def materialise(self) -> list[TemplateOp]:
        out, protos = [], self.prototypes
        columns = (self.proto, self.base, self.extra, self.label)
        rows = zip(*(column.tolist() for column in columns), strict=True)
        for p, base, extra, label in rows:
            op = protos[p]
            deps = ([extra] if extra >= 0 else []) + [d + base for d in op.deps]
            out.append(
                TemplateOp(  # every field, in order (dataclasses.replace is ~5x slower)
                    op.name.replace(MARK, str(label)),
                    op.kind,
                    op.stream,
                    op.duration,
                    op.nbytes,
                    op.role,
                    op.collective,
                    op.repeat,
                    op.message_bytes,
                    op.fanout,
                    op.algorithm,
                    op.stage_offset,
                    op.tag,
                    deps,
                )
            )
        return out

    def columns(self) -> dict[str, np.ndarray]:
        """Template.columns of the block, by indexing its prototypes' columns."""
        per_proto = op_columns(self.prototypes)
        cols = {name: per_proto[name][self.proto] for name in TEMPLATE_COLUMNS}
        own = cols["dep_counts"]  # the prototype's deps, then one more where extra >= 0
        has = self.extra >= 0
        counts = own + has
        offsets = run_starts(counts)
        flat = np.empty(int(counts.sum()), np.int64)
        flat[offsets[has]] = self.extra[has]
        op = np.repeat(np.arange(len(own)), own)
        within = np.arange(len(op)) - np.repeat(run_starts(own), own)
        source = run_starts(per_proto["dep_counts"])[self.proto[op]] + within
        flat[offsets[op] + has[op] + within] = per_proto["dep_flat"][source] + self.base[op]
        cols["dep_counts"], cols["dep_flat"] = counts, flat
        return cols


# The per-op columns of a template (op_columns): the program's that do not depend on the rank,
# and what the rank-dependent ones are computed from.
TEMPLATE_COLUMNS = {
    **{name: OP_COLUMNS[name] for name in PER_OP_COLUMNS},
    "role": np.int64,  # 0: none, else ROLES.index(role) + 1
    "stage_offset": np.int64,
    "dep_counts": np.int64,
}


def op_columns(ops: list[TemplateOp]) -> dict[str, np.ndarray]:
    """TEMPLATE_COLUMNS of some ops, and their deps one after the other (`dep_flat`)."""
    # Each label parsed once (a template repeats a few labels thousands of times).
    labels = {op.algorithm for op in ops if op.collective is not None}
    algorithms = {label: int(Algorithm.parse(label)) for label in labels}
    values = {
        "stream": [op.stream for op in ops],
        "kind": [int(op.kind) for op in ops],
        "duration": [op.duration for op in ops],
        "bytes": [op.nbytes for op in ops],
        "collective": [int(op.collective) if op.collective is not None else op.tag for op in ops],
        "algorithm": [algorithms[op.algorithm] if op.collective is not None else -1 for op in ops],
        "repeat": [op.repeat for op in ops],
        "message_bytes": [op.message_bytes for op in ops],
        "fanout": [op.fanout for op in ops],
        "role": [ROLES.index(op.role) + 1 if op.role else 0 for op in ops],
        "stage_offset": [op.stage_offset for op in ops],
        "dep_counts": [len(op.deps) for op in ops],
    }
    cols = {name: np.asarray(values[name], dtype) for name, dtype in TEMPLATE_COLUMNS.items()}
    cols["dep_flat"] = np.array([d for op in ops for d in op.deps], np.int64)
    return cols


def run_starts(counts: np.ndarray) -> np.ndarray:
    """Where each of consecutive runs of these lengths starts."""
    starts = np.zeros(len(counts), np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    return starts


@lru_cache(maxsize=4)  # asked for by each lowering, its symmetry and its result
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
    tables = {
        role: (key, np.bincount(key), np.argsort(key, kind="stable")) for role, key in keys.items()
    }
    for table in tables.values():  # shared by every caller (cached): read-only
        for column in table:
            column.flags.writeable = False
    return tables


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
    to the other stages' representatives. Exact only where `symmetry` finds no reason against.
    One rank per stage: the templates' columns, concatenated, are the program's."""
    tables = group_tables(layout, ep, etp)
    reps = np.arange(layout.pp, dtype=np.int64) * layout.stage_size
    sizes, members = [], []
    for role in ROLES:  # group role * pp + stage: the stage representative's group of a role
        key, counts, order = tables[role]
        first = np.concatenate([[0], np.cumsum(counts)])
        for rep in reps:
            g = key[rep]
            sizes.append([counts[g]])
            members.append(order[first[g] : first[g + 1]])
    columns = [template.columns() for template in templates]
    lengths = np.array([len(c["kind"]) for c in columns], np.int64)
    if (lengths == 0).any():
        stage = int(np.argmax(lengths == 0))
        raise SpecError(f"pipeline stage {stage} has no work: give it at least one layer")
    for template, c in zip(templates, columns, strict=True):
        _check_deps(template, c)
    cols = {name: np.concatenate([c[name] for c in columns]) for name in PER_OP_COLUMNS}
    stage = np.repeat(np.arange(layout.pp, dtype=np.int64), lengths)
    role, kind = np.concatenate([c["role"] for c in columns]), cols["kind"]
    offset = np.concatenate([c["stage_offset"] for c in columns])
    peer = np.full(len(stage), -1, np.int64)
    peer[role > 0] = (role[role > 0] - 1) * layout.pp + stage[role > 0]
    p2p = ((kind == Kind.SEND) | (kind == Kind.RECV)) & (role == 0)
    peer[p2p] = reps[(stage[p2p] + offset[p2p]) % layout.pp]
    counts = np.concatenate([c["dep_counts"] for c in columns])
    base = np.repeat(run_starts(lengths), [len(c["dep_flat"]) for c in columns])
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return Program(
        **cols,
        rank=reps[stage].astype(np.int32),
        peer=peer.astype(np.int32),
        dep_offsets=offsets,
        dep_ops=(np.concatenate([c["dep_flat"] for c in columns]) + base).astype(np.int32),
        group_offsets=np.concatenate([[0], np.cumsum(np.concatenate(sizes))]).astype(np.int64),
        group_ranks=np.concatenate(members).astype(np.int32),
    )


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
    return _placement_symmetry(len(templates), layout, ep, domain_size, pod_size, etp)


@lru_cache(maxsize=16)  # the same for every candidate number of virtual stages
def _placement_symmetry(
    stages: int, layout: Layout, ep: int, domain_size: int, pod_size: int, etp: int
) -> tuple[str | None, bool]:
    """symmetry, which depends on the templates only through their number."""
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
    for stage in range(stages):
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
    total_ops = sum(len(t) * len(r) for t, r in zip(templates, stages, strict=True))
    cols = {name: np.empty(total_ops, dtype) for name, dtype in OP_COLUMNS.items()}
    dep_counts, dep_values = [], []
    base = 0
    for stage, template in enumerate(templates):
        ranks = stages[stage]
        length = len(template)
        if length == 0:
            raise SpecError(f"pipeline stage {stage} has no work: give it at least one layer")
        block = {name: column[base : base + length * len(ranks)] for name, column in cols.items()}
        columns = template.columns()
        _check_deps(template, columns)
        _fill_stage(block, columns, ranks, stage, layout, tables, group_base)
        counts, flat = columns["dep_counts"], columns["dep_flat"]
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


def _check_deps(template: Template, columns: dict[str, np.ndarray]) -> None:
    """Refuses a negative dep (a later op is caught by the engine, which names it)."""
    flat = columns["dep_flat"]
    if len(flat) and flat.min() < 0:
        at = np.repeat(np.arange(len(columns["kind"])), columns["dep_counts"])
        raise ValueError(
            f"template op {template.name(int(at[np.argmax(flat < 0)]))} has a negative dep"
        )


def _fill_stage(
    block: dict[str, np.ndarray],
    columns: dict[str, np.ndarray],
    ranks: np.ndarray,
    stage: int,
    layout: Layout,
    tables,
    group_base,
) -> None:
    """Writes a stage's ops (its template's `columns`), [rank, template op] in order, into the
    program's columns."""
    n_ranks, length = len(ranks), len(columns["kind"])
    for name in PER_OP_COLUMNS:
        block[name].reshape(n_ranks, length)[:] = columns[name]
    block["rank"].reshape(n_ranks, length)[:] = ranks[:, None]
    # Peer per (rank, op): a group index for collectives, a rank for sends and receives.
    candidates = [np.full(n_ranks, -1, np.int64)]
    candidates += [group_base[role] + tables[role][0][ranks] for role in ROLES]
    choice = columns["role"].copy()  # 0: none, else the role's candidate
    kind, offset = columns["kind"], columns["stage_offset"]
    p2p = ((kind == Kind.SEND) | (kind == Kind.RECV)) & (choice == 0)
    for stage_offset in np.unique(offset[p2p]).tolist():  # the peers' ranks at each offset
        target = (stage + stage_offset) % layout.pp
        choice[p2p & (offset == stage_offset)] = len(candidates)
        candidates.append(ranks + (target - stage) * layout.stage_size)
    table = np.stack(candidates, axis=1).astype(np.int32)  # [rank, candidate]
    # [rank, op], written in place row by row (a transposed copy would stride through memory).
    np.take(table, choice, axis=1, out=block["peer"].reshape(n_ranks, length))


def _copies(row: np.ndarray, times: int) -> np.ndarray:
    """`times` copies of a template column, one after the other (np.tile, in one pass)."""
    return np.broadcast_to(row, (times, len(row))).reshape(-1)
