"""One training step lowered: each pipeline stage's template of ops, copied to every rank.

A stage's template holds its passes in schedule order (see podsim.plans.schedules), the
tensor-, expert- and context-parallel collectives of each pass, pipeline sends and receives,
data-parallel gradient reduction and the optimizer update.
"""

import itertools
from dataclasses import dataclass, replace
from functools import cached_property

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
    moe_routing,
    selective_recompute,
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
    build_symmetric_program,
    symmetry,
)
from podsim.lowering.program import Collective, Kind, Program, check_program_size
from podsim.lowering.routing import Routing, routing
from podsim.plans.schedules import stage_order
from podsim.plans.training import Plan
from podsim.specs.clusters import Cluster

ADAM_BYTES_PER_PARAM = 30  # read fp32 master, m, v, grad; write master, m, v, bf16 weight
# Ops of all stages' templates of one lowering: each is a Python object written one by one
# (about 8 us and a few hundred bytes each), so this bounds the lowering to ~15 s and ~1 GB.
MAX_TEMPLATE_OPS = 2_000_000


@dataclass(frozen=True)
class LoweredStep:
    """A step's per-stage templates; the program of every rank is built from them on first use
    (`program`), and so is the symmetric one (one representative rank per stage)."""

    templates: list[Template]
    layout: Layout
    ep: int
    etp: int = 0  # expert tensor-parallel size (0: tp)

    @cached_property
    def program(self) -> Program:
        """Every rank's program."""
        return build_program(self.templates, self.layout, self.ep, self.etp)

    @cached_property
    def symmetric_program(self) -> Program:
        """Each stage's template on its first rank, groups at full size (exact only where
        `symmetry` allows it)."""
        return build_symmetric_program(self.templates, self.layout, self.ep, self.etp)

    def symmetry(self, cluster: Cluster) -> tuple[str | None, bool]:
        """The reason a symmetric run would not be exact on this cluster (None if none), and
        whether any traffic crosses pods (see podsim.lowering.layout.symmetry)."""
        layout, ep, etp = self.layout, self.ep, self.etp
        return symmetry(self.templates, layout, ep, cluster.domain_size, cluster.pod_size, etp)

    @property
    def num_ops(self) -> int:
        """Ops of every rank's program."""
        return sum(len(t.ops) for t in self.templates) * self.layout.stage_size

    def full_events(self) -> int:
        """The events a full analytical run handles: one per compute, wait and send op (a
        send/recv pair completes once) and one per collective instance; each representative op
        of the symmetric program stands for its stage's ranks (a collective, for their groups)."""
        p = self.symmetric_program
        size = np.diff(p.group_offsets)
        stage = self.layout.stage_size
        per_op = np.where(
            p.kind == Kind.COLLECTIVE,
            stage // size[np.where(p.kind == Kind.COLLECTIVE, p.peer, 0)],
            np.where(p.kind == Kind.RECV, 0, stage),
        )
        return int(per_op.sum())


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


def balanced_layers(layers: int, stages: int, first_extra: int, last_extra: int) -> list[range]:
    """Layers over stages counting the embedding as first_extra layers on the first stage and
    the loss (output head and MTP modules) as last_extra on the last, as Megatron-Core's
    account_for_embedding_in_pipeline_split / account_for_loss_in_pipeline_split do; the
    remaining layers go to the stages with fewest, earlier ones first."""
    check(
        layers + first_extra + last_extra >= stages,
        "train.pp",
        stages,
        f"at most the layers plus the embedding and loss units ({layers})",
    )
    load = [0] * stages
    load[0] += first_extra
    load[-1] += last_extra
    counts = [0] * stages
    for _ in range(layers):
        stage = min(range(stages), key=lambda i: (load[i], i))
        load[stage] += 1
        counts[stage] += 1
    bounds = np.cumsum([0, *counts])
    return [range(int(a), int(b)) for a, b in itertools.pairwise(bounds)]


