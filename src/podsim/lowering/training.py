"""One training step lowered: each pipeline stage's template of ops, copied to every rank.

A stage's template holds its passes in schedule order (see podsim.plans.schedules), the
tensor-, expert- and context-parallel collectives of each pass, pipeline sends and receives,
data-parallel gradient reduction and the optimizer update.
"""

import itertools
from dataclasses import dataclass

import numpy as np

from podsim.costs.kernels import KernelModel
from podsim.costs.layers import (
    LayerShape,
    PassTimes,
    attention_forward,
    embedding_forward,
    layer_backward,
    layer_forward,
    logits_forward,
)
from podsim.errors import SpecError, check
from podsim.lowering.layout import (
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
from podsim.lowering.program import Collective, Kind, Program, check_program_size
from podsim.plans.schedules import stage_order
from podsim.plans.training import Plan
from podsim.specs.clusters import Cluster

ADAM_BYTES_PER_PARAM = 30  # read fp32 master, m, v, grad; write master, m, v, bf16 weight
# Ops of all stages' templates of one lowering: each is a Python object written one by one
# (about 8 us and a few hundred bytes each), so this bounds the lowering to ~15 s and ~1 GB.
MAX_TEMPLATE_OPS = 2_000_000


@dataclass(frozen=True)
class LoweredStep:
    """A step's program, and the per-stage templates it was copied from (for trace names)."""

    program: Program
    templates: list[Template]
    layout: Layout
    ep: int = 1  # expert-parallel size (its groups, with the layout's)


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
        return LoweredStep(build_program(templates, layout, plan.ep), templates, layout, plan.ep)


def _on(op: int, stream: int, last_on_compute: int) -> int:
    """The compute stream's last op after adding `op` on `stream`."""
    return op if stream == COMPUTE else last_on_compute


def lower_step(model, plan: Plan, cluster: Cluster, v: int) -> LoweredStep:
    """Every rank's program for one step of the plan with `v` virtual stages."""
    check_step_size(plan, v)
    return StepBuilder(model, plan, cluster, v).lower()


def estimate_step_ops(plan: Plan, v: int) -> tuple[int, int]:
    """(ops of all stages' templates, ops of the whole program) of one step with `v` virtual
    stages, counted from the plan alone, before anything is built: the rules of StepBuilder,
    except that expert all-to-alls are left out (they need the model's layers), so both are
    lower bounds, exact for dense models."""
    template = sum(estimate_stage_ops(plan, v))
    return template, template * plan.tp * plan.cp * plan.dp


def estimate_stage_ops(plan: Plan, v: int) -> list[int]:
    """Ops of each stage's template (each of its ranks runs that many); see estimate_step_ops."""
    dual = plan.schedule == "dualpipe"
    v = 2 if dual else v
    pp, m = plan.pp, plan.microbatches
    last = (pp if dual else pp * v) - 1
    per_pass = 1 + (plan.tp > 1) + (plan.cp > 1)  # compute, tp all-reduce, cp all-gather
    zero3 = plan.zero == 3 and plan.dp > 1
    finish = 1 + (plan.dp > 1 and plan.zero < 3) + (plan.dp > 1 and plan.zero in (1, 2))
    # DualPipe: half the microbatches through each chunk; otherwise all of them through each.
    passes = m // 2 if dual else m
    stages = []
    for stage in range(pp):
        ops = finish
        for chunk in range(v):
            q = (stage if chunk == 0 else pp - 1 - stage) if dual else chunk * pp + stage
            forward = per_pass + zero3 + (q > 0) + (q < last)  # + recv act, send act
            backward = per_pass + 2 * zero3 + (q < last) + (q > 0)  # + recv grad, send grad
            ops += passes * (forward + backward)
        stages.append(ops)
    return stages


def check_step_size(plan: Plan, v: int) -> None:
    """Refuses a step too large to lower or simulate, from its estimated size, before anything
    is built for it (SpecError with the estimate and the limit)."""
    template, ops = estimate_step_ops(plan, v)
    what = (
        f"a training step of {plan.microbatches:,} microbatches x {v} virtual stage(s) on "
        f"{plan.devices:,} devices"
    )
    if template > MAX_TEMPLATE_OPS:
        raise SpecError(
            f"{what} needs at least {template:,} ops in its {plan.pp} stage template(s); podsim "
            f"lowers at most {MAX_TEMPLATE_OPS:,}: use fewer microbatches (a larger "
            "train.micro_batch or a smaller train.global_batch) or fewer pipeline stages"
        )
    check_program_size(ops, what)
