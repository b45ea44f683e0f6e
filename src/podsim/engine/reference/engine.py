"""The reference engine: docs/engine.md as a small discrete-event simulation.

Ops become ready when their stream predecessor and deps have completed; collectives and
send/recv pairs are *instances* that start when their last participant is ready. In analytical
mode an instance takes its closed-form time; in contention mode it runs its phases as flows that
share links max-min fairly. Events are ordered by (time, priority, sequence number).
"""

import heapq
import math
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

from podsim.engine.reference import collectives
from podsim.engine.reference.noise import TRANSFER_KEYS, Draws
from podsim.engine.reference.topology import Link, Topology
from podsim.errors import DeadlockError, ProgramError, check
from podsim.lowering.program import MAX_REPEAT, MAX_STREAMS, Algorithm, Collective, Kind, Program

REL_TOL = 1e-12  # links within this of the smallest fair share, flows within this of finishing
NETWORKS = ("analytical", "contention")

# Event priorities at one time. They fix the processing order, not the result: ready times are
# maxima of completion times, and rates are recomputed only after the whole batch.
_DONE, _PHASE = 0, 1

_KINDS = frozenset(int(k) for k in Kind)
_COLLECTIVES = frozenset(int(c) for c in Collective)
_ALGORITHMS = frozenset(int(a) for a in Algorithm)
_COMM = frozenset((Kind.COLLECTIVE, Kind.SEND, Kind.RECV))


