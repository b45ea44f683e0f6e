"""The result of one training step: what the engine measured, with FLOP and memory accounting.

The breakdown follows the step's critical path (critical_path below); nothing is recomputed
later.
"""

import bisect
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from podsim.costs.energy import training_energy
from podsim.costs.flops import flops_per_step
from podsim.costs.kernels import KernelModel, provenance_summary
from podsim.engine.core import Timeline
from podsim.lowering.layout import COMPUTE, ROLES, Template, group_tables, run_starts
from podsim.lowering.program import Kind
from podsim.lowering.training import LoweredStep
from podsim.version import __version__

LONG_RUN_KEYS = (
    "goodput",
    "interruptions",
    "time_to_train_p50_s",
    "time_to_train_p90_s",
    "checkpoint_interval_s",
    "deadline_probability",
)


COMM_KINDS = ("tp", "cp", "ep", "pp", "dp")


@dataclass(frozen=True)
class Breakdown:
    """Where the step time goes, over the step's critical path (seconds): compute, exposed
    communication, pipeline bubble and straggler wait add up to the step time. Finer parts:
    `exposed_comm_by_kind_s` splits exposed_comm_s by parallelism (tp, cp, ep, pp, dp), and
    `optimizer_s` is the part of compute_s spent in the optimizer update."""

    compute_s: float
    exposed_comm_s: float
    bubble_s: float
    straggler_s: float = 0.0
    optimizer_s: float = 0.0
    exposed_comm_by_kind_s: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(COMM_KINDS, 0.0)
    )


@dataclass(frozen=True)
class TrainResult:
    step_time_s: float
    tokens_per_s: float
    mfu: float
    hfu: float
    model_tflops_per_device: float
    hardware_tflops_per_device: float
    memory_per_device_bytes: float
    fits_in_memory: bool
    breakdown: Breakdown
    devices: int
    virtual_stages: int
    memory: dict[str, float]
    plan: dict[str, Any]
    cluster: dict[str, Any]
    network: str
    ops: int
    events: int
    time_to_train_s: float | None = None
    device_hours: float | None = None
    step_time_p50_s: float | None = None  # with [noise]: over the simulated steps
    step_time_p99_s: float | None = None
    steps_simulated: int = 1
    long_run: dict[str, Any] | None = None  # with [failures]: the Monte Carlo of the whole run
    noise: dict[str, Any] | None = None  # with [noise]: the model, its seed included
    # "symmetric": the noise-free step ran on one representative rank per stage (exactly equal
    # to a run of every rank); "full": every rank (noisy steps always are)
    simulation: str = "full"
    simulation_note: str | None = None  # why the noise-free step could not run symmetric
    version: str = __version__  # of podsim, so that a result can be re-run
    # The peak `mfu` and `hfu` are against (the PaLM / Megatron convention: the dense BF16 peak,
    # also for FP8 training, as DeepSeek-V3's 43.73% is against 989 TFLOP/s). FP8 GEMMs run up
    # to twice that peak, so FP8 plans can exceed 1 against it; `mfu_precision_peak` and
    # `hfu_precision_peak` are against the dense peak of the precision the GEMMs run in
    # (`gemm_precision`, `precision_peak_flops_per_s`), which no kernel exceeds.
    mfu_peak_flops_per_s: float | None = None
    mfu_peak_precision: str = "bf16"
    gemm_precision: str = "bf16"
    precision_peak_flops_per_s: float | None = None
    mfu_precision_peak: float | None = None
    hfu_precision_peak: float | None = None
    # Where each kernel class's efficiency comes from on this chip at the GEMM precision
    # (podsim.costs.kernels.PROVENANCES), and that in one line
    efficiency_provenance: dict[str, str] | None = None
    efficiencies: str | None = None
    # Energy and cost (podsim.costs.energy; docs/training.md, "Energy and cost"): the all-in
    # power per device (W, before PUE), the facility energy of a step (J), and with
    # train.tokens the run's energy (J and MWh) and cost (device_hours x price, USD)
    power_per_device_w: float | None = None
    pue: float | None = None
    price_per_device_hour: float | None = None
    energy_per_step_j: float | None = None
    energy_to_train_j: float | None = None
    energy_to_train_mwh: float | None = None
    cost_to_train_usd: float | None = None
    # The software stack that ran the plan (podsim.plans.stack: its preset and every setting)
    stack: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if v is not None}
        for key in LONG_RUN_KEYS:  # the contract's keys, at the top level
            if self.long_run is not None and self.long_run.get(key) is not None:
                out[key] = self.long_run[key]
        return out