def position_layers(model, plan: Plan, positions: int) -> list[range]:
    """The layers of each pipeline position: even (chunk_layers), or balanced, counting the
    embedding and the loss (head and each MTP module) as a layer each. "auto" balances a
    DualPipe model with MTP modules, whose heavy last stage shares devices with the first."""
    split = plan.pipeline_split
    if split == "auto":
        dual_mtp = plan.schedule == "dualpipe" and model.mtp_depth > 0
        split = "balanced" if dual_mtp else "even"
    if split == "balanced" and positions > 1:
        return balanced_layers(model.layers, positions, 1, 1 + model.mtp_depth)
    return chunk_layers(model.layers, positions)


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
        self.kernels = KernelModel(cluster.chip, plan.precision, plan.overlap_sms)
        # The token-count exchange crosses the fabric when an expert group leaves a domain
        # (expert groups are contiguous ranks, etp fastest, then ep).
        spans = plan.ep * plan.expert_tp > cluster.domain_size
        self.shape = LayerShape(
            plan.micro_batch * plan.seq_len / plan.cp,
            plan.seq_len,
            plan.tp,
            plan.ep,
            plan.sequence_parallel,
            etp=plan.expert_tp,
            load_cv=plan.expert_load_cv,
            capacity_factor=plan.capacity_factor,
            count_latency=cluster.scale_out_latency if spans else cluster.scale_up_latency,
            fp8_recipe=plan.fp8_recipe,
        )
        self.recompute = plan.recompute_set(model)
        positions = plan.pp if self.dual else plan.pp * v
        self.chunks = position_layers(model, plan, positions)
        self.last = positions - 1
        # Every pass at a position costs the same: cost each once.
        self.forward_s = [self.forward_time(q) for q in range(positions)]
        self.backward_s = [self.backward_time(q) for q in range(positions)]
        self.split = [self.local_split(q) for q in range(positions)]
        self.params = [sum(split) for split in self.split]
        self.routing = self._routing(cluster)

    def moe_layers(self, q: int) -> int:
        """MoE layers at a position (asked once per pass: cached per builder)."""
        cached = self.__dict__.setdefault("_moe_layers", {})
        if q not in cached:
            cached[q] = sum(self.model.is_moe(i) for i in self.chunks[q])
        return cached[q]

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

    def _layer_forward(self, layer: int) -> PassTimes:
        """One layer's forward kernels: they differ between layers only in whether the layer
        is an MoE one, so each kind is costed once per builder."""
        cached = self.__dict__.setdefault("_forward_by_kind", {})
        kind = self.model.is_moe(layer)
        if kind not in cached:
            cached[kind] = layer_forward(self.model, layer, self.shape, self.kernels)
        return cached[kind]

    def forward_time(self, q: int) -> float:
        k, shape = self.kernels, self.shape
        times = sum((self._layer_forward(i) for i in self.chunks[q]), PassTimes())
        if q == 0:
            times += embedding_forward(self.model, shape, k)
        if q == self.last:  # the output head, and each multi-token-prediction module's block
            extra = self._layer_forward(self.model.layers - 1)
            extra += self._mtp_projection()
            times += logits_forward(self.model, shape, k)
            for _ in range(self.model.mtp_depth):
                times += extra + logits_forward(self.model, shape, k)
        return times.total

    def _mtp_projection(self) -> PassTimes:
        """An MTP module's own kernels (DeepSeek-V3 section 2.2): the embedding of the shifted
        tokens, two RMSNorms and the 2h -> h projection."""
        k, tokens, h = self.kernels, self.shape.tokens, self.model.hidden
        gemm = k.gemm(tokens, h / self.plan.tp, 2 * h)
        return PassTimes(gemm=gemm, memory=k.memory(6 * tokens * h * k.activation_bytes))

    def _layer_backward(self, layer: int, recompute: str) -> float:
        """One layer's backward (and what it recomputes), once per layer kind and mode."""
        cached = self.__dict__.setdefault("_backward_by_kind", {})
        key = (self.model.is_moe(layer), recompute)
        if key not in cached:
            k, shape = self.kernels, self.shape
            forward = self._layer_forward(layer)
            attention = attention_forward(self.model, shape, k).attention
            selective = selective_recompute(self.model, layer, shape, k, self.recompute)
            cached[key] = layer_backward(forward, attention, recompute, selective).total
        return cached[key]

    def _recompute_of(self, q: int, index: int) -> str:
        """Full recompute of only the first recompute_layers layers of each chunk (Megatron's
        block method); the others keep their activations."""
        plan = self.plan
        if plan.recompute == "full" and plan.recompute_layers and index >= plan.recompute_layers:
            return "none"
        return plan.recompute

    def backward_time(self, q: int) -> float:
        k, shape, total = self.kernels, self.shape, 0.0
        for index, i in enumerate(self.chunks[q]):
            total += self._layer_backward(i, self._recompute_of(q, index))
        if q == self.last:  # logits are never recomputed
            logits = logits_forward(self.model, shape, k).scaled(2, 0, 2).total
            block = self._layer_backward(self.model.layers - 1, self.plan.recompute)
            block += self._mtp_projection().scaled(2, 0, 2).total
            total += logits + self.model.mtp_depth * (block + logits)
        return total

    def local_params(self, q: int) -> float:
        """Parameters at a position held by one rank."""
        return sum(self.local_split(q))

    def local_split(self, q: int) -> tuple[float, float]:
        """(non-expert, routed-expert) parameters at a position held by one rank: routed
        experts split over etp x ep, the rest over tp (the same split as podsim.costs.memory)."""
        model, tp = self.model, self.plan.tp
        experts_split = self.plan.expert_tp * self.plan.ep
        dense = expert = 0.0
        for i in self.chunks[q]:
            routed = model.expert_params(i)
            dense += (model.layer_params(i) - routed) / tp
            expert += routed / experts_split
        if q == 0:
            dense += model.embedding_params() / tp
        if q == self.last:
            dense += (model.output_params() + model.final_norm_params()) / tp
            mtp_routed = model.mtp_depth * model.expert_params(model.layers - 1)
            dense += (model.mtp_params() - mtp_routed) / tp
            expert += mtp_routed / experts_split
        return dense, expert

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

    def pass_collectives(self, q: int, forward: bool) -> list[TemplateOp]:
        """The collectives one pass at position q runs (see _pass_collectives), for callers
        that price them without a template (plan screening)."""
        return self._pass_collectives(q, forward, 0)

    def _pass_collectives(self, q: int, forward: bool, after: int) -> list[TemplateOp]:
        """Tensor-, expert- and context-parallel collectives of one pass, each kind as one op
        repeated once per occurrence, after the pass's compute. They are not overlapped with
        compute, except expert all-to-alls under DualPipe, which runs them on a stream of their
        own while the next pass computes (its purpose in the DeepSeek-V3 report)."""
        plan, model, layers = self.plan, self.model, len(self.chunks[q])
        passes = 1 if forward else (2 if plan.recompute == "full" else 1)
        activation = self.shape.tokens * model.hidden * self.kernels.activation_bytes
        ops, deps = [], [after]
        moe = sum(model.is_moe(i) for i in self.chunks[q])
        if plan.tp > 1:  # after attention, and after a dense MLP (an MoE layer's experts
            # gather and scatter their tokens over etp instead, below)
            ops.append(
                self._collective(
                    "tp",
                    Collective.ALL_REDUCE,
                    activation,
                    (2 * layers - moe) * passes,
                    deps,
                    "tp all-reduce",
                )
            )
        moe = self.moe_layers(q)
        if plan.ep > 1 and moe:  # dispatch and combine per MoE layer
            stream = EP_STREAM if self.dual else COMPUTE
            for name, element in self._expert_elements(forward):
                op = self._collective(
                    "ep", Collective.ALL_TO_ALL, 0.0, moe * passes, deps, name, stream
                )
                op.nbytes, op.message_bytes = self._all_to_all_bytes(element)
                op.fanout = self.routing.fanout
                ops.append(op)
        if plan.expert_tp > 1 and moe:  # all-gather the received copies over etp before
            # the experts, reduce-scatter their outputs after (Megatron-Core's dispatcher)
            copies = moe_routing(model, self.shape).copies
            nbytes = copies * model.hidden * self.kernels.activation_bytes
            ops.append(
                self._collective(
                    "etp", Collective.ALL_GATHER, nbytes, 2 * moe * passes, deps, "etp gather"
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

    def _routing(self, cluster: Cluster) -> Routing:
        """Distinct ranks and nodes a token reaches in the expert-parallel group (ranks of one
        group share a node when tp x cp of them fit in it, Megatron's order)."""
        model, plan = self.model, self.plan
        if not model.experts or plan.ep <= 1:
            return Routing(1.0, 1.0)
        per_domain = max(1, cluster.domain_size // (plan.tp * plan.cp))
        return routing(model.experts, model.top_k, plan.ep, per_domain, model.max_routed_nodes)

    def _expert_elements(self, forward: bool) -> list[tuple[str, float]]:
        """(name, bytes per hidden element) of a pass's expert all-to-alls: FP8 training
        dispatches activations in FP8 with one FP32 scale per 128 elements (DeepEP's format)
        and combines in BF16 (DeepSeek-V3 report, section 3.3); the backward's all-to-alls
        carry BF16 gradients."""
        bf16 = 2.0
        if not forward:
            return [("ep dispatch grad", bf16), ("ep combine grad", bf16)]
        dispatch = 1 + 4 / 128 if self.plan.precision == "fp8" else self.kernels.activation_bytes
        return [("ep dispatch", dispatch), ("ep combine", bf16)]

    def _all_to_all_bytes(self, element: float) -> tuple[float, float]:
        """(bytes each rank sends, bytes of one token) in one expert all-to-all: one copy of
        each token per distinct rank it is routed to (copies for two experts of one rank are
        sent once). Node-forwarding sends one copy per node over the fabric (the op's fanout)."""
        token = self.model.hidden * element
        return self.shape.moe_tokens * token * self.routing.ranks, token

    def _grad_bytes(self, q: int, part: int | None = None) -> float:
        """Gradient bytes at a position: all, or only the non-expert (part 0) or routed-expert
        (part 1) parameters. Megatron reduces BF16 gradients in FP32
        (--accumulate-allreduce-grads-in-fp32)."""
        params = self.params[q] if part is None else self.split[q][part]
        return params * (2 if self.plan.precision == "fp16" else 4)

    def _finish_step(self, t: Template, stage: int, last: int) -> None:
        """Gradient reduction, the optimizer and the ZeRO weight gather. Routed-expert
        gradients and states go over the expert data-parallel group (Megatron-Core's
        expert_dp), the rest over dp."""
        plan = self.plan
        stage_chunks = [self.position(stage, c) for c in range(self.v)]
        dense = sum(self.split[q][0] for q in stage_chunks)
        experts = sum(self.split[q][1] for q in stage_chunks)
        apart = bool(self.model.experts) and (plan.ep > 1 or plan.expert_tp != plan.tp)
        groups = [("dp", plan.dp, dense, None)]
        if apart:
            groups = [("dp", plan.dp, dense, 0), ("edp", plan.expert_dp, experts, 1)]
        else:
            groups[0] = ("dp", plan.dp, dense + experts, None)
        op = Collective.ALL_REDUCE if plan.zero == 0 else Collective.REDUCE_SCATTER
        deps = [last]
        for role, size, _, part in groups:
            if size > 1 and plan.zero < 3:
                grads = sum(self._grad_bytes(q, part) for q in stage_chunks)
                name = "dp grads" if role == "dp" else "expert dp grads"
                deps.append(t.add(self._collective(role, op, grads, 1, [last], name, DP_STREAM)))
        shard = sum(n / size if plan.zero >= 1 else n for _, size, n, _ in groups)
        update = self.kernels.memory(ADAM_BYTES_PER_PARAM * shard)
        step = t.add(TemplateOp("optimizer", Kind.COMPUTE, COMPUTE, duration=update, deps=deps))
        for role, size, n, _ in groups:
            if size > 1 and plan.zero in (1, 2):
                name = "zero gather weights" if role == "dp" else "zero gather expert weights"
                gather = self._collective(role, Collective.ALL_GATHER, n * 2, 1, [step], name)
                t.add(replace(gather, stream=DP_STREAM))

    def lower(self) -> LoweredStep:
        plan = self.plan
        templates = [self.template(stage) for stage in range(plan.pp)]
        layout = Layout(plan.tp, plan.cp, plan.dp, plan.pp)
        return LoweredStep(templates, layout, plan.ep, plan.expert_tp)


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
