"""One training step lowered: each pipeline stage's template of ops, copied to every rank.

A stage's template holds its passes in schedule order (see podsim.plans.schedules), the
tensor-, expert- and context-parallel collectives of each pass, pipeline sends and receives,
data-parallel gradient reduction and the optimizer update.
"""

import itertools
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from podsim.costs import moe as moe_costs
from podsim.costs.kernels import KernelModel
from podsim.costs.layers import (
    LayerShape,
    PassTimes,
    attention_backward,
    attention_forward,
    embedding_forward,
    layer_backward,
    layer_forward,
    logits_forward,
    moe_routing,
    selective_recompute,
    weight_gradient,
)
from podsim.errors import SpecError, check
from podsim.lowering.layout import (
    COMPUTE,
    DP_STREAM,
    EP_STREAM,
    MARK,
    RECV_STREAMS,
    SEND_STREAM,
    Layout,
    OpBlock,
    Template,
    TemplateOp,
    build_program,
    build_symmetric_program,
    run_starts,
    symmetric_copies,
    symmetry,
)
from podsim.lowering.overlap import (
    OVERLAP_STREAM,
    PIECES_PER_LAYER,
    Transfer,
    scale_collectives,
    split_pass,
)
from podsim.lowering.program import Collective, Kind, Program
from podsim.lowering.routing import Routing, routing
from podsim.plans.schedules import Slot, dualpipe_slots, stage_order
from podsim.plans.stack import UNBOUNDED
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

    def program_once(self) -> Program:
        """Every rank's program: `program` if it was built already, else built for one use and
        not kept (a large step's program is a third of its run's peak memory)."""
        return self.__dict__.get("program") or build_program(
            self.templates, self.layout, self.ep, self.etp
        )

    @cached_property
    def symmetric_program(self) -> Program:
        """Each stage's template on its first rank, groups at full size (exact only where
        `symmetry` allows it)."""
        return build_symmetric_program(self.templates, self.layout, self.ep, self.etp)

    def symmetric_copies(self) -> dict[str, np.ndarray]:
        """What the symmetric program's groups and ranks stand for (the engine's `copies`)."""
        return symmetric_copies(self.layout, self.ep, self.etp)

    def symmetry(self, cluster: Cluster) -> tuple[str | None, bool]:
        """The reason a symmetric run would not be exact on this cluster (None if none), and
        whether any traffic crosses pods (see podsim.lowering.layout.symmetry)."""
        layout, ep, etp = self.layout, self.ep, self.etp
        return symmetry(self.templates, layout, ep, cluster.domain_size, cluster.pod_size, etp)

    @property
    def num_ops(self) -> int:
        """Ops of every rank's program."""
        return sum(len(t) for t in self.templates) * self.layout.stage_size

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
        self.stack = plan.stack
        chip = self.stack.chip(cluster.chip)
        # DualPipe gives SMs to communication only in its overlapped F&B chunks (below).
        held = 0 if self.dual else plan.overlap_sms
        self.kernels = KernelModel(chip, plan.precision, held)
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
            flash_attention=plan.flash_attention,
        )
        self.recompute = plan.recompute_set(model)
        positions = plan.pp if self.dual else plan.pp * v
        self.chunks = position_layers(model, plan, positions)
        self.last = positions - 1
        # Every pass at a position costs the same: cost each once.
        self.forward_s = [self.forward_time(q) for q in range(positions)]
        self.backward_s = [self.backward_time(q) for q in range(positions)]
        for q in range(positions):  # the framework's own time per layer and pass
            extra_forward, extra_backward = self.layer_overhead(q)
            self.forward_s[q] += extra_forward
            self.backward_s[q] += extra_backward
        if self.dual:
            self._cost_dualpipe(KernelModel(chip, plan.precision, plan.overlap_sms))
        self.split = [self.local_split(q) for q in range(positions)]
        self.params = [sum(split) for split in self.split]
        self.routing = self._routing(cluster)

    def _cost_dualpipe(self, overlapped: KernelModel) -> None:
        """DualPipe's extra pass costs per position: the weight-gradient part W of the backward
        (weight_s; the input-gradient part B is the rest, input_s), and a forward and a full
        backward inside an overlapped F&B chunk, whose compute runs on the SMs communication
        leaves it (overlap_forward_s, overlap_backward_s)."""
        positions = range(len(self.chunks))
        self.weight_s = [self.weight_time(q) for q in positions]
        self.input_s = [b - w for b, w in zip(self.backward_s, self.weight_s, strict=True)]
        self.overlap_forward_s, self.overlap_backward_s = self.forward_s, self.backward_s
        if overlapped.reserved_units:
            extra = [self.layer_overhead(q) for q in positions]
            self.overlap_forward_s = [
                self.forward_time(q, overlapped) + extra[q][0] for q in positions
            ]
            self.overlap_backward_s = [
                self.backward_time(q, overlapped) + extra[q][1] for q in positions
            ]

    def layer_overhead(self, q: int) -> tuple[float, float]:
        """The stack's framework time per layer at a position: (forward, backward); a full
        recompute runs the forward again in backward."""
        per_pass = self.stack.layer_overhead * len(self.chunks[q])
        runs = 2 if self.plan.recompute == "full" else 1
        return per_pass, per_pass * runs

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

    def _layer_forward(self, layer: int, k: KernelModel) -> PassTimes:
        """layer_forward, which depends on the layer only through whether it is an MoE layer:
        computed once per kind and kernel model (PassTimes is immutable, so sharing it is
        safe; the kernel models of one builder differ only in the SMs they leave)."""
        cache = self.__dict__.setdefault("_forward_cache", {})
        key = (self.model.is_moe(layer), k.reserved_units)
        if key not in cache:
            cache[key] = layer_forward(self.model, layer, self.shape, k)
        return cache[key]

    def forward_time(self, q: int, kernels: KernelModel | None = None) -> float:
        k, shape = kernels or self.kernels, self.shape
        times = sum((self._layer_forward(i, k) for i in self.chunks[q]), PassTimes())
        if q == 0:
            times += embedding_forward(self.model, shape, k)
        if q == self.last:  # the output head, and each multi-token-prediction module's block
            extra = self._layer_forward(self.model.layers - 1, k)
            extra += self._mtp_projection(k)
            times += logits_forward(self.model, shape, k)
            for _ in range(self.model.mtp_depth):
                times += extra + logits_forward(self.model, shape, k)
        return times.total

    def _mtp_projection(self, k: KernelModel) -> PassTimes:
        """An MTP module's own kernels (DeepSeek-V3 section 2.2): the embedding of the shifted
        tokens, two RMSNorms and the 2h -> h projection."""
        tokens, h = self.shape.tokens, self.model.hidden
        gemm = k.gemm(tokens, h / self.plan.tp, 2 * h)
        return PassTimes(gemm=gemm, memory=k.memory(6 * tokens * h * k.activation_bytes))

    def _layer_backward(self, layer: int, recompute: str, k: KernelModel) -> float:
        """Depends on the layer only through whether it is an MoE layer (as layer_forward and
        selective_recompute do): computed once per (kind, recompute, kernel model)."""
        cache = self.__dict__.setdefault("_backward_cache", {})
        key = (self.model.is_moe(layer), recompute, k.reserved_units)
        if key not in cache:
            shape = self.shape
            forward = self._layer_forward(layer, k)
            attention = attention_forward(self.model, shape, k).attention
            selective = selective_recompute(self.model, layer, shape, k, self.recompute)
            core_backward = attention_backward(self.model, shape, k, attention)
            cache[key] = layer_backward(
                forward, attention, recompute, selective, core_backward
            ).total
        return cache[key]

    def _recompute_of(self, q: int, index: int) -> str:
        """Full recompute of only the first recompute_layers layers of each chunk (Megatron's
        block method); the others keep their activations."""
        plan = self.plan
        if plan.recompute == "full" and plan.recompute_layers and index >= plan.recompute_layers:
            return "none"
        return plan.recompute

    def backward_time(self, q: int, kernels: KernelModel | None = None) -> float:
        k, shape, total = kernels or self.kernels, self.shape, 0.0
        for index, i in enumerate(self.chunks[q]):
            total += self._layer_backward(i, self._recompute_of(q, index), k)
        if q == self.last:  # logits are never recomputed
            logits = logits_forward(self.model, shape, k).scaled(2, 0, 2).total
            block = self._layer_backward(self.model.layers - 1, self.plan.recompute, k)
            block += self._mtp_projection(k).scaled(2, 0, 2).total
            total += logits + self.model.mtp_depth * (block + logits)
        return total

    def weight_time(self, q: int) -> float:
        """The weight-gradient GEMMs of a backward at a position (costs.layers.weight_gradient;
        the head's and each MTP module's too): DualPipe's W."""
        k, shape, model = self.kernels, self.shape, self.model
        total = sum(weight_gradient(model, i, shape, k) for i in self.chunks[q])
        if q == self.last:
            logits = logits_forward(model, shape, k).gemm
            block = weight_gradient(model, model.layers - 1, shape, k)
            total += logits + model.mtp_depth * (block + self._mtp_projection(k).gemm + logits)
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
        if self.dual:
            slots = dualpipe_slots(plan.pp, stage, plan.microbatches)
            order = [p for slot in slots for p in slot]
        else:
            order = stage_order(plan.schedule, plan.pp, stage, plan.microbatches, self.v)
        t = Template()
        self._grad_ops: list[int] = []  # gradient reductions the optimizer waits for
        self._ends = _chunk_ends(order)
        if self._repeats_passes(stage, order):
            self._finish_step(t, stage, self._pass_block(t, stage, order))
            return t
        inputs = {}
        for kind, chunk, mb in order:  # receives are posted first, in the order used
            recv = self._recv(kind, chunk, self.position(stage, chunk))
            if recv is not None:
                inputs[kind, chunk, mb] = t.add(recv)
        last = -1
        if self.dual:
            for slot in slots:
                last = self._slot(t, stage, slot, inputs)
        else:
            for kind, chunk, mb in order:
                q, recv = self.position(stage, chunk), inputs.get((kind, chunk, mb))
                last = self._pass(t, kind, chunk, q, mb, recv)
        self._finish_step(t, stage, last)
        return t

    def _recv(self, kind: str, chunk: int, q: int) -> TemplateOp | None:
        """The receive a pass waits for: activations from the previous position (forward),
        gradients from the next (backward); None at the ends of the pipeline."""
        d = self.direction(chunk)
        if kind == "F" and q > 0:
            return self._p2p(
                Kind.RECV, RECV_STREAMS["F", -d], -d, self.tag(0, q, chunk), "recv act"
            )
        if kind == "B" and q < self.last:
            tag = self.tag(1, q + 1, chunk)
            return self._p2p(Kind.RECV, RECV_STREAMS["B", d], d, tag, "recv grad")
        return None

    def _repeats_passes(self, stage: int, order) -> bool:
        """Whether each pass is its (kind, chunk)'s op pattern with only the microbatch in its
        names changed: no DualPipe slots, no ZeRO-3 gathers, no pass the stack splits."""
        if self.dual or self._zero3 or not order:
            return False
        # Outside ZeRO-3 the stack splits at most a chunk's first forward and last backward.
        ends = [(("F", c, first), ("B", c, final)) for c, (first, final) in self._ends.items()]
        passes = [p for pair in ends for p in pair]
        return all(self._split(k, c, self.position(stage, c), mb) is None for k, c, mb in passes)

    def _pass_block(self, t: Template, stage: int, order) -> int:
        """The passes of `order` as one block of copies (Template.add_block): each (kind, chunk)
        has its receive and its pass written once, by _recv and _pass, as prototypes copied
        per microbatch with numpy; the receives first, in order of use, as _pass and the
        object path lay them out. Returns the last pass's last op (what _pass returns)."""
        kinds, chunks, mbs = zip(*order, strict=True)
        passes = np.array(chunks, np.int64) * 2 + np.array([k == "B" for k in kinds])
        seen = np.bincount(passes) > 0
        codes, key = np.flatnonzero(seen), (np.cumsum(seen) - 1)[passes]  # as 0, 1, ...
        mb = np.array(mbs, np.int64)
        prototypes: list[TemplateOp] = []
        recv_of, starts, lengths, lasts = [], [], [], []
        for kind, chunk in (("FB"[c % 2], c // 2) for c in codes.tolist()):
            q = self.position(stage, chunk)
            recv = self._recv(kind, chunk, q)
            recv_of.append(-1 if recv is None else len(prototypes))
            prototypes += [] if recv is None else [recv]
            one = Template()  # its compute op first (index 0), with no deps: the receive's
            lasts.append(self._pass(one, kind, chunk, q, MARK, None))
            starts.append(len(prototypes))
            lengths.append(len(one))
            prototypes += one.ops
        recv = np.array(recv_of, np.int64)[key]
        received = recv >= 0
        n_recv = int(received.sum())
        length = np.array(lengths, np.int64)[key]
        first = run_starts(length)
        within = np.arange(int(length.sum()), dtype=np.int64) - np.repeat(first, length)
        base = n_recv + first
        extra = np.full(n_recv + len(within), -1, np.int64)
        extra[base] = np.where(received, np.cumsum(received) - 1, -1)  # the pass's receive
        block = OpBlock(
            prototypes,
            proto=np.concatenate(
                [recv[received], np.repeat(np.array(starts)[key], length) + within]
            ),
            base=np.concatenate([np.zeros(n_recv, np.int64), np.repeat(base, length)]),
            extra=extra,
            label=np.concatenate([mb[received], np.repeat(mb, length)]),
        )
        t.add_block(block)
        return int(base[-1] + lasts[key[-1]])

    # -- DualPipe's slots (plans.schedules.dualpipe_slots) --------------------------------------

    def _slot(self, t: Template, stage: int, slot: Slot, inputs: dict) -> int:
        """One DualPipe slot; returns the compute stream's last op. A lone pass runs as 1F1B
        runs it (its collectives and sends on the compute stream, all SMs); a full backward
        is its B then its W; an overlapped F&B slot runs as _overlapped says."""
        if len(slot) == 3:
            return self._overlapped(t, stage, slot, inputs)
        kind, chunk, mb = slot[0]
        q = self.position(stage, chunk)
        if kind == "W":
            return self._weight(t, q, mb)
        return self._pass(t, kind, chunk, q, mb, inputs.get(slot[0]), weight=len(slot) == 2)

    def _weight(self, t: Template, q: int, mb: int) -> int:
        """A W pass (weight gradients), then ZeRO-3's reduce-scatter of the gradients."""
        op = TemplateOp(f"W q{q} mb{mb}", Kind.COMPUTE, COMPUTE, duration=self.weight_s[q])
        last = t.add(op)
        if self._zero3:
            t.add(self._zero3_grads(q, last))
        return last

    def _overlapped(self, t: Template, stage: int, slot: Slot, inputs: dict) -> int:
        """DeepSeek's F&B chunk: the forward of one microbatch and the full backward (B and W)
        of another in one compute op on the SMs communication leaves (overlap_*_s), while both
        passes' expert all-to-alls run beside it on their own stream (DeepSeek-V3 Figure 4:
        each chunk's dispatch and combine hidden behind the other's compute). The slot ends
        when both are done (a wait joins them); its pipeline sends then go on their own
        stream. Tensor- and context-parallel collectives stay on the compute stream."""
        (_, fc, fmb), (_, bc, bmb) = slot[0], slot[1]
        fq, bq = self.position(stage, fc), self.position(stage, bc)
        deps = [inputs[p] for p in slot[:2] if p in inputs]
        deps += [self._zero3_gather(t, q) for q in (fq, bq) if self._zero3]
        begin = t.add(TemplateOp(f"F&B begin mb{fmb}/{bmb}", Kind.WAIT, COMPUTE, deps=deps))
        duration = self.overlap_forward_s[fq] + self.overlap_backward_s[bq]
        name = f"F&B q{fq}/{bq} mb{fmb}/{bmb}"
        t.add(TemplateOp(name, Kind.COMPUTE, COMPUTE, duration=duration, deps=[begin]))
        comm = [begin]
        for q, forward in ((fq, True), (bq, False)):
            for op in self._pass_collectives(q, forward, begin, EP_STREAM):
                index = t.add(op)
                if op.stream == EP_STREAM:
                    comm = [index]
        end = t.add(TemplateOp(f"F&B end mb{fmb}/{bmb}", Kind.WAIT, COMPUTE, deps=comm))
        sends = []  # (tag, stage offset, name): activations onward, gradients back
        if fq < self.last:
            sends.append((self.tag(0, fq + 1, fc), self.direction(fc), f"send act mb{fmb}"))
        if bq > 0:
            sends.append((self.tag(1, bq, bc), -self.direction(bc), f"send grad mb{bmb}"))
        for tag, offset, name in sends:
            t.add(self._p2p(Kind.SEND, SEND_STREAM, offset, tag, name, [end]))
        if self._zero3:
            t.add(self._zero3_grads(bq, end))
        return end

    @property
    def _zero3(self) -> bool:
        return self.plan.zero == 3 and self.plan.dp > 1

    def _zero3_gather(self, t: Template, q: int) -> int:
        """ZeRO-3: gather a chunk's weights before its pass."""
        nbytes, name = self.params[q] * 2, f"zero3 gather q{q}"
        return t.add(self._collective("dp", Collective.ALL_GATHER, nbytes, 1, [], name, DP_STREAM))

    def _zero3_grads(self, q: int, after: int) -> TemplateOp:
        """ZeRO-3: reduce-scatter a chunk's gradients after its backward."""
        nbytes, name = self._grad_bytes(q), f"zero3 grads q{q}"
        return self._collective(
            "dp", Collective.REDUCE_SCATTER, nbytes, 1, [after], name, DP_STREAM
        )

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

    def _pass(
        self,
        t: Template,
        kind: str,
        chunk: int,
        q: int,
        mb: int,
        recv: int | None,
        weight: bool = False,
    ) -> int:
        """One pass, everything on the compute stream (Megatron's sends block it). DualPipe's
        B is the input-gradient part alone, followed by its W when `weight` (a full backward:
        the gradient is sent after both, as DeepSeek's backward chunk sends it)."""
        forward, d = kind == "F", self.direction(chunk)
        deps = [] if recv is None else [recv]
        # Plan refuses a stack that splits passes with DualPipe (dualpipe_stack_conflict).
        split = None if self.dual else self._split(kind, chunk, q, mb)
        if split is not None:  # layer by layer, with the stack's gathers and reductions
            duration = self.forward_s[q] if forward else self.backward_s[q]
            pieces = max(1, len(self.chunks[q]) * split.pop("per_layer"))
            last, reduced = split_pass(t, f"{kind} q{q} mb{mb}", duration, pieces, deps, **split)
            self._grad_ops += reduced
        else:
            if self._zero3:  # gather this chunk's weights first
                deps.append(self._zero3_gather(t, q))
            duration = self.forward_s[q] if forward else self.backward_s[q]
            if self.dual and not forward:
                duration = self.input_s[q]
            name = f"{kind} q{q} mb{mb}"
            last = t.add(TemplateOp(name, Kind.COMPUTE, COMPUTE, duration=duration, deps=deps))
        done = last
        for op in self._pass_collectives(q, forward, last):
            index = t.add(op)
            if op.stream != OVERLAP_STREAM:  # overlapped TP / CP comm does not hold the send
                done = index
            if op.stream == COMPUTE:
                last = index
        if weight:
            duration = self.weight_s[q]
            last = done = t.add(
                TemplateOp(f"W q{q} mb{mb}", Kind.COMPUTE, COMPUTE, duration=duration)
            )
        if forward and q < self.last:
            tag = self.tag(0, q + 1, chunk)
            last = t.add(self._p2p(Kind.SEND, COMPUTE, d, tag, f"send act mb{mb}", [done]))
        if not forward and q > 0:
            tag = self.tag(1, q, chunk)
            last = t.add(self._p2p(Kind.SEND, COMPUTE, -d, tag, f"send grad mb{mb}", [done]))
        if not forward and self._zero3 and split is None and (weight or not self.dual):
            t.add(self._zero3_grads(q, done))
        return last

    def pass_collectives(self, q: int, forward: bool) -> list[TemplateOp]:
        """The collectives one pass at position q runs (see _pass_collectives), for callers
        that price them without a template (plan screening)."""
        return self._pass_collectives(q, forward, 0)

    def _pass_collectives(
        self, q: int, forward: bool, after: int, ep_stream: int = COMPUTE
    ) -> list[TemplateOp]:
        """Tensor-, expert- and context-parallel collectives of one pass, each kind as one op
        repeated once per occurrence, after the pass's compute. They are not overlapped with
        compute, except expert all-to-alls in DualPipe's overlapped F&B chunks, which run them
        on `ep_stream`."""
        plan, model, layers = self.plan, self.model, len(self.chunks[q])
        passes = 1 if forward else (2 if plan.recompute == "full" else 1)
        activation = self.shape.tokens * model.hidden * self.kernels.activation_bytes
        ops, deps = [], [after]
        moe = self.moe_layers(q)
        tp_stream = OVERLAP_STREAM if self.stack.overlap_tp_comm else COMPUTE
        cp_stream = OVERLAP_STREAM if self.stack.overlap_cp_comm else COMPUTE
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
                    tp_stream,
                )
            )
        if plan.ep > 1 and moe:  # dispatch and combine per MoE layer
            # DualPipe's schedule places its all-to-alls (ep_stream); other schedules follow
            # the stack (Megatron-Core: on the compute stream, exposed)
            stream = EP_STREAM if self.stack.overlaps_ep(False) else COMPUTE
            for name, element in self._expert_elements(forward):
                op = self._collective(
                    "ep",
                    Collective.ALL_TO_ALL,
                    0.0,
                    moe * passes,
                    deps,
                    name,
                    ep_stream if self.dual else stream,
                )
                op.nbytes, op.message_bytes = self._all_to_all_bytes(element)
                op.fanout = self.routing.fanout
                ops.append(op)
        if plan.expert_tp > 1 and moe:  # all-gather the received copies over etp before
            # the experts, reduce-scatter their outputs after (Megatron-Core's dispatcher)
            copies = self.expert_load.copies
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
                    cp_stream,
                )
            )
        return ops

    @cached_property
    def expert_load(self) -> moe_costs.Routing:
        """The busiest expert rank's load in one MoE layer of one microbatch (the same at every
        layer and pass: podsim.costs.moe.routing), costed once per builder."""
        return moe_routing(self.model, self.shape)

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
        """(bytes of the busiest rank, bytes of one token) in one expert all-to-all: each rank
        sends one copy of each token per distinct rank it is routed to (copies for two experts
        of one rank are sent once; node-forwarding sends one copy per node over the fabric:
        the op's fanout). Senders are balanced, receivers are not: the busiest expert rank
        receives (dispatch) and returns (combine) its load's share over the mean
        (podsim.costs.moe.Routing.imbalance, after any capacity drop), and an all-to-all ends
        when its busiest member does."""
        token = self.model.hidden * element
        ranks = self.routing.ranks
        return self.shape.moe_tokens * token * ranks * self.expert_load.imbalance, token

    def _grad_bytes(self, q: int, part: int | None = None) -> float:
        """Gradient bytes at a position: all, or only the non-expert (part 0) or routed-expert
        (part 1) parameters. Megatron reduces BF16 gradients in FP32
        (--accumulate-allreduce-grads-in-fp32)."""
        params = self.params[q] if part is None else self.split[q][part]
        return params * (2 if self.plan.precision == "fp16" else 4)

    def _split(self, kind: str, chunk: int, q: int, mb: int) -> dict | None:
        """How the stack splits this pass (split_pass's arguments, and pieces per layer; 0: the
        chunk in one piece), or None. Split: every pass under ZeRO-3 gathers per layer or
        module, with a bounded prefetch or without a backward gather; a chunk's first forward
        under an overlapped ZeRO-1/2 weight gather; its last backward under an overlapped
        gradient reduction."""
        plan, stack, forward = self.plan, self.stack, kind == "F"
        first, final = self._ends[chunk]
        if plan.zero == 3 and plan.dp > 1:
            per_layer = PIECES_PER_LAYER[stack.zero3_granularity]
            if per_layer or stack.zero3_prefetch != UNBOUNDED or not stack.zero3_regather:
                weights = Transfer("dp", Collective.ALL_GATHER, self.params[q] * 2, "zero3 gather")
                grads = Transfer(
                    "dp", Collective.REDUCE_SCATTER, self._grad_bytes(q), "zero3 grads"
                )
                return {
                    "per_layer": per_layer,
                    "gathers": (weights,) if forward or stack.zero3_regather else (),
                    "prefetch": stack.zero3_prefetch,
                    "reductions": () if forward else (grads,),
                }
            return None
        if forward and mb == first and plan.zero in (1, 2) and stack.overlap_param_gather:
            gathers = self._dp_transfers(q, Collective.ALL_GATHER)
            return {"per_layer": 1, "gathers": gathers} if gathers else None
        if not forward and mb == final and plan.zero < 3 and stack.overlap_grad_reduce:
            op = Collective.ALL_REDUCE if plan.zero == 0 else Collective.REDUCE_SCATTER
            reductions = self._dp_transfers(q, op)
            return {"per_layer": 1, "reductions": reductions} if reductions else None
        return None

    def _dp_transfers(self, q: int, op: Collective) -> tuple[Transfer, ...]:
        """A position's weights (all-gather, 2 bytes each) or gradients over dp, and routed
        experts' over expert dp when they are apart (as _finish_step groups them)."""
        plan = self.plan
        apart = bool(self.model.experts) and (plan.ep > 1 or plan.expert_tp != plan.tp)
        parts = [("dp", plan.dp, 0 if apart else None)]
        if apart:
            parts.append(("edp", plan.expert_dp, 1))
        out = []
        for role, size, part in parts:
            if size > 1:
                params = self.params[q] if part is None else self.split[q][part]
                gather = op == Collective.ALL_GATHER
                nbytes = params * 2 if gather else self._grad_bytes(q, part)
                name = f"{role} {'weights' if gather else 'grads'} q{q}"
                out.append(Transfer(role, op, nbytes, name))
        return tuple(out)

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
        deps = [last, *self._grad_ops]
        for role, size, _, part in groups:
            if size > 1 and plan.zero < 3 and not self.stack.overlap_grad_reduce:
                grads = sum(self._grad_bytes(q, part) for q in stage_chunks)
                name = "dp grads" if role == "dp" else "expert dp grads"
                deps.append(t.add(self._collective(role, op, grads, 1, [last], name, DP_STREAM)))
        shard = sum(n / size if plan.zero >= 1 else n for _, size, n, _ in groups)
        update = self.kernels.memory(ADAM_BYTES_PER_PARAM * shard)
        step = t.add(TemplateOp("optimizer", Kind.COMPUTE, COMPUTE, duration=update, deps=deps))
        for role, size, n, _ in groups:
            if size > 1 and plan.zero in (1, 2) and not self.stack.overlap_param_gather:
                name = "zero gather weights" if role == "dp" else "zero gather expert weights"
                gather = self._collective(role, Collective.ALL_GATHER, n * 2, 1, [step], name)
                t.add(replace(gather, stream=DP_STREAM))

    def lower(self) -> LoweredStep:
        plan = self.plan
        templates = [self.template(stage) for stage in range(plan.pp)]
        scale_collectives(templates, self.stack)
        layout = Layout(plan.tp, plan.cp, plan.dp, plan.pp)
        return LoweredStep(templates, layout, plan.ep, plan.expert_tp)


def _chunk_ends(order) -> dict[int, tuple[int, int]]:
    """Per chunk: the microbatch of its first forward and of its last backward."""
    first: dict[int, int] = {}
    final: dict[int, int] = {}
    for kind, chunk, mb in order:
        if kind == "F":
            first.setdefault(chunk, mb)
        else:
            final[chunk] = mb
    return {c: (first.get(c, -1), final.get(c, -1)) for c in first.keys() | final.keys()}


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
        # DualPipe: a W op per backward, less one compute op and plus two waits per
        # overlapped F&B slot, which also holds one of the W's: m more in all.
        stages.append(ops + (m if dual else 0))
    return stages


def check_step_size(plan: Plan, v: int) -> None:
    """Refuses a step too large to lower, from its estimated size, before anything is built for
    it (SpecError with the estimate and the limit). Every rank's program is checked where it is
    built (build_program): a symmetric run, with or without noise, never builds it."""
    template, _ = estimate_step_ops(plan, v)
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