def _kind_of(template: Template, columns: dict[str, list], j: int) -> str:
    """An op's category: compute, optimizer, or the parallelism its communication serves."""
    kind = columns["kind"][j]
    if kind == Kind.COMPUTE:
        return "optimizer" if template.name(j) == "optimizer" else "compute"
    if kind == Kind.COLLECTIVE:
        return ROLES[columns["role"][j] - 1]
    if kind in (Kind.SEND, Kind.RECV):
        return "pp"
    return "wait"


class _StepGraph:
    """Who waits for whom in a lowered step, from the stage templates (every rank of a stage
    runs its stage's template; program op = base(rank) + template index): an op's stream
    predecessor and deps, a collective's members (the same template op on every rank of its
    group) and a transfer's partner (the k-th send to a peer stage with a tag meets the k-th
    receive from this stage with that tag). Read from the templates' columns, as lists (one op
    at a time is asked for).

    `symmetric`: the timeline is of the symmetric program (each stage's template on its first
    rank only, which every rank of the stage runs exactly like): a collective's other members
    are not in it, and its partners are the other stages' first ranks."""

    def __init__(self, lowered: LoweredStep, symmetric: bool = False) -> None:
        self.layout, self.templates = lowered.layout, lowered.templates
        self.symmetric = symmetric
        size = 1 if symmetric else self.layout.stage_size  # ranks of a stage in the program
        arrays = [t.columns() for t in self.templates]
        self.lengths = [len(c["kind"]) for c in arrays]
        self.stage_base = np.concatenate([[0], np.cumsum(self.lengths) * size])[:-1].astype(
            np.int64
        )
        # What the walk reads once per op, as Python values (the path is walked op by op).
        self.bases: list[int] = self.stage_base.tolist()
        self.stage_size = self.layout.stage_size
        self.columns = [
            {name: c[name].tolist() for name in ("kind", "role", "stage_offset", "collective")}
            for c in arrays
        ]
        self.deps = [(run_starts(c["dep_counts"]).tolist(), c["dep_flat"].tolist()) for c in arrays]
        self.dep_counts = [c["dep_counts"].tolist() for c in arrays]
        self.prev = [_stream_predecessors(c["stream"]) for c in arrays]
        self.arrays = arrays
        self.transfers = [
            np.flatnonzero((c["kind"] == Kind.SEND) | (c["kind"] == Kind.RECV)) for c in arrays
        ]
        self.partner_index = [self._channels(stage) for stage in range(len(arrays))]
        tables = group_tables(self.layout, lowered.ep, lowered.etp)
        self.groups = {
            role: (key, np.concatenate([[0], np.cumsum(counts)]), order)
            for role, (key, counts, order) in tables.items()
        }

    def _channels(self, stage: int) -> tuple[dict[tuple, list[int]], list[int]]:
        """A stage's sends and receives by (kind, peer stage, tag), in order, and each op's
        number in its channel (-1 if not a send or receive)."""
        cols, pp = self.arrays[stage], self.layout.pp
        j = self.transfers[stage]  # their tags are in the `collective` column
        kind, peer, tag = (
            cols["kind"][j],
            (stage + cols["stage_offset"][j]) % pp,
            cols["collective"][j],
        )
        key = (kind.astype(np.int64) * pp + peer) * 256 + tag  # tags are small and >= 0
        order = np.argsort(key, kind="stable")  # by channel, each in op order
        ranked = key[order]
        starts = np.concatenate([[True], ranked[1:] != ranked[:-1]])[: len(order)]
        first, group = np.flatnonzero(starts), np.cumsum(starts) - 1
        number = np.full(self.lengths[stage], -1, np.int64)
        number[j[order]] = np.arange(len(order)) - first[group]
        ends = np.append(first, len(order))[1:]
        channels = {
            (int(kind[order[a]]), int(peer[order[a]]), int(tag[order[a]])): j[order[a:b]].tolist()
            for a, b in zip(first.tolist(), ends.tolist(), strict=True)
        }
        return channels, number.tolist()

    def locate(self, op: int) -> tuple[int, int]:
        """(rank, template index) of a program op."""
        stage = bisect.bisect_right(self.bases, op) - 1
        local, j = divmod(op - self.bases[stage], self.lengths[stage])
        return stage * self.stage_size + local, j

    def op(self, rank: int, j: int) -> int:
        stage, local = divmod(rank, self.stage_size)
        return self.bases[stage] + local * self.lengths[stage] + j

    def participants(self, rank: int, j: int) -> list[tuple[int, int]]:
        """The (rank, template index) of every op that starts together with this one."""
        stage = rank // self.stage_size
        cols = self.columns[stage]
        kind = cols["kind"][j]
        if kind == Kind.COLLECTIVE:
            if self.symmetric:  # the representative stands for its group's members
                return [(rank, j)]
            key, offsets, order = self.groups[ROLES[cols["role"][j] - 1]]
            g = int(key[rank])
            return [(int(m), j) for m in order[offsets[g] : offsets[g + 1]]]
        if kind in (Kind.SEND, Kind.RECV):
            peer_stage = (stage + cols["stage_offset"][j]) % self.layout.pp
            peer = rank + (peer_stage - stage) * self.stage_size
            other = Kind.RECV if kind == Kind.SEND else Kind.SEND
            number = self.partner_index[stage][1]
            tag = cols["collective"][j]
            theirs = self.partner_index[peer_stage][0].get((int(other), stage, tag), [])
            k = number[j]
            return [(rank, j)] + ([(peer, theirs[k])] if k < len(theirs) else [])
        return [(rank, j)]

    def prerequisites(self, rank: int, j: int) -> list[int]:
        stage = rank // self.stage_size
        starts, flat = self.deps[stage]
        before = flat[starts[j] : starts[j] + self.dep_counts[stage][j]]
        if self.prev[stage][j] >= 0:
            before.append(self.prev[stage][j])
        return [self.op(rank, d) for d in before]


