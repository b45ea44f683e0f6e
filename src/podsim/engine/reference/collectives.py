"""Collective algorithms: closed-form times and the phases the contention mode replays.

Every algorithm is first written as a *pattern*: a list of steps, each a latency in units of the
step latency `a` plus flows whose bytes are fractions of S. The pairs of ranks those flows join
are "the pairs the algorithm uses" of docs/engine.md, so `a` (largest path latency) and `b`
(1 / smallest path bandwidth) come from the same flows that contention mode runs. Alone on the
network, the phases then reproduce the closed forms whenever each step's slowest flow runs at
1/b: not so for halving-doubling or binomial steps that stay on faster paths than the group's
slowest, nor for a double binary tree whose slowest links carry one flow each, where the closed
form is the larger (tests/test_reference.py lists these cases).

Group positions, not ranks, define the algorithms: position i is group_ranks[i].
"""

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from podsim.engine.reference.topology import SAME_DOMAIN, Link, Topology
from podsim.errors import ProgramError
from podsim.lowering.program import Algorithm, Collective

A = Algorithm
C = Collective

Flow = tuple[int, int, float]  # (src rank, dst rank, bytes)
Phase = tuple[float, list[Flow]]  # (latency in seconds, flows started after it)

# AUTO's tie-break order.
ORDER = (
    A.RING,
    A.TREE,
    A.HALVING_DOUBLING,
    A.HIERARCHICAL,
    A.DIRECT,
    A.LOW_LATENCY,
    A.NODE_FORWARDED,
    A.NVLS,
    A.NVLS_TREE,
    A.NCCL_TREE,
)

# Algorithms that run only when named: AUTO never takes them (docs/engine.md, "NCCL's tree").
EXPLICIT_ONLY = (A.NCCL_TREE,)

ALGORITHMS = {
    C.ALL_REDUCE: (
        A.RING,
        A.TREE,
        A.HALVING_DOUBLING,
        A.HIERARCHICAL,
        A.NVLS,
        A.NVLS_TREE,
        A.NCCL_TREE,
    ),
    C.ALL_GATHER: (A.RING, A.HALVING_DOUBLING, A.HIERARCHICAL),
    C.REDUCE_SCATTER: (A.RING, A.HALVING_DOUBLING, A.HIERARCHICAL),
    C.ALL_TO_ALL: (A.DIRECT, A.LOW_LATENCY, A.NODE_FORWARDED),
    C.BROADCAST: (A.RING, A.TREE),
    C.REDUCE: (A.RING, A.TREE),
}


# Protocols (docs/engine.md, "Protocols"), the codes of Topology.protocol.
AUTO_PROTOCOL, LL, LL128, SIMPLE = 0, 1, 2, 3
PROTOCOL_NAMES = ("auto", "ll", "ll128", "simple")

# Against Simple (the plain model): (factor on the launch latency, on the hop latency inside a
# domain, on the hop latency across domains, fraction of the bandwidth). Latency ratios: NCCL's
# ring tuner constants (NVIDIA/nccl src/graph/tuning.cc: base 6.6 / 14.0 / 8.4 us for LL /
# LL128 / Simple, per step 0.6 / 1.9 / 3.4 us over NVLink and 2.7 / 4.0 / 14.0 us over the
# network). Bandwidth: LL128's 120 data bytes per 128-byte line (NCCL: 0.92); LL's 4 data bytes
# per 8-byte line bound it by 1/2, LL_EFFICIENCY is fitted on nccl-tests (tools/fit_nvls.py).
LL_EFFICIENCY = 0.335
_PROTOCOL_COST = {
    LL: (6.6 / 8.4, 0.6 / 3.4, 2.7 / 14.0, LL_EFFICIENCY),
    LL128: (14.0 / 8.4, 1.9 / 3.4, 4.0 / 14.0, 0.92),
    SIMPLE: (1.0, 1.0, 1.0, 1.0),
}


@dataclass(frozen=True)
class Shape:
    """An all-to-all's shape (docs/engine.md); other collectives ignore it."""

    message_bytes: float = 0.0  # one message (e.g. a token's hidden vector); 0: one per peer
    fanout: float = 1.0  # node-forwarded: ranks of a domain one per-domain copy reaches


# Step levels: hierarchical algorithms time their cross-domain step with (a_o, b_o), every
# other step uses level UP, which for non-hierarchical algorithms means "the whole group".
UP, OUT = 0, 1


@dataclass(frozen=True)
class _Step:
    steps: int  # the step's latency is steps * a of its level
    level: int
    flows: tuple[tuple[int, int, float], ...]  # (src, dst, fraction of S)


@dataclass(frozen=True)
class _Pattern:
    steps: tuple[_Step, ...]
    a: tuple[float, float]  # per level: largest path latency over the level's flows
    b: tuple[float, float]  # per level: 1 / smallest path bandwidth over the level's flows
    b_in: float  # 1 / smallest path bandwidth over the flows inside one domain
    b_out: float  # the same over the flows between domains
    g: int = 1  # hierarchical and channelled rings: members per domain
    m: int = 1  # hierarchical and channelled rings: domains


