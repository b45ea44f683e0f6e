"""One training step: lower model x plan x cluster to every rank's program, run it, report.

The result holds what the engine measured (step time and the breakdown of rank 0, the first
rank of the first pipeline stage) plus FLOP and memory accounting; nothing is recomputed later.
"""

import itertools
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from podsim.clusters import Cluster
from podsim.compute import KernelModel
from podsim.engine import NetworkMode, Timeline, simulate, simulate_steps
from podsim.errors import SpecError, check
from podsim.layer_costs import (
    LayerShape,
    PassTimes,
    attention_forward,
    embedding_forward,
    layer_backward,
    layer_forward,
    logits_forward,
)
from podsim.lowering import (
    COMPUTE,
    DP_STREAM,
    EP_STREAM,
    RECV_STREAMS,
    SEND_STREAM,
    Layout,
    Template,
    TemplateOp,
    build_program,
)
from podsim.memory import memory_per_device
from podsim.noise import NoiseModel
from podsim.plans import Plan
from podsim.program import Collective, Kind, Program
from podsim.schedules import stage_order
from podsim.version import __version__

ADAM_BYTES_PER_PARAM = 30  # read fp32 master, m, v, grad; write master, m, v, bf16 weight
MAX_VIRTUAL_STAGES = 8
LONG_RUN_KEYS = (
    "goodput",
    "interruptions",
    "time_to_train_p50_s",
    "time_to_train_p90_s",
    "checkpoint_interval_s",
    "deadline_probability",
)


@dataclass(frozen=True)
class Breakdown:
    """Where rank 0's step time goes (seconds); the parts add up to the step time."""

    compute_s: float
    exposed_comm_s: float
    bubble_s: float
    straggler_s: float = 0.0


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
    version: str = __version__  # of podsim, so that a result can be re-run

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if v is not None}
        for key in LONG_RUN_KEYS:  # the contract's keys, at the top level
            if self.long_run is not None and self.long_run.get(key) is not None:
                out[key] = self.long_run[key]
        return out


@dataclass(frozen=True)
class LoweredStep:
    """A step's program, and the per-stage templates it was copied from (for trace names)."""

    program: Program
    templates: list[Template]
    layout: Layout


def chunk_layers(layers: int, chunks: int) -> list[range]:
    """Layers split as evenly as possible over pipeline chunks, earlier chunks taking any extra."""
    check(
        layers >= chunks,
        "train.pp * virtual_stages",
        chunks,
        f"at most the number of layers ({layers})",
    )
    base, extra = divmod(layers, chunks)
    bounds = np.cumsum([0] + [base + (i < extra) for i in range(chunks)])
    return [range(int(a), int(b)) for a, b in itertools.pairwise(bounds)]


def check_plan(model, plan: Plan, cluster: Cluster) -> None:
    """Rejects plans that cannot run, saying why."""
    check(
        plan.devices == cluster.devices,
        "train.tp * pp * dp * cp",
        plan.devices,
        f"equal to cluster.devices ({cluster.devices})",
    )
    check(
        model.heads % plan.tp == 0,
        "train.tp",
        plan.tp,
        f"a divisor of the model's heads ({model.heads})",
    )
    if model.experts:
        check(
            model.experts % plan.ep == 0,
            "train.ep",
            plan.ep,
            f"a divisor of the model's experts ({model.experts})",
        )
    else:
        check(plan.ep == 1, "train.ep", plan.ep, "1 for a dense model")
    check(
        (plan.dp * plan.cp) % plan.ep == 0,
        "train.ep",
        plan.ep,
        f"a divisor of dp * cp ({plan.dp * plan.cp}): experts are split over those ranks",
    )
    check(
        plan.schedule != "interleaved" or plan.virtual_stages <= 1 or plan.pp >= 3,
        "train.virtual_stages",
        plan.virtual_stages,
        "1 when pp < 3",
    )


