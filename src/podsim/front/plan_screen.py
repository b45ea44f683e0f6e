"""A plan's step time in closed form, for screening the candidates of a search before the
engine runs the best of them (docs/search.md, "The screening estimate").

It is an estimate, neither a lower nor an upper bound: the same kernel times, collective
closed forms and pipeline sends as the lowering, put together by textbook pipeline formulas
instead of an event simulation:

- pass times: the lowering's own per-layer forward and backward times (StepBuilder on one
  layer per position, so the embedding and the head sit on the first and last layer), plus
  the pass's tensor-, context- and expert-parallel collectives (the lowering's ops, priced by
  the engine's closed forms on the group of rank 0) and its pipeline send (launch + latency
  + bytes / bandwidth of the link it crosses), all on the compute stream as Megatron runs them;
- pipeline: with S_s a stage's work per microbatch (all its chunks) and v chunks per stage,
  m S_max + (sum_s S_s - S_max) / v for 1F1B, GPipe and interleaved (Narayanan et al. 2021:
  bubble (p - 1) S / v for equal stages); DualPipe: (m / 2) S_max over both mirrored chunks of
  a device plus DeepSeek-V3's DualPipe bubble (p / 2 - 1)(F&B + B - 3W) for the mean
  position's F&B (an overlapped forward and backward pair), full backward B and its
  weight-gradient part W (the lowering's weight_time);
- the stack: expert all-to-alls overlap compute where the stack runs them on their own stream
  (DualPipe by default: each pass takes the longer of the two); tensor- and context-parallel
  collectives the stack overlaps show only where they exceed the pass's compute;
- after the last backward: gradient reduction over dp (and expert dp), the optimizer
  (Adam's bytes at memory speed) and the ZeRO weight gather, all exposed; ZeRO-3: per
  backward a reduce-scatter and the next weight gather exposed (they queue on one stream
  behind the backward), a backward's gather hidden by the forward before it.

What it leaves out: stages finishing at different times (it takes the busiest), the engine's
wave pricing of concurrent copies of a collective across pods, contention, the exact DualPipe
timeline (its warm-up slots run unoverlapped), and the stack's overlap of gradient reduction
and weight gathers with the backward (counted exposed). The search reports each simulated
plan's estimate next to its simulated time, so the error is always visible.
"""

from dataclasses import dataclass, replace

import numpy as np

from podsim.engine.core import collective_time
from podsim.lowering.autotune import stage_memory, virtual_stage_options
from podsim.lowering.overlap import OVERLAP_STREAM
from podsim.lowering.program import Algorithm, Collective
from podsim.lowering.training import ADAM_BYTES_PER_PARAM, StepBuilder, position_layers
from podsim.plans.training import Plan
from podsim.specs.clusters import Cluster


@dataclass(frozen=True)
class Estimate:
    """A plan's screening estimate (seconds), and its memory per device (bytes)."""

    step_time_s: float
    compute_s: float
    exposed_comm_s: float
    bubble_s: float
    memory_per_device_bytes: float
    fits_in_memory: bool

    def to_dict(self) -> dict[str, float | bool]:
        return {
            "step_time_s": self.step_time_s,
            "compute_s": self.compute_s,
            "exposed_comm_s": self.exposed_comm_s,
            "bubble_s": self.bubble_s,
        }


@dataclass(frozen=True)
class _LayerCosts:
    """Per layer (the embedding on the first, the head on the last): forward and backward
    compute, the blocking collectives of each pass, the overlappable expert all-to-alls, and
    the (non-expert, expert) parameters one rank holds."""

    forward: np.ndarray
    backward: np.ndarray
    comm_forward: np.ndarray
    comm_backward: np.ndarray
    ep_forward: np.ndarray
    ep_backward: np.ndarray
    hidden: np.ndarray  # tensor- and context-parallel comm the stack overlaps with GEMMs
    weight: np.ndarray  # the backward's weight-gradient part (DualPipe's W)
    dense_params: np.ndarray
    expert_params: np.ndarray
    send_bytes: float
    grad_bytes: float  # per parameter
    memory_s_per_byte: float