# --- applicability ---------------------------------------------------------------------------


def _domains(topology: Topology, group: Sequence[int]) -> list[list[int]]:
    """The group's members per domain, domains in order of first appearance, members in order."""
    members: dict[int, list[int]] = {}
    for rank in group:
        members.setdefault(topology.domain(rank), []).append(rank)
    return list(members.values())


def _balanced(domains: list[list[int]]) -> bool:
    return len({len(d) for d in domains}) == 1


def _channelled(
    topology: Topology, op: Collective, algorithm: Algorithm, group: Sequence[int]
) -> bool:
    """Rings of all-reduce, all-gather and reduce-scatter over several balanced domains."""
    ring = algorithm == A.RING and op in (C.ALL_REDUCE, C.ALL_GATHER, C.REDUCE_SCATTER)
    domains = _domains(topology, group)
    return ring and len(domains) > 1 and _balanced(domains)


def _applies(topology: Topology, algorithm: Algorithm, group: Sequence[int]) -> bool:
    n = len(group)
    if algorithm == A.HALVING_DOUBLING:
        return n & (n - 1) == 0
    if algorithm in (A.HIERARCHICAL, A.NODE_FORWARDED):
        return _balanced(_domains(topology, group))
    if algorithm == A.NVLS:  # the switch of one domain reduces
        return topology.nvls_bandwidth > 0 and n >= 2 and len(_domains(topology, group)) == 1
    if algorithm == A.NVLS_TREE:  # every domain's switch reduces, a tree joins them
        domains = _domains(topology, group)
        return (
            topology.nvls_bandwidth > 0
            and len(domains) >= 2
            and _balanced(domains)
            and len(domains[0]) >= 2
        )
    if algorithm == A.NCCL_TREE:  # switched domains (this oracle's only kind), NICs across
        domains = _domains(topology, group)
        return len(domains) >= 2 and _balanced(domains)
    return True


def _nvls_bytes(group: Sequence[int], nbytes: float) -> float:
    """What NVLS moves per link and direction: S up to the switch, S back, and the member's
    own 1/n shard once more."""
    return (len(group) + 1) / len(group) * nbytes


def applicable(topology: Topology, op: Collective, group: Sequence[int]) -> list[Algorithm]:
    """The algorithms that apply to this op on this group, in AUTO's tie-break order."""
    return [a for a in ORDER if a in ALGORITHMS[op] and _applies(topology, a, group)]


def resolve(
    topology: Topology,
    op: "Collective | str",
    algorithm: "Algorithm | str",
    group: Sequence[int],
    nbytes: float,
    shape: Shape = Shape(),
) -> Algorithm:
    """The algorithm that runs: AUTO's choice, or the one named if it applies."""
    op, algorithm = Collective.parse(op), Algorithm.parse(algorithm)
    if algorithm == A.AUTO:
        return choose_algorithm(topology, op, group, nbytes, shape)
    allowed = applicable(topology, op, group)
    if algorithm not in allowed:
        names = ", ".join(["auto", *(a.label for a in allowed)])
        raise ProgramError(
            f"{op.label} with algorithm {algorithm.label} on a group of "
            f"{len(group)} ranks is not allowed; allowed: {names}"
        )
    return algorithm


def _ring_family(op: Collective, algorithm: Algorithm) -> bool:
    return algorithm == A.RING and op in (C.ALL_REDUCE, C.ALL_GATHER, C.REDUCE_SCATTER)


def _protocol_cost(
    topology: Topology, group: Sequence[int], protocol: int
) -> tuple[float, float, float]:
    """(launch factor, hop factor, bandwidth fraction) of a ring over this group."""
    launch, inside, across, share = _PROTOCOL_COST[protocol]
    return launch, across if len(_domains(topology, group)) > 1 else inside, share


def _protocol_latency(topology: Topology, launch: float, hop: float, steps: float) -> float:
    """A protocol's latency on top of the launch latency (`steps`: its Simple hop latency),
    never below 0."""
    if launch == 1.0 and hop == 1.0:
        return steps
    return max(0.0, topology.launch_latency * (launch - 1.0) + steps * hop)


def _ring_time(
    topology: Topology, op: Collective, group: tuple[int, ...], S: float, protocol: int
) -> float:
    """A ring of all-reduce, all-gather or reduce-scatter under `protocol` (not auto)."""
    p = _pattern(topology, op, A.RING, group)
    n = len(group)
    steps = (2 if op == C.ALL_REDUCE else 1) * (n - 1)
    per_byte = p.b[UP]
    if _channelled(topology, op, A.RING, group):
        per_byte = max((p.g - 1) / p.g * p.b_in, p.b_out / p.g)
    launch, hop, share = _protocol_cost(topology, group, protocol)
    latency = _protocol_latency(topology, launch, hop, steps * p.a[UP])
    return topology.launch_latency + latency + steps / n * S * per_byte / share