class StepBuilder:
    """Writes each stage's template for one plan and number of virtual stages.

    A pipeline *position* is one slice of the model's layers; stage `stage` runs chunk c at
    position c * pp + stage (1F1B, GPipe, interleaved), or, for DualPipe, chunk 0 at position
    `stage` and chunk 1 (the mirrored copy, data flowing the other way) at pp - 1 - stage.
    """

    def __init__(self, model, plan: Plan, cluster: Cluster, v: int) -> None:
        self.dual = plan.schedule == "dualpipe"
        v = 2 if self.dual else v
        self.model, self.plan, self.v = model, plan, v
        self.kernels = KernelModel(cluster.chip, plan.precision)
        self.shape = LayerShape(
            plan.micro_batch * plan.seq_len / plan.cp,
            plan.seq_len,
            plan.tp,
            plan.ep,
            plan.sequence_parallel,
        )
        positions = plan.pp if self.dual else plan.pp * v
        self.chunks = chunk_layers(model.layers, positions)
        self.last = positions - 1
        # Every pass at a position costs the same: cost each once.
        self.forward_s = [self.forward_time(q) for q in range(positions)]
        self.backward_s = [self.backward_time(q) for q in range(positions)]
        self.params = [self.local_params(q) for q in range(positions)]

    def position(self, stage: int, chunk: int) -> int:
        if self.dual:
            return stage if chunk == 0 else self.plan.pp - 1 - stage
        return chunk * self.plan.pp + stage

    def tag(self, kind: int, boundary: int, chunk: int) -> int:
        """The channel of activations (kind 0) or gradients (1) across the boundary before
        position `boundary`: both ends compute the same tag, and the boundaries between two
        given stages get different ones (they differ in boundary // pp, or in direction)."""
        return 2 * (chunk if self.dual else boundary // self.plan.pp) + kind

    def direction(self, chunk: int) -> int:
        """+1 if the chunk's activations flow to the next stage, -1 to the previous."""
        return -1 if self.dual and chunk == 1 else +1

    # -- what one pass at a position costs ----------------------------------------------------

    def forward_time(self, q: int) -> float:
        k, shape = self.kernels, self.shape
        times = sum((layer_forward(self.model, i, shape, k) for i in self.chunks[q]), PassTimes())
        if q == 0:
            times += embedding_forward(self.model, shape, k)
        if q == self.last:  # the output head, and each multi-token-prediction module's block
            extra = layer_forward(self.model, self.model.layers - 1, shape, k)
            times += logits_forward(self.model, shape, k)
            for _ in range(self.model.mtp_depth):
                times += extra + logits_forward(self.model, shape, k)
        return times.total

    def backward_time(self, q: int) -> float:
        k, shape, total = self.kernels, self.shape, 0.0
        for i in self.chunks[q]:
            forward = layer_forward(self.model, i, shape, k)
            attention = attention_forward(self.model, shape, k).attention
            total += layer_backward(forward, attention, self.plan.recompute).total
        if q == self.last:  # logits are never recomputed
            logits = logits_forward(self.model, shape, k).scaled(2, 0, 2).total
            last = self.model.layers - 1
            forward = layer_forward(self.model, last, shape, k)
            attention = attention_forward(self.model, shape, k).attention
            block = layer_backward(forward, attention, self.plan.recompute).total
            total += logits + self.model.mtp_depth * (block + logits)
        return total

    def local_params(self, q: int) -> float:
        """Parameters at a position held by one rank (routed experts split over tp x ep, the
        rest over tp)."""
        model, tp, ep, total = self.model, self.plan.tp, self.plan.ep, 0.0
        for i in self.chunks[q]:
            experts = model.expert_params(i)
            total += (model.layer_params(i) - experts) / tp + experts / (tp * ep)
        if q == 0:
            total += model.embedding_params() / tp
        if q == self.last:
            total += (model.output_params() + model.final_norm_params()) / tp
            total += model.mtp_params() / tp
        return total

    # -- the template ---------------------------------------------------------------------------

    def template(self, stage: int) -> Template:
        plan = self.plan
        order = stage_order(plan.schedule, plan.pp, stage, plan.microbatches, self.v)
        t = Template()
        inputs = {}
        for kind, chunk, mb in order:  # receives are posted first, in the order used
            q, d = self.position(stage, chunk), self.direction(chunk)
            if kind == "F" and q > 0:
                tag = self.tag(0, q, chunk)
                recv = self._p2p(Kind.RECV, RECV_STREAMS["F", -d], -d, tag, "recv act")
                inputs[kind, chunk, mb] = t.add(recv)
            if kind == "B" and q < self.last:
                tag = self.tag(1, q + 1, chunk)
                recv = self._p2p(Kind.RECV, RECV_STREAMS["B", d], d, tag, "recv grad")
                inputs[kind, chunk, mb] = t.add(recv)
        last = -1
        for kind, chunk, mb in order:
            last = self._pass(
                t, kind, chunk, self.position(stage, chunk), mb, inputs.get((kind, chunk, mb))
            )
        self._finish_step(t, stage, last)
        return t

    def _p2p(self, kind: Kind, stream: int, offset: int, tag: int, name: str, deps=()):
        # Megatron's scatter-gather: each tp rank sends its 1/tp of the activations.
        tokens, hidden = self.shape.tokens, self.model.hidden
        nbytes = tokens * hidden * self.kernels.activation_bytes / self.plan.tp
        return TemplateOp(
            name, kind, stream, nbytes=nbytes, stage_offset=offset, tag=tag, deps=list(deps)
        )

    def _collective(
        self,
        role: str,
        op: Collective,
        nbytes: float,
        repeat: int,
        deps,
        name: str,
        stream: int = COMPUTE,
    ) -> TemplateOp:
        return TemplateOp(
            name,
            Kind.COLLECTIVE,
            stream,
            nbytes=nbytes,
            role=role,
            collective=op,
            repeat=repeat,
            deps=list(deps),
        )

    def _pass(self, t: Template, kind: str, chunk: int, q: int, mb: int, recv: int | None) -> int:
        forward, d = kind == "F", self.direction(chunk)
        deps = [] if recv is None else [recv]
        if self.plan.zero == 3 and self.plan.dp > 1:  # gather this chunk's weights first
            gather = self._collective(
                "dp",
                Collective.ALL_GATHER,
                self.params[q] * 2,
                1,
                [],
                f"zero3 gather q{q}",
                DP_STREAM,
            )
            deps.append(t.add(gather))
        duration = self.forward_s[q] if forward else self.backward_s[q]
        last = t.add(
            TemplateOp(f"{kind} q{q} mb{mb}", Kind.COMPUTE, COMPUTE, duration=duration, deps=deps)
        )
        done = last
        for op in self._pass_collectives(q, forward, last):
            done = t.add(op)
            if op.stream == COMPUTE:
                last = done
        # Megatron's sends block the compute stream; DualPipe overlaps them with compute.
        send_stream = SEND_STREAM if self.dual else COMPUTE
        if forward and q < self.last:
            tag = self.tag(0, q + 1, chunk)
            send = self._p2p(Kind.SEND, send_stream, d, tag, f"send act mb{mb}", [done])
            last = _on(t.add(send), send_stream, last)
        if not forward and q > 0:
            tag = self.tag(1, q, chunk)
            send = self._p2p(Kind.SEND, send_stream, -d, tag, f"send grad mb{mb}", [done])
            last = _on(t.add(send), send_stream, last)
        if not forward and self.plan.zero == 3 and self.plan.dp > 1:
            t.add(
                self._collective(
                    "dp",
                    Collective.REDUCE_SCATTER,
                    self._grad_bytes(q),
                    1,
                    [done],
                    f"zero3 grads q{q}",
                    DP_STREAM,
                )
            )
        return last if not self.dual else done

    def _pass_collectives(self, q: int, forward: bool, after: int) -> list[TemplateOp]:
        """Tensor-, expert- and context-parallel collectives of one pass, each kind as one op
        repeated once per occurrence, after the pass's compute. They are not overlapped with
        compute, except expert all-to-alls under DualPipe, which runs them on a stream of their
        own while the next pass computes (its purpose in the DeepSeek-V3 report)."""
        plan, model, layers = self.plan, self.model, len(self.chunks[q])
        passes = 1 if forward else (2 if plan.recompute == "full" else 1)
        activation = self.shape.tokens * model.hidden * self.kernels.activation_bytes
        ops, deps = [], [after]
        if plan.tp > 1:  # two per layer per pass: after attention and after the MLP
            ops.append(
                self._collective(
                    "tp",
                    Collective.ALL_REDUCE,
                    activation,
                    2 * layers * passes,
                    deps,
                    "tp all-reduce",
                )
            )
        moe = sum(model.is_moe(i) for i in self.chunks[q])
        if plan.ep > 1 and moe:  # dispatch and combine per MoE layer
            stream = EP_STREAM if self.dual else COMPUTE
            ops.append(
                self._collective(
                    "ep",
                    Collective.ALL_TO_ALL,
                    self._dispatch_bytes(),
                    2 * moe * passes,
                    deps,
                    "ep all-to-all",
                    stream,
                )
            )
        if plan.cp > 1:  # keys and values of the whole sequence, per layer
            kv = 2 * self.shape.tokens * plan.cp * model.kv_heads * model.qk_head_dim / plan.tp
            ops.append(
                self._collective(
                    "cp",
                    Collective.ALL_GATHER,
                    kv * self.kernels.activation_bytes,
                    layers * passes,
                    deps,
                    "cp all-gather kv",
                )
            )
        return ops

    def _dispatch_bytes(self) -> float:
        """Bytes each rank sends in one expert all-to-all: a copy of each token per expert it
        is routed to, or per node under node-limited routing (DeepSeek-V3 sends a token over
        the network once per node). FP8 training dispatches in FP8 and combines in BF16."""
        model, plan = self.model, self.plan
        copies = model.top_k
        if model.max_routed_nodes:
            copies = min(copies, model.max_routed_nodes)
        element = 1.5 if plan.precision == "fp8" else self.kernels.activation_bytes
        return self.shape.tokens * model.hidden * element * copies

    def _grad_bytes(self, q: int) -> float:
        # Megatron reduces BF16 gradients in FP32 (--accumulate-allreduce-grads-in-fp32).
        return self.params[q] * (2 if self.plan.precision == "fp16" else 4)

    def _finish_step(self, t: Template, stage: int, last: int) -> None:
        plan = self.plan
        stage_chunks = [self.position(stage, c) for c in range(self.v)]
        params = sum(self.params[q] for q in stage_chunks)
        deps = [last]
        if plan.dp > 1 and plan.zero < 3:
            op = Collective.ALL_REDUCE if plan.zero == 0 else Collective.REDUCE_SCATTER
            grads = sum(self._grad_bytes(q) for q in stage_chunks)
            deps = [t.add(self._collective("dp", op, grads, 1, [last], "dp grads", DP_STREAM))]
        shard = params / plan.dp if plan.zero >= 1 else params
        update = self.kernels.memory(ADAM_BYTES_PER_PARAM * shard)
        step = t.add(TemplateOp("optimizer", Kind.COMPUTE, COMPUTE, duration=update, deps=deps))
        if plan.dp > 1 and plan.zero in (1, 2):
            t.add(
                self._collective(
                    "dp",
                    Collective.ALL_GATHER,
                    params * 2,
                    1,
                    [step],
                    "zero gather weights",
                    DP_STREAM,
                )
            )

    def lower(self) -> LoweredStep:
        plan = self.plan
        templates = [self.template(stage) for stage in range(plan.pp)]
        layout = Layout(plan.tp, plan.cp, plan.dp, plan.pp)
        return LoweredStep(build_program(templates, layout, plan.ep), templates, layout)


def _on(op: int, stream: int, last_on_compute: int) -> int:
    """The compute stream's last op after adding `op` on `stream`."""
    return op if stream == COMPUTE else last_on_compute


def breakdown(lowered: LoweredStep, timeline: Timeline) -> Breakdown:
    """Rank 0's time: compute, collectives on its compute stream and the wait for gradient
    reduction (exposed communication), and the rest of the step (pipeline bubble)."""
    n = len(lowered.templates[0].ops)
    p = lowered.program
    kind, stream = p.kind[:n], p.stream[:n]
    start, end = timeline.start[:n], timeline.end[:n]
    on_compute = stream == COMPUTE
    compute = float(np.sum((end - start)[on_compute & (kind == Kind.COMPUTE)]))
    comm = float(np.sum((end - start)[on_compute & (kind == Kind.COLLECTIVE)]))
    optimizer = max(i for i, op in enumerate(lowered.templates[0].ops) if op.name == "optimizer")
    before = np.max(end[:optimizer][on_compute[:optimizer]], initial=0.0)
    comm += max(0.0, float(start[optimizer] - before))
    bubble = max(0.0, timeline.makespan - compute - comm)
    return Breakdown(compute, comm, bubble)


def run_step(model, plan: Plan, cluster: Cluster, network: NetworkMode, v: int):
    lowered = StepBuilder(model, plan, cluster, v).lower()
    return lowered, simulate(lowered.program, cluster, network)


def virtual_stage_options(model, plan: Plan) -> list[int]:
    """Interleaving needs microbatches in rounds of pp (Megatron) and a layer per chunk; chunks
    may differ by one layer, as in Llama 3's uneven stages."""
    if plan.schedule == "dualpipe":
        return [2]  # a chunk in each direction
    if plan.schedule != "interleaved":
        return [1]
    if plan.virtual_stages:
        return [plan.virtual_stages]
    if plan.pp < 3 or plan.microbatches % plan.pp:
        return [1]
    fitting = [v for v in range(1, MAX_VIRTUAL_STAGES + 1) if model.layers >= plan.pp * v]
    return fitting or [1]  # too few layers even for one: the lowering says so


def stage_memory(model, plan: Plan, v: int):
    layers = max(map(len, chunk_layers(model.layers, plan.pp * v))) * v
    return memory_per_device(model, replace(plan, virtual_stages=v), layers)


def one_replica(plan: Plan, cluster: Cluster) -> tuple[Plan, Cluster]:
    """The same pipeline with as few data-parallel replicas as expert parallelism allows:
    without noise every replica runs alike, so this ranks the choices of a plan cheaply."""
    dp = plan.ep if plan.dp % plan.ep == 0 else plan.dp
    small = replace(plan, dp=dp, global_batch=plan.global_batch // plan.dp * dp)
    return small, cluster.with_devices(small.devices)


def choose_virtual_stages(model, plan: Plan, cluster: Cluster, network: NetworkMode) -> int:
    """The fastest number of virtual stages that fits (the fastest overall if none fits)."""
    options = virtual_stage_options(model, plan)
    if len(options) == 1:
        return options[0]
    small, proxy = one_replica(plan, cluster)
    capacity = cluster.chip.hbm_bytes
    scored = [
        (
            not stage_memory(model, plan, v).fits(capacity),
            run_step(model, replace(small, virtual_stages=v), proxy, network, v)[1].makespan,
            v,
        )
        for v in options
    ]
    return min(scored)[2]


@dataclass(frozen=True)
class StepRun:
    """A simulated step: the result, and the program and timeline behind it (for traces)."""

    result: TrainResult
    lowered: LoweredStep
    timeline: Timeline

    def op_names(self) -> list[str]:
        """A name per op, for traces: each stage's template names copied to its ranks."""
        names: list[str] = []
        for template in self.lowered.templates:
            names += [op.name for op in template.ops] * self.lowered.layout.stage_size
        return names


def simulate_step(
    model,
    plan: Plan,
    cluster: Cluster,
    network: NetworkMode = "analytical",
    strict: bool = False,
    noise: "NoiseModel | None" = None,
    progress: Callable[[int], None] | None = None,
) -> StepRun:
    """Simulate one step, every rank. With virtual_stages "auto", the fastest that fits. With
    noise, a Monte Carlo over noise.steps steps: the step time is their mean, and the breakdown's
    straggler_s is what the noise adds to the noise-free step."""
    check_plan(model, plan, cluster)
    v = choose_virtual_stages(model, plan, cluster, network)
    memory = stage_memory(model, plan, v)
    fits = memory.fits(cluster.chip.hbm_bytes)
    if strict and not fits:
        raise SpecError(
            f"the plan needs {memory.total / 1e9:.1f} GB per device; "
            f"{cluster.chip.id} has {cluster.chip.hbm_bytes / 1e9:.0f} GB"
        )
    planned = replace(plan, virtual_stages=v)
    lowered, timeline = run_step(model, planned, cluster, network, v)
    steps = None
    if noise is not None:
        steps = simulate_steps(lowered.program, cluster, network, noise, noise.steps, progress)
    result = _result(
        model, planned, cluster, network, memory, fits, lowered, timeline, steps, noise
    )
    return StepRun(result, lowered, timeline)


def train(
    model, plan: Plan, cluster: Cluster, network: NetworkMode = "analytical", strict: bool = False
) -> TrainResult:
    """One step's result (see simulate_step)."""
    return simulate_step(model, plan, cluster, network, strict).result


def _result(
    model, plan, cluster, network, memory, fits, lowered, timeline, steps=None, noise=None
) -> TrainResult:
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
    flops = model.flops_per_step(plan)
    per_device = step * cluster.devices
    peak = cluster.chip.peak("bf16")
    tokens = plan.global_batch * plan.seq_len
    ttt = plan.tokens / tokens * step if plan.tokens else None
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
        ops=lowered.program.num_ops,
        events=timeline.events,
        time_to_train_s=ttt,
        device_hours=ttt * cluster.devices / 3600 if ttt else None,
        **spread,
    )