def _cumulative(values: list[float]) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(values)])


class Screener:
    """Estimates plans of one model on one cluster; caches what plans share (layer costs per
    shape, collective times per group and size)."""

    def __init__(self, model, cluster: Cluster) -> None:
        self.model, self.cluster = model, cluster
        self._layers: dict[tuple, _LayerCosts] = {}
        self._collectives: dict[tuple, float] = {}

    # -- what plans share ------------------------------------------------------------------

    def _shape_key(self, plan: Plan) -> tuple:
        return (
            plan.tp,
            plan.cp,
            plan.micro_batch,
            plan.ep,
            plan.expert_tp,
            plan.recompute,
            plan.overlap_sms,
        )

    def layer_costs(self, plan: Plan) -> _LayerCosts:
        key = self._shape_key(plan)
        if key not in self._layers:
            self._layers[key] = self._cost_layers(plan)
        return self._layers[key]

    def _cost_layers(self, plan: Plan) -> _LayerCosts:
        """The lowering's costs on one layer per position (one pipeline stage, no chunks
        merged), so that any split of the layers is a sum of them."""
        layers = self.model.layers
        single = replace(
            plan,
            pp=1,
            global_batch=plan.dp * plan.micro_batch,
            schedule="1f1b",
            virtual_stages=0,
            comm_sms=plan.overlap_sms,
            pipeline_split="even",
            zero=0,
            recompute_layers=0,
        )
        builder = StepBuilder(self.model, single, self.cluster, layers)
        blocking: dict[bool, list[float]] = {True: [], False: []}
        overlapped: dict[bool, list[float]] = {True: [], False: []}
        hidden: list[float] = []
        by_kind: dict[tuple[bool, bool], tuple[float, float, float]] = {}  # a layer's comm
        for i in range(layers):
            for forward in (True, False):
                key = (self.model.is_moe(i), forward)
                if key not in by_kind:
                    ops = builder.pass_collectives(i, forward)
                    ep = sum(self._price(single, op) for op in ops if op.role == "ep")
                    apart = [op for op in ops if op.role != "ep"]
                    stack = sum(self._price(single, o) for o in apart if o.stream == OVERLAP_STREAM)
                    other = sum(self._price(single, o) for o in apart if o.stream != OVERLAP_STREAM)
                    by_kind[key] = other, ep, stack
                blocking[forward].append(by_kind[key][0])
                overlapped[forward].append(by_kind[key][1])
            hidden.append(by_kind[(self.model.is_moe(i), True)][2])
            hidden[-1] += by_kind[(self.model.is_moe(i), False)][2]
        split = np.array(builder.split)
        element = builder.kernels.activation_bytes
        return _LayerCosts(
            forward=_cumulative(builder.forward_s),
            backward=_cumulative(builder.backward_s),
            comm_forward=_cumulative(blocking[True]),
            comm_backward=_cumulative(blocking[False]),
            ep_forward=_cumulative(overlapped[True]),
            ep_backward=_cumulative(overlapped[False]),
            hidden=_cumulative(hidden),
            weight=_cumulative([builder.weight_time(q) for q in range(layers)]),
            dense_params=_cumulative(split[:, 0]),
            expert_params=_cumulative(split[:, 1]),
            send_bytes=builder.shape.tokens * self.model.hidden * element / plan.tp,
            grad_bytes=2.0 if plan.precision == "fp16" else 4.0,
            memory_s_per_byte=builder.kernels.memory(1e9) / 1e9,
        )

    def _price(self, plan: Plan, op) -> float:
        """One op's collectives (all its repeats) by the engine's closed form, on rank 0's
        group of the op's role."""
        seconds = self.collective_s(
            plan, op.role, op.collective, op.nbytes, op.message_bytes, op.fanout
        )
        return seconds * op.repeat

    def collective_s(
        self,
        plan: Plan,
        role: str,
        op: Collective,
        nbytes: float,
        message: float = 0.0,
        fanout: float = 1.0,
    ) -> float:
        """One collective on rank 0's group of `role`, by the engine's closed form (cached),
        at the stack's collective efficiency (as lowering.overlap.scale_collectives)."""
        size, stride = _group(plan, role)
        if size < 2 or nbytes <= 0:
            return 0.0
        efficiency = plan.stack.collective_efficiency
        nbytes, message = nbytes / efficiency, message / efficiency
        key = (role, size, stride, int(op), nbytes, message, fanout)
        if key not in self._collectives:
            ranks = np.arange(size) * stride
            _, seconds = collective_time(
                self.cluster, int(op), int(Algorithm.AUTO), ranks, nbytes, message, fanout
            )
            self._collectives[key] = seconds
        return self._collectives[key]

    def send_s(self, plan: Plan, nbytes: float) -> float:
        """A pipeline send (launch + latency + bytes / bandwidth): scale-up when a stage is
        smaller than a domain (neighbour stages share it), else scale-out."""
        c = self.cluster
        stage = plan.tp * plan.cp * plan.dp
        if stage < c.domain_size:
            bandwidth, latency = c.scale_up_bandwidth * c.scale_up_efficiency, c.scale_up_latency
        else:
            bandwidth = c.scale_out_bandwidth * c.scale_out_efficiency
            latency = c.scale_out_latency
        return c.launch_latency + latency + nbytes / bandwidth

    # -- one plan ----------------------------------------------------------------------------

    def estimate(self, plan: Plan) -> Estimate:
        """The plan's screening estimate (see the module's doc) and its memory."""
        v = virtual_stage_options(self.model, plan)[0]
        memory = stage_memory(self.model, plan, v)
        costs = self.layer_costs(plan)
        dual = plan.schedule == "dualpipe"
        positions = plan.pp if dual else plan.pp * v
        ranges = position_layers(self.model, plan, positions)  # v enters as positions
        starts = np.array([r.start for r in ranges])
        stops = np.array([r.stop for r in ranges])

        def span(column: np.ndarray) -> np.ndarray:
            return column[stops] - column[starts]

        send = self.send_s(plan, costs.send_bytes) if plan.pp > 1 else 0.0
        last = positions - 1
        index = np.arange(positions)
        compute = span(costs.forward) + span(costs.backward)
        blocking = span(costs.comm_forward) + span(costs.comm_backward)
        blocking = blocking + send * ((index < last).astype(float) + (index > 0))
        blocking = blocking + np.maximum(0.0, span(costs.hidden) - compute)  # what shows
        expert = span(costs.ep_forward) + span(costs.ep_backward)
        if plan.stack.overlaps_ep(dual):  # all-to-alls on their own stream, beside compute
            work = np.maximum(compute + blocking, expert)
            exposed = blocking + np.maximum(0.0, expert - compute - blocking)
        else:
            work = compute + blocking + expert
            exposed = blocking + expert
        m = plan.microbatches
        stage_of = index % plan.pp if not dual else np.minimum(index, plan.pp - 1 - index)
        stages = plan.pp if not dual else (plan.pp + 1) // 2
        per_stage = np.bincount(stage_of, weights=work, minlength=stages)
        busiest = int(np.argmax(per_stage))
        mine = stage_of == busiest
        if dual:
            steady = m / 2 * per_stage[busiest]
            forward = span(costs.forward) + span(costs.comm_forward) + send * (index < last)
            backward = work - forward
            weight = span(costs.weight)  # F&B = the work of an overlapped pair
            bubble = (plan.pp / 2 - 1) * (work.mean() + backward.mean() - 3 * weight.mean())
        else:
            steady = m * per_stage[busiest]
            bubble = (per_stage.sum() - per_stage[busiest]) / v
        own_compute = (m / 2 if dual else m) * compute[mine].sum()
        own_exposed = (m / 2 if dual else m) * exposed[mine].sum()
        finish, optimizer = self._finish_s(plan, costs, starts[mine], stops[mine])
        zero3 = self._zero3_s(plan, costs, starts[mine], stops[mine]) if plan.zero == 3 else 0.0
        gathers = zero3
        step = steady + bubble + finish + gathers
        return Estimate(
            step_time_s=float(step),
            compute_s=float(own_compute + optimizer),
            exposed_comm_s=float(own_exposed + finish - optimizer + gathers),
            bubble_s=float(step - own_compute - own_exposed - finish - gathers),
            memory_per_device_bytes=memory.total,
            fits_in_memory=memory.fits(self.cluster.chip.hbm_bytes),
        )

    def _params(self, costs: _LayerCosts, starts, stops) -> tuple[float, float]:
        dense = float((costs.dense_params[stops] - costs.dense_params[starts]).sum())
        expert = float((costs.expert_params[stops] - costs.expert_params[starts]).sum())
        return dense, expert

    def _groups(self, plan: Plan, dense: float, expert: float) -> list[tuple[str, float]]:
        """(role, parameters) reduced and sharded together, as the lowering's _finish_step."""
        apart = bool(self.model.experts) and (plan.ep > 1 or plan.expert_tp != plan.tp)
        return [("dp", dense), ("edp", expert)] if apart else [("dp", dense + expert)]

    def _finish_s(self, plan: Plan, costs: _LayerCosts, starts, stops) -> tuple[float, float]:
        """(gradient reduction + optimizer + ZeRO weight gather, the optimizer alone) of the
        busiest stage's parameters, all exposed at the end of the step."""
        dense, expert = self._params(costs, starts, stops)
        op = Collective.ALL_REDUCE if plan.zero == 0 else Collective.REDUCE_SCATTER
        total = shard = 0.0
        for role, params in self._groups(plan, dense, expert):
            size = _group(plan, role)[0]
            if plan.zero < 3:
                total += self.collective_s(plan, role, op, params * costs.grad_bytes)
            if plan.zero in (1, 2):
                total += self.collective_s(plan, role, Collective.ALL_GATHER, params * 2)
            shard += params / size if plan.zero >= 1 else params
        optimizer = ADAM_BYTES_PER_PARAM * shard * costs.memory_s_per_byte
        return total + optimizer, optimizer

    def _zero3_s(self, plan: Plan, costs: _LayerCosts, starts, stops) -> float:
        """ZeRO-3's exposed data-parallel stream on the busiest device. The lowering queues,
        in pass order on one stream, a weight gather before each pass and a gradient
        reduce-scatter after each backward: the reduce-scatter waits for its backward, so the
        next forward's gather queues behind it and both are exposed; a backward's gather
        overlaps the forward before it. Per microbatch and position: scatter + gather +
        max(0, gather - forward)."""
        total = 0.0
        for start, stop in zip(starts, stops, strict=True):
            dense, expert = self._params(costs, np.array([start]), np.array([stop]))
            params = dense + expert
            gather = self.collective_s(plan, "dp", Collective.ALL_GATHER, params * 2)
            scatter = self.collective_s(
                plan, "dp", Collective.REDUCE_SCATTER, params * costs.grad_bytes
            )
            forward = costs.forward[stop] - costs.forward[start]
            total += scatter + gather + max(0.0, gather - forward)
        return total * plan.microbatches * (0.5 if plan.schedule == "dualpipe" else 1.0)


def _group(plan: Plan, role: str) -> tuple[int, int]:
    """(size, rank stride) of rank 0's group of a role (Megatron's order: tp fastest, then cp,
    dp; experts fold over a stage's ranks etp fastest, then ep, then expert dp)."""
    etp, ep = plan.expert_tp, plan.ep
    return {
        "tp": (plan.tp, 1),
        "cp": (plan.cp, plan.tp),
        "dp": (plan.dp, plan.tp * plan.cp),
        "etp": (etp, 1),
        "ep": (ep, etp),
        "edp": (plan.expert_dp, etp * ep),
    }[role]