def choose_protocol(
    topology: Topology,
    op: "Collective | str",
    algorithm: "Algorithm | str",
    group: Sequence[int],
    nbytes: float,
) -> int:
    """NCCL's tuner: the protocol of the smallest time (simple on a tie) for rings of
    all-reduce, all-gather and reduce-scatter, unless the topology forces one; simple for every
    other algorithm."""
    op, algorithm = Collective.parse(op), Algorithm.parse(algorithm)
    has_protocols = _ring_family(op, algorithm) or algorithm == A.NCCL_TREE
    if not has_protocols or len(group) < 2:
        return SIMPLE
    if topology.protocol != AUTO_PROTOCOL:
        return topology.protocol
    group = tuple(group)

    def time(protocol: int) -> float:
        if algorithm == A.NCCL_TREE:
            latency, _, bandwidth = _nccl_tree(topology, group, nbytes, protocol)
            return topology.launch_latency + latency + bandwidth
        return _ring_time(topology, op, group, nbytes, protocol)

    best, best_time = SIMPLE, time(SIMPLE)
    for protocol in (LL128, LL):
        t = time(protocol)
        if t < best_time:
            best, best_time = protocol, t
    return best


def choose_algorithm(
    topology: Topology,
    op: "Collective | str",
    group: Sequence[int],
    nbytes: float,
    shape: Shape = Shape(),
) -> Algorithm:
    """AUTO: the smallest closed-form time; ties go to the earlier algorithm in ORDER."""
    op = Collective.parse(op)
    if A.NVLS in applicable(topology, op, group) and (
        _nvls_bytes(group, nbytes) / topology.nvls_bandwidth >= topology.nvls_latency
    ):  # NCCL's choice beyond small messages: once the bytes cost its start-up time
        return A.NVLS
    best, best_time = A.AUTO, float("inf")
    for algorithm in applicable(topology, op, group):
        if algorithm in EXPLICIT_ONLY:
            continue
        t = analytical_time(topology, op, algorithm, tuple(group), nbytes, shape)
        if t < best_time:  # strict: an equal time keeps the earlier algorithm
            best, best_time = algorithm, t
    return best


# --- patterns --------------------------------------------------------------------------------


def _ring(ranks: Sequence[int], fraction: float) -> list[tuple[int, int, float]]:
    n = len(ranks)
    return [(ranks[i], ranks[(i + 1) % n], fraction) for i in range(n)] if n > 1 else []


def _rings(rings: list[list[int]], fraction: float) -> list[tuple[int, int, float]]:
    return [flow for ring in rings for flow in _ring(ring, fraction)]


def _channels(domains: list[list[int]], fraction: float) -> list[tuple[int, int, float]]:
    """g rings (channels, g members per domain) each carrying fraction/g round the domains in
    order; channel c enters every domain at its c-th member, so each member leaves its domain
    (over its own NIC) in exactly one channel, as NCCL lays rings on rail-optimised nodes."""
    g = len(domains[0])
    orders = [[d[(c + j) % g] for d in domains for j in range(g)] for c in range(g)]
    return _rings(orders, fraction / g)