def simulate(
    program: Program,
    topology: "Topology | tuple | Any",
    network: str = "analytical",
    noise: Any = None,
    iteration: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Start and end time (seconds, float64) of every op of the program.

    topology: a Topology, its 9-tuple, or a Cluster. noise: a podsim.engine.noise.NoiseModel
    (or None), drawn for step `iteration` exactly as the C++ engine draws it. Raises
    ProgramError for a malformed program and DeadlockError when some op can never complete.
    """
    check(network in NETWORKS, "network", network, " or ".join(map(repr, NETWORKS)))
    topology = Topology.of(topology)
    checked = _check_program(program, topology)
    draws = Draws.of(noise, topology, iteration)
    return _Simulation(checked, topology, network == "contention", draws).run()


# --- the checked program ---------------------------------------------------------------------


@dataclass(eq=False)
class _Instance:
    """Ops that start and complete together: one collective instance or one send/recv pair."""

    ranks: tuple[int, ...]  # participants: the group, or (src, dst)
    what: str  # e.g. "all-reduce on group 3 (its instance 0)", for messages
    nbytes: float
    op: Collective | None = None  # None for a send/recv pair
    algorithm: Algorithm | None = None
    repeat: int = 1  # back-to-back repetitions of a collective
    shape: collectives.Shape = field(
        default_factory=collectives.Shape
    )  # an all-to-all's message size and fanout
    ops: dict[int, int] = field(default_factory=dict)  # rank -> its op, for ops present
    arrived: set[int] = field(default_factory=set)  # ranks whose op is ready
    phases: list[collectives.Phase] = field(default_factory=list)  # contention mode
    phase: int = -1
    flows_left: int = 0
    index: int = -1  # a collective: its number, in order of first appearance (noise keys)
    jitter: bool = False  # contention: phase latencies drawn (a collective with latency noise)
    k: int = 0  # the instance's number on its group (collective) or channel (transfer)
    tag: int = -1  # a transfer's tag
    # Analytical mode across pods: a collective's time with its wave's load (noise aside), or
    # the seconds a transfer's wave needs on the busiest pod link it crosses.
    pod_time: float | None = None


@dataclass
class _Checked:
    kind: list[int]
    rank: list[int]
    stream: list[int]
    duration: list[float]
    successors: list[list[int]]  # ops that wait for this one (stream successor, dependents)
    pending: list[int]  # how many distinct ops each op waits for
    instance: list[_Instance | None]


def _check_program(program: Program, topology: Topology) -> _Checked:
    n = program.num_ops
    col = {
        name: getattr(program, name).tolist()
        for name in (
            "rank",
            "stream",
            "kind",
            "duration",
            "bytes",
            "peer",
            "collective",
            "algorithm",
            "repeat",
        )
    }
    for name, default in (("message_bytes", 0.0), ("fanout", 1.0)):  # optional columns
        values = getattr(program, name, None)
        col[name] = [default] * n if values is None else np.asarray(values).tolist()
    for name, values in col.items():
        if len(values) != n:
            raise ProgramError(f"program.{name} has {len(values)} entries, expected {n}")
    deps = _csr("dep", program.dep_offsets, program.dep_ops, n)
    groups = [
        tuple(g)
        for g in _csr("group", program.group_offsets, program.group_ranks, program.num_groups)
    ]
    for index, group in enumerate(groups):
        _check_group(index, group, topology.devices)
    for i in range(n):
        _check_op(i, col, groups, topology.devices)
        _check_deps(i, deps[i], col["rank"])
    instance = _match(col, groups, topology)
    return _Checked(
        col["kind"],
        col["rank"],
        col["stream"],
        col["duration"],
        *_dependencies(col, deps),
        instance,
    )


def _csr(name: str, offsets: np.ndarray, values: np.ndarray, rows: int) -> list[list[int]]:
    offsets, values = offsets.tolist(), values.tolist()
    ok = len(offsets) == rows + 1 and offsets[0] == 0 and offsets[-1] == len(values)
    if not ok or any(lo > hi for lo, hi in pairwise(offsets)):
        raise ProgramError(
            f"program.{name}_offsets must be non-decreasing, start at 0, end at "
            f"len({name}_ops/ranks) = {len(values)}, with {rows + 1} entries"
        )
    return [values[lo:hi] for lo, hi in pairwise(offsets)]


def _check_group(index: int, group: tuple[int, ...], devices: int) -> None:
    if not group:
        raise ProgramError(f"group {index} is empty")
    bad = [r for r in group if not 0 <= r < devices]
    if bad:
        raise ProgramError(f"group {index}: rank {bad[0]} is out of range [0, {devices})")
    if len(set(group)) != len(group):
        raise ProgramError(f"group {index} lists a rank twice: {list(group)}")


def _check_op(i: int, col: dict[str, list], groups: list[tuple[int, ...]], devices: int) -> None:
    rank, stream, kind = col["rank"][i], col["stream"][i], col["kind"][i]
    if not 0 <= rank < devices:
        raise ProgramError(f"op {i}: rank {rank} is out of range [0, {devices})")
    if not 0 <= stream < MAX_STREAMS:
        raise ProgramError(f"op {i}: stream {stream} is out of range [0, {MAX_STREAMS})")
    if kind not in _KINDS:
        raise ProgramError(f"op {i}: kind {kind} is not one of {sorted(_KINDS)}")
    if kind == Kind.COMPUTE:
        d = col["duration"][i]
        if not (math.isfinite(d) and d >= 0):
            raise ProgramError(f"op {i}: compute duration {d} is not a finite number >= 0")
    elif col["duration"][i] != 0:  # NaN included: only compute ops take time
        raise ProgramError(
            f"op {i}: duration = {col['duration'][i]} s is not allowed: a {Kind(kind).name.lower()}"
            " op has no duration (0); only compute ops take time"
        )
    message, fanout = col["message_bytes"][i], col["fanout"][i]
    if not (math.isfinite(message) and message >= 0):
        raise ProgramError(f"op {i}: message_bytes = {message} must be finite and >= 0")
    if not (math.isfinite(fanout) and fanout >= 1):
        raise ProgramError(f"op {i}: fanout = {fanout} must be finite and >= 1")
    if kind != Kind.COLLECTIVE and col["repeat"][i] != 1:
        raise ProgramError(
            f"op {i}: repeat = {col['repeat'][i]} must be 1 (only collectives repeat)"
        )
    if kind not in _COMM:
        return
    nbytes, peer = col["bytes"][i], col["peer"][i]
    if not (math.isfinite(nbytes) and nbytes > 0):
        raise ProgramError(f"op {i}: bytes {nbytes} is not a finite number > 0")
    if kind == Kind.COLLECTIVE:
        _check_collective(i, rank, peer, col, groups)
    elif not 0 <= peer < devices:
        raise ProgramError(f"op {i}: peer rank {peer} is out of range [0, {devices})")
    elif peer == rank:
        raise ProgramError(f"op {i}: rank {rank} sends to or receives from itself")


def _check_collective(
    i: int, rank: int, group: int, col: dict[str, list], groups: list[tuple[int, ...]]
) -> None:
    if not 0 <= group < len(groups):
        raise ProgramError(f"op {i}: group {group} is out of range [0, {len(groups)})")
    if col["collective"][i] not in _COLLECTIVES:
        raise ProgramError(f"op {i}: collective {col['collective'][i]} is not known")
    if col["algorithm"][i] not in _ALGORITHMS:
        raise ProgramError(f"op {i}: algorithm {col['algorithm'][i]} is not known")
    if rank not in groups[group]:
        raise ProgramError(
            f"op {i}: rank {rank} is not a member of group {group} {list(groups[group])}"
        )
    if not 1 <= col["repeat"][i] <= MAX_REPEAT:
        raise ProgramError(f"op {i}: repeat = {col['repeat'][i]} must be in [1, {MAX_REPEAT}]")


def _check_deps(i: int, deps: list[int], ranks: list[int]) -> None:
    for d in deps:
        if not 0 <= d < i:
            raise ProgramError(f"op {i}: dep {d} is not an op of smaller index (0 <= dep < {i})")
        if ranks[d] != ranks[i]:
            raise ProgramError(
                f"op {i} (rank {ranks[i]}): dep {d} runs on rank {ranks[d]}; "
                "deps must be ops of the same rank"
            )


def _dependencies(col: dict[str, list], deps: list[list[int]]) -> tuple[list, list]:
    """Successors and pending counts from stream order plus deps (each prerequisite once)."""
    n = len(deps)
    successors: list[list[int]] = [[] for _ in range(n)]
    pending = [0] * n
    last: dict[tuple[int, int], int] = {}  # (rank, stream) -> latest op so far
    for i in range(n):
        key = (col["rank"][i], col["stream"][i])
        before = set(deps[i]) | ({last[key]} if key in last else set())
        last[key] = i
        for p in sorted(before):
            successors[p].append(i)
        pending[i] = len(before)
    return successors, pending


def _match(
    col: dict[str, list], groups: list[tuple[int, ...]], topology: Topology
) -> list[_Instance | None]:
    """Each comm op's instance: the k-th op of a rank on a group, the k-th send a->b / recv."""
    instance: list[_Instance | None] = [None] * len(col["kind"])
    found: dict[tuple, _Instance] = {}
    count: dict[tuple, int] = {}
    collectives_found = 0
    for i, kind in enumerate(col["kind"]):
        if kind not in _COMM:
            continue
        rank, peer = col["rank"][i], col["peer"][i]
        if kind == Kind.COLLECTIVE:
            counter, key = (kind, rank, peer), ("collective", peer)
        else:
            src, dst = (rank, peer) if kind == Kind.SEND else (peer, rank)
            tag = col["collective"][i]  # a send's or recv's tag; matching is per tag
            counter, key = (kind, src, dst, tag), ("transfer", src, dst, tag)
        k = count[counter] = count.get(counter, -1) + 1
        key = (*key, k)
        if key not in found:
            found[key] = _new_instance(i, k, col, groups)
            if kind == Kind.COLLECTIVE:
                found[key].index = collectives_found
                collectives_found += 1
        instance[i] = _join(found[key], i, col)
    for inst in found.values():
        _resolve(inst, topology)
    _pod_waves(list(found.values()), topology)
    return instance


def _pod_waves(instances: list[_Instance], topology: Topology) -> None:
    """Analytical mode across pods (docs/engine.md, "Pod links"): the k-th instance of every
    group of the same size, op, algorithm, bytes, shape and repeat (a wave) runs at the same time as
    its copies, as do the k-th sends of every channel with the same tag and bytes;
    each phase of each member must get the wave's traffic through the pod links it crosses."""
    if -(-topology.devices // topology.pod_size) < 2:
        return
    totals: dict[tuple, float] = {}
    spanning = []
    for inst in instances:
        if len(inst.ranks) < 2 or not collectives.spans_pods(topology, inst.ranks):
            continue
        if inst.op is None:
            src, dst = inst.ranks
            wave = ("transfer", inst.nbytes, inst.tag, inst.k)
            loads = [
                {
                    ("pod_up", topology.pod(src)): inst.nbytes,
                    ("pod_down", topology.pod(dst)): inst.nbytes,
                }
            ]
        else:
            wave = (
                len(inst.ranks),
                inst.op,
                inst.algorithm,
                inst.nbytes,
                inst.shape,
                inst.repeat,
                inst.k,
            )
            loads = collectives.pod_loads(
                topology, inst.op, inst.algorithm, inst.ranks, inst.nbytes, inst.shape
            )
        for phase, links in enumerate(loads):
            for link, nbytes in links.items():
                totals[wave, phase, link] = totals.get((wave, phase, link), 0.0) + nbytes
        spanning.append((inst, wave, loads))
    for inst, wave, loads in spanning:
        seconds = [
            max(
                (totals[wave, phase, link] / topology.capacity(link) for link in links), default=0.0
            )
            for phase, links in enumerate(loads)
        ]
        if inst.op is None:
            inst.pod_time = seconds[0]
        else:
            inst.pod_time = collectives.analytical_time(
                topology, inst.op, inst.algorithm, inst.ranks, inst.nbytes, inst.shape, seconds
            )


def _new_instance(i: int, k: int, col: dict[str, list], groups: list[tuple[int, ...]]) -> _Instance:
    rank, peer, nbytes = col["rank"][i], col["peer"][i], col["bytes"][i]
    if col["kind"][i] == Kind.COLLECTIVE:
        op, algorithm = Collective(col["collective"][i]), Algorithm(col["algorithm"][i])
        what = f"{op.label} on group {peer} (its instance {k})"
        shape = collectives.Shape(col["message_bytes"][i], col["fanout"][i])
        return _Instance(groups[peer], what, nbytes, op, algorithm, col["repeat"][i], shape, k=k)
    src, dst = (rank, peer) if col["kind"][i] == Kind.SEND else (peer, rank)
    what = f"transfer {src} -> {dst} (its number {k})"
    return _Instance((src, dst), what, nbytes, k=k, tag=col["collective"][i])


def _join(inst: _Instance, i: int, col: dict[str, list]) -> _Instance:
    """Add op i to the instance; every participant must describe the same operation."""
    first = min(inst.ops.values(), default=i)
    names = (
        ("collective", "algorithm", "bytes", "repeat", "message_bytes", "fanout")
        if inst.op is not None
        else ("bytes",)
    )
    mine, theirs = ([_describe(name, col[name][j]) for name in names] for j in (i, first))
    if mine != theirs:
        differ = [f"{n} {a} vs {b}" for n, a, b in zip(names, mine, theirs, strict=True) if a != b]
        raise ProgramError(
            f"op {i} (rank {col['rank'][i]}) disagrees with op {first} "
            f"(rank {col['rank'][first]}) in {inst.what}: " + ", ".join(differ)
        )
    inst.ops[col["rank"][i]] = i
    return inst


def _describe(name: str, value: Any) -> Any:
    if name == "collective":
        return Collective(value).label
    return Algorithm(value).label if name == "algorithm" else value


def _resolve(inst: _Instance, topology: Topology) -> None:
    if inst.op is None:
        return
    try:
        inst.algorithm = collectives.resolve(
            topology, inst.op, inst.algorithm, inst.ranks, inst.nbytes, inst.shape
        )
    except ProgramError as error:
        raise ProgramError(f"op {min(inst.ops.values())}: {error}") from None


# --- the network -----------------------------------------------------------------------------


@dataclass(eq=False)
class _Flow:
    links: list[Link]
    remaining: float  # bytes
    owner: _Instance
    rate: float = 0.0  # bytes per second


def max_min_rates(flows: list[list[Link]], capacity: dict[Link, float]) -> list[float]:
    """Max-min fair rates by progressive filling.

    Repeatedly take the link with the smallest fair share (remaining capacity / unfixed
    flows); links within REL_TOL of it are bottlenecks too, so that the result does not hinge
    on rounding. Their unfixed flows get that share, which the flows' other links lose.
    """
    users: dict[Link, list[int]] = {}
    for f, links in enumerate(flows):
        for link in links:
            users.setdefault(link, []).append(f)
    remaining = {link: capacity[link] for link in users}
    unfixed = {link: len(fs) for link, fs in users.items()}
    rates: list[float | None] = [None] * len(flows)
    while unfixed:
        shares = {link: max(remaining[link], 0.0) / count for link, count in unfixed.items()}
        share = min(shares.values())
        for link in [lk for lk, s in shares.items() if s <= share * (1 + REL_TOL)]:
            for f in users[link]:
                if rates[f] is None:
                    rates[f] = share
                    for other in flows[f]:
                        remaining[other] -= share
                        unfixed[other] -= 1
                        if unfixed[other] == 0:
                            del unfixed[other]
    return rates  # type: ignore[return-value]  # every flow has a link, so all are fixed


class _Network:
    """Active flows; rates are recomputed lazily, once per batch of simultaneous events."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.flows: list[_Flow] = []  # in start order, which fixes completion order
        self.now = 0.0
        self.changed = False

    def start(self, src: int, dst: int, nbytes: float, owner: _Instance) -> None:
        self.flows.append(_Flow(self.topology.links(src, dst), nbytes, owner))
        self.changed = True

    def advance(self, now: float) -> None:
        for f in self.flows:
            f.remaining -= f.rate * (now - self.now)
        self.now = now

    def next_finish(self) -> float:
        return min((self.now + f.remaining / f.rate for f in self.flows), default=math.inf)

    def finish(self, now: float) -> list[_Instance]:
        """Advance to `now`, the earliest finish, and remove the flows finishing with it."""
        cutoff = now * (1 + REL_TOL)
        done = [f for f in self.flows if self.now + f.remaining / f.rate <= cutoff]
        self.flows = [f for f in self.flows if self.now + f.remaining / f.rate > cutoff]
        self.advance(now)
        self.changed = True
        return [f.owner for f in done]

    def update_rates(self) -> None:
        if not self.changed:
            return
        links = [f.links for f in self.flows]
        capacity = {link: self.topology.capacity(link) for ls in links for link in ls}
        for f, rate in zip(self.flows, max_min_rates(links, capacity), strict=True):
            f.rate = rate
        self.changed = False


# --- the simulation --------------------------------------------------------------------------


class _Simulation:
    def __init__(
        self, program: _Checked, topology: Topology, contention: bool, draws: Draws
    ) -> None:
        self.p = program
        self.topology = topology
        self.draws = draws
        self.network = _Network(topology) if contention else None
        n = len(program.kind)
        self.start = [math.nan] * n
        self.end = [math.nan] * n
        self.pending = list(program.pending)
        self.events: list[tuple[float, int, int, Any]] = []
        self.sequence = 0

    def run(self) -> tuple[np.ndarray, np.ndarray]:
        for i, waiting in enumerate(self.pending):
            if waiting == 0:
                self._ready(i, 0.0)
        while self._step():
            pass
        self._check_finished()
        return np.array(self.start, dtype=np.float64), np.array(self.end, dtype=np.float64)

    def _step(self) -> bool:
        """Process the next batch of simultaneous events; False when nothing is left."""
        t_event = self.events[0][0] if self.events else math.inf
        t_flow = self.network.next_finish() if self.network else math.inf
        if t_event == t_flow == math.inf:
            return False
        now = min(t_event, t_flow)
        if self.network and t_flow <= t_event:
            for inst in self.network.finish(now):
                self._flow_done(inst, now)
        elif self.network:
            self.network.advance(now)
        while self.events and self.events[0][0] <= now:
            time, priority, _, payload = heapq.heappop(self.events)
            if priority == _DONE:
                self._done(payload, time)
            else:
                self._start_phase(payload, time)
        if self.network:
            self.network.update_rates()
        return True

    def _push(self, time: float, priority: int, payload: Any) -> None:
        heapq.heappush(self.events, (time, priority, self.sequence, payload))
        self.sequence += 1

    def _ready(self, op: int, t: float) -> None:
        kind = self.p.kind[op]
        if kind == Kind.COMPUTE:
            self.start[op] = t
            duration = self.draws.compute_time(op, self.p.rank[op], self.p.duration[op])
            self._push(t + duration, _DONE, op)
        elif kind == Kind.WAIT:
            self.start[op] = t
            self._push(t, _DONE, op)
        else:
            inst = self.p.instance[op]
            inst.arrived.add(self.p.rank[op])
            if len(inst.arrived) == len(inst.ranks):
                self._begin(inst, t)

    def _done(self, op: int, t: float) -> None:
        self.end[op] = t
        for succ in self.p.successors[op]:
            self.pending[succ] -= 1
            if self.pending[succ] == 0:
                self._ready(succ, t)

    def _begin(self, inst: _Instance, t: float) -> None:
        """The last participant is ready: the instance starts now."""
        for op in inst.ops.values():
            self.start[op] = t
        if self.network is None:
            self._complete(inst, t + self._analytical_time(inst))
            return
        inst.phases = self._phases(inst)
        self._next_phase(inst, t + self.topology.launch_latency)

    def _analytical_time(self, inst: _Instance) -> float:
        """The closed form; with latency noise its latency terms stretched: a transfer's path
        latency by one draw, each repetition of a collective by the slowest of its members'
        hops (docs/engine.md, "Noise")."""
        draws, topology = self.draws, self.topology
        if inst.op is None:
            src, dst = inst.ranks
            factor = draws.latency_factor(TRANSFER_KEYS | inst.ops[src], 1)
            seconds_per_byte = 1.0 / topology.bandwidth(src, dst)
            latency = topology.latency(src, dst) * factor
            bandwidth = inst.nbytes * seconds_per_byte
            if inst.pod_time is not None:  # its wave's traffic over the pod links
                bandwidth = max(bandwidth, inst.pod_time)
            return topology.launch_latency + latency + bandwidth
        args = (topology, inst.op, inst.algorithm, inst.ranks)
        one = inst.pod_time
        if one is None:
            one = collectives.collective_time(*args, inst.nbytes, inst.shape)
        time = one * inst.repeat
        if draws.latency_sigma > 0:
            protocol = collectives.choose_protocol(*args, inst.nbytes)  # the real bytes' one
            latency = collectives.collective_time(*args, 1e-300, inst.shape, protocol)
            latency -= topology.launch_latency
            for r in range(inst.repeat):
                factor = draws.latency_factor((inst.index << 20) | r, len(inst.ranks))
                time += latency * (factor - 1.0)
        return time

    def _phases(self, inst: _Instance) -> list[collectives.Phase]:
        if inst.op is None:
            src, dst = inst.ranks
            factor = self.draws.latency_factor(TRANSFER_KEYS | inst.ops[src], 1)
            ((latency, flows),) = collectives.transfer_phases(self.topology, src, dst, inst.nbytes)
            return [(latency * factor, flows)]
        once = collectives.phases(
            self.topology, inst.op, inst.algorithm, inst.ranks, inst.nbytes, inst.shape
        )
        if not once:  # a group of one: each repetition is a launch
            return [(self.topology.launch_latency, [])] * (inst.repeat - 1)
        inst.jitter = self.draws.latency_sigma > 0
        # Each repetition after the first pays the launch latency again before its first phase.
        again = [(once[0][0] + self.topology.launch_latency, once[0][1]), *once[1:]]
        return once + again * (inst.repeat - 1)

    def _complete(self, inst: _Instance, t: float) -> None:
        for op in sorted(inst.ops.values()):
            self._push(t, _DONE, op)

    def _next_phase(self, inst: _Instance, t: float) -> None:
        """The previous phase (or the launch) ended at t: wait the next latency, or finish."""
        inst.phase += 1
        if inst.phase == len(inst.phases):
            self._complete(inst, t)
            return
        latency, flows = inst.phases[inst.phase]
        if inst.jitter:  # the slowest of the phase's hops (its distinct source-target pairs)
            hops = len({(src, dst) for src, dst, _ in flows})
            latency *= self.draws.latency_factor((inst.index << 20) | inst.phase, hops)
        self._push(t + latency, _PHASE, inst)

    def _start_phase(self, inst: _Instance, t: float) -> None:
        flows = inst.phases[inst.phase][1]
        inst.flows_left = len(flows)
        for src, dst, nbytes in flows:
            self.network.start(src, dst, nbytes, inst)
        if not flows:
            self._next_phase(inst, t)

    def _flow_done(self, inst: _Instance, t: float) -> None:
        inst.flows_left -= 1
        if inst.flows_left == 0:
            self._next_phase(inst, t)

    def _check_finished(self) -> None:
        stuck = next((i for i, end in enumerate(self.end) if math.isnan(end)), None)
        if stuck is not None:
            raise DeadlockError(self._describe_stuck(stuck))

    def _describe_stuck(self, op: int) -> str:
        """The first unfinished op has all its prerequisites done (they have smaller indices),
        so it is a collective or transfer waiting for participants that never arrive."""
        where = f"op {op} (rank {self.p.rank[op]}, stream {self.p.stream[op]})"
        inst = self.p.instance[op]
        if inst is None:  # cannot happen; kept so the error always says something useful
            return f"deadlock: {where} never completed"
        missing = []
        for rank in inst.ranks:
            if rank not in inst.arrived:
                other = inst.ops.get(rank)
                missing.append(
                    f"rank {rank} (op {other}, never ready)"
                    if other is not None
                    else f"rank {rank} (no matching op)"
                )
        return f"deadlock: {where} in {inst.what} waits for " + ", ".join(missing)