def _stream_predecessors(stream: np.ndarray) -> list[int]:
    """Per op: the previous op on its stream (-1 if none)."""
    order = np.argsort(stream, kind="stable")
    before = np.concatenate([[-1], order[:-1]])
    sorted_streams = stream[order]
    first = np.concatenate([[True], sorted_streams[1:] != sorted_streams[:-1]])
    prev = np.empty(len(stream), np.int64)
    prev[order] = np.where(first, -1, before)
    return prev.tolist()


def _is_symmetric(lowered: LoweredStep, timeline: Timeline) -> bool:
    """Whether the timeline is of the symmetric program (fewer ops than every rank's)."""
    return len(timeline.end) != lowered.num_ops


def critical_path(
    lowered: LoweredStep, timeline: Timeline, graph: "_StepGraph | None" = None
) -> list[int]:
    """The step's critical path, last op first: from the op that ends last, repeatedly the
    latest-ending prerequisite (stream predecessor or dep) of the op or of any op that started
    with it (a collective's members, a transfer's partner): the chain that set the step time."""
    graph = graph or _StepGraph(lowered, _is_symmetric(lowered, timeline))
    end, start = timeline.end, timeline.start
    current = int(np.argmax(end))
    path = [current]
    while True:
        rank, j = graph.locate(current)
        candidates = [
            p for r, jj in graph.participants(rank, j) for p in graph.prerequisites(r, jj)
        ]
        if not candidates:
            return path
        best = max(candidates, key=lambda p: (end[p], -p))
        if end[best] > start[current] * (1 + 1e-12) + 1e-15:  # cannot happen; stop safely
            return path
        current = best
        path.append(current)


def breakdown(lowered: LoweredStep, timeline: Timeline) -> Breakdown:
    """The step over its critical path (critical_path): each op on it contributes its time
    (start to end) to its category: communication by parallelism (tp, cp, ep, pp: pipeline
    sends and receives, dp: gradient reduction and ZeRO gathers) is exposed communication; the
    optimizer update is compute (optimizer_s). Compute on the path counts up to the compute the
    device that ends the step runs itself; compute beyond that is other stages' work it waits
    for, and with any gap on the path it is the pipeline bubble, so the parts add up to the
    step time."""
    graph = _StepGraph(lowered, _is_symmetric(lowered, timeline))
    path = critical_path(lowered, timeline, graph)
    start, end = timeline.start, timeline.end
    totals: dict[str, float] = {}
    for op in path:
        rank, j = graph.locate(op)
        stage = rank // graph.layout.stage_size
        kind = _kind_of(graph.templates[stage], graph.columns[stage], j)
        totals[kind] = totals.get(kind, 0.0) + float(end[op] - start[op])
    by_kind = {k: totals.get(k, 0.0) for k in COMM_KINDS}
    comm = sum(by_kind.values())
    optimizer = totals.get("optimizer", 0.0)
    last_rank = graph.locate(path[0])[0]
    stage = last_rank // graph.layout.stage_size
    first = graph.op(last_rank, 0)
    computes = first + np.flatnonzero(np.array(graph.columns[stage]["kind"]) == Kind.COMPUTE)
    own = float(sum((end[computes] - start[computes]).tolist()))  # in order, as Python adds
    compute = min(own, totals.get("compute", 0.0) + optimizer)
    bubble = max(0.0, timeline.makespan - compute - comm)
    return Breakdown(compute, comm, bubble, 0.0, optimizer, by_kind)