def _tree_flows(group: Sequence[int]) -> list[tuple[int, int, float]]:
    """Child -> parent in two heap-ordered binary trees; tree 2 mirrors positions (q = n-1-p)."""
    n = len(group)
    tree1 = [(group[p], group[(p - 1) // 2], 0.5) for p in range(1, n)]
    tree2 = [(group[n - 1 - q], group[n - 1 - (q - 1) // 2], 0.5) for q in range(1, n)]
    return tree1 + tree2


def _exchange(group: Sequence[int], k: int) -> list[tuple[int, int, float]]:
    """Halving-doubling step k: every position swaps S/2^(k+1) with position xor 2^k."""
    return [(group[p], group[p ^ (1 << k)], 1.0 / (1 << (k + 1))) for p in range(len(group))]


def _binomial(group: Sequence[int]) -> list[list[tuple[int, int, float]]]:
    """Binomial broadcast: in step k every position p < 2^k sends S to p + 2^k (if it exists)."""
    n = len(group)
    return [
        [(group[p], group[p + (1 << k)], 1.0) for p in range(1 << k) if p + (1 << k) < n]
        for k in range((n - 1).bit_length())
    ]


def _reverse(flows: list[tuple[int, int, float]]) -> list[tuple[int, int, float]]:
    return [(dst, src, f) for src, dst, f in flows]


_Steps = list[tuple[int, int, list[tuple[int, int, float]]]]  # (latency steps, level, flows)


def _steps(
    topology: Topology, op: Collective, algorithm: Algorithm, group: tuple[int, ...]
) -> tuple[_Steps, int, int]:
    """The algorithm's steps, plus g and m (members per domain, domains) for hierarchical."""
    if algorithm == A.HIERARCHICAL:
        return _hierarchical(topology, op, group)
    if algorithm == A.HALVING_DOUBLING:
        return _halving_doubling(op, group), 1, 1
    n = len(group)
    if op in (C.ALL_REDUCE, C.ALL_GATHER, C.REDUCE_SCATTER) and algorithm == A.RING:
        steps = (2 if op == C.ALL_REDUCE else 1) * (n - 1)
        if not _channelled(topology, op, algorithm, group):
            return [(steps, UP, _ring(group, steps / n))], 1, 1
        domains = _domains(topology, group)
        return [(steps, UP, _channels(domains, steps / n))], len(domains[0]), len(domains)
    if op == C.ALL_REDUCE:  # tree: reduce up both trees, then broadcast down them
        h, up = n.bit_length() - 1, _tree_flows(group)
        return [(h, UP, up), (h, UP, _reverse(up))], 1, 1
    if op == C.ALL_TO_ALL:  # direct
        pairs = [(s, d, 1.0 / n) for s in group for d in group if s != d]
        return [(n - 1, UP, pairs)], 1, 1
    if algorithm == A.RING:  # pipelined chain from the root (reduce: towards it)
        chain = [(group[i], group[i + 1], 1.0) for i in range(n - 1)]
        return [(n - 1, UP, chain if op == C.BROADCAST else _reverse(chain))], 1, 1
    tree = [(1, UP, flows) for flows in _binomial(group)]
    if op == C.BROADCAST:
        return tree, 1, 1
    return [(1, UP, _reverse(flows)) for _, _, flows in tree[::-1]], 1, 1


def _halving_doubling(op: Collective, group: tuple[int, ...]) -> _Steps:
    """Reduce-scatter: k = 0..log2(n)-1; all-gather: the same steps in reverse order."""
    scatter = [(1, UP, _exchange(group, k)) for k in range(len(group).bit_length() - 1)]
    if op == C.REDUCE_SCATTER:
        return scatter
    if op == C.ALL_GATHER:
        return scatter[::-1]
    return scatter + scatter[::-1]


def _hierarchical(
    topology: Topology, op: Collective, group: tuple[int, ...]
) -> tuple[_Steps, int, int]:
    """Rings inside domains and, among ranks of one local index, across them.

    all-reduce: reduce-scatter inside, all-reduce of the S/g shard across, all-gather inside;
    reduce-scatter: inside then across; all-gather: across then inside (the reverse).
    """
    domains = _domains(topology, group)
    g, m = len(domains[0]), len(domains)
    across = [[d[j] for d in domains] for j in range(g)]
    inside = (g - 1, UP, _rings(domains, (g - 1) / g))
    if op == C.ALL_REDUCE:
        shard = (2 * (m - 1), OUT, _rings(across, 2 * (m - 1) / m / g))
        return [inside, shard, inside], g, m
    shard = (m - 1, OUT, _rings(across, (m - 1) / m / g))
    return ([inside, shard] if op == C.REDUCE_SCATTER else [shard, inside]), g, m


@lru_cache(maxsize=4096)
def _pattern(
    topology: Topology, op: Collective, algorithm: Algorithm, group: tuple[int, ...]
) -> _Pattern:
    raw, g, m = _steps(topology, op, algorithm, group)
    steps = tuple(_Step(s, level, tuple(flows)) for s, level, flows in raw if flows)
    a, b = [0.0, 0.0], [0.0, 0.0]
    b_class = {True: 0.0, False: 0.0}  # keyed by "inside one domain"
    for step in steps:
        for src, dst, _ in step.flows:
            seconds_per_byte = 1.0 / topology.bandwidth(src, dst)
            inside = topology.path_class(src, dst) == SAME_DOMAIN
            a[step.level] = max(a[step.level], topology.latency(src, dst))
            b[step.level] = max(b[step.level], seconds_per_byte)
            b_class[inside] = max(b_class[inside], seconds_per_byte)
    return _Pattern(steps, (a[UP], a[OUT]), (b[UP], b[OUT]), b_class[True], b_class[False], g, m)


# --- closed forms and phases -----------------------------------------------------------------


@lru_cache(maxsize=4096)
def _direct_seconds_per_byte(topology: Topology, group: tuple[int, ...]) -> float:
    """All-to-all: max over ranks and path classes (scale-up, scale-out) of the share of S the
    rank sends over that class times the class's b (1 / its smallest path bandwidth)."""
    p = _pattern(topology, C.ALL_TO_ALL, A.DIRECT, group)
    share: dict[tuple[int, bool], float] = {}  # (rank, inside one domain) -> share of S
    for src, dst, fraction in p.steps[0].flows:  # one step: every ordered pair
        inside = topology.path_class(src, dst) == SAME_DOMAIN
        share[src, inside] = share.get((src, inside), 0.0) + fraction
    return max(x * (p.b_in if inside else p.b_out) for (_, inside), x in share.items())


def _closed_form(
    topology: Topology,
    op: Collective,
    algorithm: Algorithm,
    group: tuple[int, ...],
    nbytes: float,
    shape: Shape = Shape(),
    protocol: int = AUTO_PROTOCOL,
) -> float:
    """The table of docs/engine.md, term by term; rings under `protocol` (auto: the one
    choose_protocol gives at these bytes)."""
    n, S, L = len(group), nbytes, topology.launch_latency
    if n == 1:
        return L
    if _ring_family(op, algorithm):
        if protocol == AUTO_PROTOCOL:
            protocol = choose_protocol(topology, op, algorithm, group, S)
        return _ring_time(topology, op, group, S, protocol)
    if algorithm in (A.LOW_LATENCY, A.NODE_FORWARDED):
        latency, flows = _expert_all_to_all(topology, algorithm, group, S, shape)
        return L + latency + _busiest_link(topology, flows)
    if algorithm == A.NVLS:
        return L + topology.nvls_latency + _nvls_bytes(group, S) / topology.nvls_bandwidth
    if algorithm == A.NVLS_TREE:
        latency, _, bandwidth = _nvls_tree(topology, group, S)
        return L + latency + bandwidth
    if algorithm == A.NCCL_TREE:
        if protocol == AUTO_PROTOCOL:
            protocol = choose_protocol(topology, op, algorithm, group, S)
        latency, _, bandwidth = _nccl_tree(topology, group, S, protocol)
        return L + latency + bandwidth
    p = _pattern(topology, op, algorithm, group)
    (a, a_o), (b, b_o), g, m = p.a, p.b, p.g, p.m
    log2n = h = n.bit_length() - 1  # floor(log2 n); exact log2 n where n is a power of two
    ceil_log2n = (n - 1).bit_length()
    if algorithm == A.HIERARCHICAL:
        k = 2 if op == C.ALL_REDUCE else 1
        return (
            L
            + k * (g - 1) * a
            + k * (g - 1) / g * S * b
            + k * (m - 1) * a_o
            + k * (m - 1) / m * (S / g) * b_o
        )
    if op == C.ALL_REDUCE:
        if algorithm == A.TREE:  # on 2 ranks each sends one half only
            return L + 2 * h * a + 2 * (0.5 if n == 2 else 1.0) * S * b
        return L + 2 * log2n * a + 2 * (n - 1) / n * S * b
    if op in (C.ALL_GATHER, C.REDUCE_SCATTER):  # halving-doubling
        return L + log2n * a + (n - 1) / n * S * b
    if op == C.ALL_TO_ALL:
        return L + (n - 1) * a + S * _direct_seconds_per_byte(topology, group)
    if algorithm == A.RING:
        return L + (n - 1) * a + S * b
    return L + ceil_log2n * (a + S * b)


def _expert_all_to_all(
    topology: Topology, algorithm: Algorithm, group: tuple[int, ...], S: float, shape: Shape
) -> Phase:
    """The one phase of a low-latency or node-forwarded all-to-all: its latency and flows.

    Low-latency: every rank writes S/n to every peer at once. A message of s bytes (one per
    peer if message_bytes is 0) is charged s + overhead x bandwidth on the scale-up path (a
    load/store write pays a fixed cost per message) and max(s, NIC bandwidth / message rate)
    through the NIC (the NIC's message rate caps small messages); latency: one hop.
    Node-forwarded (balanced domains of g, m domains): each rank sends S / (m x fanout) to its
    same-position peer in every other domain, and S / (g x forward_efficiency) to each other
    member of its own domain (forwarded copies and its own); both at once; latency: one
    scale-out hop plus one scale-up hop.
    """
    n, t = len(group), topology
    inside = {(s, d): t.path_class(s, d) == SAME_DOMAIN for s in group for d in group if s != d}
    if algorithm == A.LOW_LATENCY:
        per_peer = S / n
        messages = per_peer / shape.message_bytes if shape.message_bytes > 0 else 1.0
        up = per_peer + messages * t.message_overhead * t.scale_up_bandwidth
        out = per_peer
        if t.nic_message_rate > 0:
            out = max(per_peer, messages * t.scale_out_bandwidth / t.nic_message_rate)
        flows = [(s, d, up if within else out) for (s, d), within in inside.items()]
        latency = max(t.latency(s, d) for s, d in inside)
        return latency, flows
    domains = _domains(t, group)
    g, m = len(domains[0]), len(domains)
    fanout = min(max(shape.fanout, 1.0), g)
    flows = []
    for d, members in enumerate(domains):
        for j, src in enumerate(members):
            flows += [(src, dst, S / g / t.forward_efficiency) for dst in members if dst != src]
            flows += [
                (src, other[j], S / (m * fanout)) for e, other in enumerate(domains) if e != d
            ]
    latency = (t.scale_up_latency if g > 1 else 0.0) + (t.scale_out_latency if m > 1 else 0.0)
    return latency, flows


def _nvls_tree(
    topology: Topology, group: tuple[int, ...], S: float
) -> tuple[float, list[Flow], float]:
    """NVLS-tree (NCCL's NVLSTree) over m >= 2 balanced domains of g: every domain's switch
    reduces (nvls), member j of each domain all-reduces the j-th S/g shard with its peers over a
    double binary tree through its NIC, the switch multicasts the result, all three pipelined
    by chunks. Returns its latency (start-up and 2 floor(log2 m) tree hops), its one phase's
    flows (the trees' reduce and broadcast at once, and each domain's nvls ring as in `phases`)
    and the closed form's bandwidth term: the slower of the switch and the NICs."""
    domains = _domains(topology, group)
    g, m = len(domains[0]), len(domains)
    trees: list[Flow] = []
    for j in range(g):
        up = [(s, d, f * S / g) for s, d, f in _tree_flows([d[j] for d in domains])]
        trees += up + [(d, s, b) for s, d, b in up]
    a_out = max(topology.latency(s, d) for s, d, _ in trees)
    b_out = max(1.0 / topology.bandwidth(s, d) for s, d, _ in trees)
    moved = (g + 1) / g * S  # per member and direction through its switch links
    scale = topology.scale_up_bandwidth / topology.nvls_bandwidth
    switch = [(r, d[(i + 1) % g], moved * scale) for d in domains for i, r in enumerate(d)]
    half = 0.5 if m == 2 else 1.0  # two domains: each tree edge carries one half only
    bandwidth = max(moved / topology.nvls_bandwidth, 2 * half * S / g * b_out)
    latency = topology.nvls_latency + 2 * (m.bit_length() - 1) * a_out
    return latency, trees + switch, bandwidth


# NCCL's tree tuner (NVIDIA/nccl src/graph/tuning.cc) against the ring's Simple, podsim's plain
# model: (factor on the launch latency, on the hop latency inside a domain, across domains,
# fraction of the bandwidth). Base latency 6.8 / 14.0 / 8.4 us (LL / LL128 / Simple) over the
# ring's 8.4; per hop 0.6 / 1.25 / 4.0 us over NVLink (ring Simple: 3.4), 5.0 / 8.5 / 14 us over
# the network (ring Simple: 14); bandwidth: 0.92 on every tree all-reduce, times 1/3.8 for LL
# and 120/128 for LL128 across nodes.
_TREE_PROTOCOL_COST = {
    LL: (6.8 / 8.4, 0.6 / 3.4, 5.0 / 14.0, 0.92 / 3.8),
    LL128: (14.0 / 8.4, 1.25 / 3.4, 8.5 / 14.0, 0.92 * 120.0 / 128.0),
    SIMPLE: (1.0, 4.0 / 3.4, 1.0, 0.92),
}


def _nccl_tree(
    topology: Topology, group: tuple[int, ...], S: float, protocol: int
) -> tuple[float, list[Flow], float]:
    """NCCL's Tree all-reduce over m >= 2 balanced domains of g: channel j carries S/g; a chain
    from member j through its domain (j, j+1, ..., j-1) reduces it to member j, the members j
    of all domains reduce and broadcast it over a double binary tree through their NICs (each
    tree half of it), the chain broadcasts it back, all pipelined by chunks. Returns the latency
    after the launch (2 (g-1) chain hops, 2 floor(log2 m) tree hops, under `protocol`), the one
    phase's flows (the bytes on the wire) and the bandwidth term: the slower of the scale-up
    links (2 (g-1)/g S per member) and the NICs (2 c S/g, c = 1/2 on two domains)."""
    domains = _domains(topology, group)
    g, m = len(domains[0]), len(domains)
    launch, inside, across, share = _TREE_PROTOCOL_COST[protocol]
    chains: list[Flow] = []
    for d in domains:
        for j in range(g):
            for i in range(g - 1):
                near, far = d[(j + i) % g], d[(j + i + 1) % g]
                chains += [(far, near, S / g / share), (near, far, S / g / share)]
    trees: list[Flow] = []
    for j in range(g):
        up = [(s, d, f * S / g / share) for s, d, f in _tree_flows([d[j] for d in domains])]
        trees += up + [(d, s, b) for s, d, b in up]
    a_up = max((topology.latency(s, d) for s, d, _ in chains), default=0.0)
    b_up = max((1.0 / topology.bandwidth(s, d) for s, d, _ in chains), default=0.0)
    a_out = max(topology.latency(s, d) for s, d, _ in trees)
    b_out = max(1.0 / topology.bandwidth(s, d) for s, d, _ in trees)
    half = 0.5 if m == 2 else 1.0  # two domains: each tree edge carries one half only
    bandwidth = max(2 * (g - 1) / g * S * b_up, 2 * half * S / g * b_out) / share
    hops = 2 * (g - 1) * a_up * inside + 2 * (m.bit_length() - 1) * a_out * across
    latency = max(0.0, topology.launch_latency * (launch - 1.0) + hops)
    return latency, chains + trees, bandwidth


def _busiest_link(topology: Topology, flows: list[Flow]) -> float:
    """Seconds the most loaded link of these concurrent flows needs, every flow at its path's
    bandwidth: each rank's outgoing bytes per path class over that class's slowest path."""
    load: dict[tuple[int, bool], float] = {}
    slowest: dict[bool, float] = {}
    for src, dst, nbytes in flows:
        inside = topology.path_class(src, dst) == SAME_DOMAIN
        load[src, inside] = load.get((src, inside), 0.0) + nbytes
        slowest[inside] = max(slowest.get(inside, 0.0), 1.0 / topology.bandwidth(src, dst))
    return max((x * slowest[inside] for (_, inside), x in load.items()), default=0.0)


def _group(group_ranks: Sequence[int]) -> tuple[int, ...]:
    group = tuple(int(r) for r in group_ranks)
    if not group or len(set(group)) != len(group):
        raise ProgramError(f"a collective needs a group of distinct ranks, got {list(group)}")
    return group


def collective_time(
    topology: Topology,
    op: "Collective | str",
    algorithm: "Algorithm | str",
    group_ranks: Sequence[int],
    nbytes: float,
    shape: Shape = Shape(),
    protocol: int = AUTO_PROTOCOL,
) -> float:
    """The analytical network's time of one collective alone, launch latency included: the
    closed form, each phase's bandwidth term at least what its traffic needs on the busiest pod
    link it crosses (analytical_time). `protocol`: auto resolves it at these bytes."""
    group = _group(group_ranks)
    op = Collective.parse(op)
    algorithm = resolve(topology, op, algorithm, group, nbytes, shape)
    return analytical_time(topology, op, algorithm, group, float(nbytes), shape, protocol=protocol)


def phases(
    topology: Topology,
    op: "Collective | str",
    algorithm: "Algorithm | str",
    group_ranks: Sequence[int],
    nbytes: float,
    shape: Shape = Shape(),
) -> list[Phase]:
    """The phases contention mode runs one after the other (launch latency not included)."""
    group = _group(group_ranks)
    op = Collective.parse(op)
    algorithm = resolve(topology, op, algorithm, group, nbytes, shape)
    if len(group) == 1:
        return []
    if algorithm in (A.LOW_LATENCY, A.NODE_FORWARDED):
        return [_expert_all_to_all(topology, algorithm, group, float(nbytes), shape)]
    if algorithm == A.NVLS_TREE:
        latency, flows, _ = _nvls_tree(topology, group, float(nbytes))
        return [(latency, flows)]
    if algorithm == A.NCCL_TREE:
        protocol = choose_protocol(topology, op, algorithm, group, nbytes)
        latency, flows, _ = _nccl_tree(topology, group, float(nbytes), protocol)
        return [(latency, flows)]
    if algorithm == A.NVLS:  # each member's bytes once up and once down its switch links
        moved = _nvls_bytes(group, nbytes) * topology.scale_up_bandwidth / topology.nvls_bandwidth
        return [
            (
                topology.nvls_latency,
                [(r, group[(i + 1) % len(group)], moved) for i, r in enumerate(group)],
            )
        ]
    p = _pattern(topology, op, algorithm, group)
    launch, hop, share = _protocol_cost(
        topology, group, choose_protocol(topology, op, algorithm, group, nbytes)
    )
    return [  # the bytes on the wire: the protocol's flags included
        (
            _protocol_latency(topology, launch, hop, s.steps * p.a[s.level]),
            [(src, dst, f * nbytes / share) for src, dst, f in s.flows],
        )
        for s in p.steps
    ]


def transfer_time(topology: Topology, src: int, dst: int, nbytes: float) -> float:
    """Send/recv: L + a + S b over the one path."""
    b = 1.0 / topology.bandwidth(src, dst)
    return topology.launch_latency + topology.latency(src, dst) + nbytes * b


def transfer_phases(topology: Topology, src: int, dst: int, nbytes: float) -> list[Phase]:
    return [(topology.latency(src, dst), [(src, dst, float(nbytes))])]


# --- pod links in the analytical network (docs/engine.md, "Pod links") -----------------------

PodLoads = list[dict[Link, float]]  # per phase: bytes over each pod link it crosses


def spans_pods(topology: Topology, group: Sequence[int]) -> bool:
    return len({topology.pod(r) for r in group}) > 1


def pod_loads(
    topology: Topology,
    op: Collective,
    algorithm: Algorithm,
    group: tuple[int, ...],
    nbytes: float,
    shape: Shape = Shape(),
) -> PodLoads:
    """Per phase (the phases of `phases`, in order): the bytes the group pushes over each pod
    uplink ("pod_up", p) and downlink ("pod_down", p) it crosses; [] inside one pod. A
    low-latency all-to-all moves S/n to every peer (as direct does; its per-message charges are
    NIC time, not bytes); a node-forwarded one crosses pods only with its rail copies."""
    if len(group) < 2 or not spans_pods(topology, group):
        return []
    if algorithm == A.NODE_FORWARDED:
        _, flows = _expert_all_to_all(topology, algorithm, group, 1.0, shape)
        steps = [flows]
    elif algorithm == A.NVLS_TREE:  # only the trees cross domains, hence pods
        steps = [_nvls_tree(topology, group, 1.0)[1]]
    elif algorithm == A.NCCL_TREE:  # only the trees cross domains; flags included
        protocol = choose_protocol(topology, op, algorithm, group, nbytes)
        steps = [_nccl_tree(topology, group, 1.0, protocol)[1]]
    else:
        pattern = algorithm if algorithm != A.LOW_LATENCY else A.DIRECT
        steps = [step.flows for step in _pattern(topology, op, pattern, group).steps]
        # a protocol's flags travel too
        share = _protocol_cost(
            topology, group, choose_protocol(topology, op, algorithm, group, nbytes)
        )[2]
        steps = [[(src, dst, f / share) for src, dst, f in flows] for flows in steps]
    out: PodLoads = []
    for flows in steps:
        loads: dict[Link, float] = {}
        for src, dst, fraction in flows:
            a, b = topology.pod(src), topology.pod(dst)
            if a != b:
                loads[("pod_up", a)] = loads.get(("pod_up", a), 0.0) + fraction * nbytes
                loads[("pod_down", b)] = loads.get(("pod_down", b), 0.0) + fraction * nbytes
        out.append(loads)
    return out


def pod_seconds(topology: Topology, loads: PodLoads) -> list[float]:
    """Per phase: the seconds its busiest pod link needs (bytes / capacity)."""
    return [
        max((b / topology.capacity(link) for link, b in phase.items()), default=0.0)
        for phase in loads
    ]


def _phase_bandwidth(
    topology: Topology,
    op: Collective,
    algorithm: Algorithm,
    group: tuple[int, ...],
    nbytes: float,
    shape: Shape = Shape(),
) -> list[float]:
    """The bandwidth term the closed form charges each phase."""
    if algorithm in (A.LOW_LATENCY, A.NODE_FORWARDED):
        # One phase: everything but the launch and the hops (the per-message charges are link
        # time too), so that the time is the larger of the link terms and the pod link's.
        hops, _ = _expert_all_to_all(topology, algorithm, group, nbytes, shape)
        whole = _closed_form(topology, op, algorithm, group, nbytes, shape)
        return [whole - topology.launch_latency - hops]
    if algorithm == A.NVLS_TREE:  # one phase
        return [_nvls_tree(topology, group, nbytes)[2]]
    if algorithm == A.NCCL_TREE:  # one phase
        protocol = choose_protocol(topology, op, algorithm, group, nbytes)
        return [_nccl_tree(topology, group, nbytes, protocol)[2]]
    p = _pattern(topology, op, algorithm, group)
    if len(p.steps) <= 1:
        protocol = choose_protocol(topology, op, algorithm, group, nbytes)
        whole = _closed_form(topology, op, algorithm, group, nbytes, shape, protocol)
        return [whole - _closed_form(topology, op, algorithm, group, 0.0, shape, protocol)]
    out = []
    for step in p.steps:
        sent: dict[int, float] = {}
        for src, _, fraction in step.flows:
            sent[src] = sent.get(src, 0.0) + fraction
        # Hierarchical: each level's own b; flat algorithms: the group's slowest path.
        out.append(max(sent.values()) * nbytes * p.b[step.level])
    return out


def analytical_time(
    topology: Topology,
    op: Collective,
    algorithm: Algorithm,
    group: tuple[int, ...],
    nbytes: float,
    shape: Shape = Shape(),
    seconds: Sequence[float] | None = None,
    protocol: int = AUTO_PROTOCOL,
) -> float:
    """The closed form, except that phase k's bandwidth term is at least seconds[k], the time
    its traffic (and any concurrent copies counted by the caller) needs on the busiest pod link
    it crosses; by default the group's own traffic alone. `protocol`: auto resolves it at these
    bytes; pass the resolved one to cost other bytes under the same protocol."""
    base = _closed_form(topology, op, algorithm, group, nbytes, shape, protocol)
    if len(group) < 2 or not spans_pods(topology, group):
        return base
    if seconds is None:
        seconds = pod_seconds(topology, pod_loads(topology, op, algorithm, group, nbytes, shape))
    bandwidth = _phase_bandwidth(topology, op, algorithm, group, nbytes, shape)
    return base + sum(max(0.0, u - b) for u, b in zip(seconds, bandwidth, strict=False))