PHASES = ("F", "B", "W", "F&B", "optimizer", "idle")


def phase_split(lowered: LoweredStep, timeline: Timeline, stage: int) -> dict[str, float]:
    """Seconds the first rank of a stage spends on its compute stream by the kind of slot that
    runs (the phases of DeepSeek ISCA'25 Table 4): lone forwards (F), lone backwards' input
    gradients (B), weight gradients (W), overlapped F&B slots, the optimizer, and idle (the
    bubble, waits for inputs from other stages). The collectives and sends a slot runs on the
    compute stream, and the waits inside it, count with it; a wait before a slot's first op is
    idle. The parts add up to the step time."""
    graph = _StepGraph(lowered, _is_symmetric(lowered, timeline))
    rank = stage * lowered.layout.stage_size
    out = dict.fromkeys(PHASES, 0.0)
    phase, clock = "idle", 0.0
    for j, op in enumerate(lowered.templates[stage].ops):
        if op.stream != COMPUTE:
            continue
        i = graph.op(rank, j)
        begins = op.kind == Kind.COMPUTE or op.name.startswith("F&B begin")
        if begins:
            phase = op.name.split()[0]
        waited = max(float(timeline.start[i]) - clock, 0.0)
        out["idle" if begins else phase] += waited
        end = max(float(timeline.end[i]), clock)
        out[phase] += end - clock - waited
        clock = end
    out["idle"] += timeline.makespan - clock
    return out


def train_result(
    model, plan, cluster, network, memory, fits, lowered, timeline, steps=None, noise=None
) -> TrainResult:
    """The result of a simulated step: the engine's measurements with FLOP and memory
    accounting (steps: the makespans of a noise Monte Carlo, if one ran)."""
    clean = breakdown(lowered, timeline)
    step, spread = timeline.makespan, {}
    if steps is not None:
        step = float(np.mean(steps))
        clean = replace(clean, straggler_s=step - timeline.makespan)
        spread = {
            "noise": asdict(noise),
            "step_time_p50_s": float(np.percentile(steps, 50)),
            "step_time_p99_s": float(np.percentile(steps, 99)),
            "steps_simulated": len(steps),
        }
    flops = flops_per_step(model, plan)
    provenance = KernelModel(cluster.chip, plan.precision).provenance()
    per_device = step * cluster.devices
    peak = cluster.chip.peak("bf16")
    gemm_peak = cluster.chip.peak(plan.precision)
    tokens = plan.global_batch * plan.seq_len
    ttt = plan.tokens / tokens * step if plan.tokens else None
    device_hours = ttt * cluster.devices / 3600 if ttt else None
    return TrainResult(
        step_time_s=step,
        tokens_per_s=tokens / step,
        mfu=flops["model"] / per_device / peak,
        hfu=flops["hardware"] / per_device / peak,
        model_tflops_per_device=flops["model"] / per_device / 1e12,
        hardware_tflops_per_device=flops["hardware"] / per_device / 1e12,
        memory_per_device_bytes=memory.total,
        fits_in_memory=fits,
        breakdown=clean,
        devices=cluster.devices,
        virtual_stages=plan.virtual_stages,
        memory=memory.to_dict() if hasattr(memory, "to_dict") else asdict(memory),
        plan=plan.to_dict(),
        cluster=cluster.to_dict(),
        network=network,
        ops=lowered.num_ops,
        events=timeline.events,
        time_to_train_s=ttt,
        device_hours=device_hours,
        **spread,
        mfu_peak_flops_per_s=peak,
        mfu_peak_precision="bf16",
        gemm_precision=plan.precision,
        precision_peak_flops_per_s=gemm_peak,
        mfu_precision_peak=flops["model"] / per_device / gemm_peak,
        hfu_precision_peak=flops["hardware"] / per_device / gemm_peak,
        efficiency_provenance=provenance,
        efficiencies=provenance_summary(provenance),
        **training_energy(cluster, step, device_hours),
        stack=plan.stack.to_dict(),
    )
