"""Step times of one serving deployment: kernel times (podsim.costs.serving) plus its
collectives, timed by the engine's closed form (podsim.engine.core.collective_time over the C++
`collective_time`, the same models the event engine runs), with the algorithm a parameter
("auto": the engine's choice among them, the expert all-to-alls low-latency and node-forwarded
included). The EP all-to-alls carry the shape the training lowering gives them: one token's
message and the fanout of a node copy, from the hypergeometric routing of
podsim.lowering.routing over the cluster's scale-up domains (EP ranks packed into domains).

Overlap: with one micro-batch a step is compute + communication. With two (DeepSeek's
dual micro-batch prefill and decode, SGLang's two-batch overlap) each micro-batch's
all-to-alls hide under the other's compute, but only where a window pairs them: an all-to-all
starts when its own micro-batch's compute before it is done (Deployment._two_batch), so per
MoE layer the step is four windows of max(compute, communication), never less than
max(compute, communication) summed over the micro-batches (weights are read once per
micro-batch, as they are). Pipeline stages (pp) each hold layers / pp and run pp micro-batches
of batch / pp sequences; a round of decode takes pp stage times.
"""

from dataclasses import dataclass, field, replace

import numpy as np

from podsim.costs.serving import Comm, StepWork, decode_work, prefill_work
from podsim.engine.core import collective_time
from podsim.lowering.program import Algorithm, Collective
from podsim.lowering.routing import routing
from podsim.plans.serving import Pool, ServePlan
from podsim.specs.clusters import Cluster
from podsim.specs.models import Model


@dataclass(frozen=True)
class StepTime:
    """One step of the deployment, seen from one device."""

    time_s: float
    compute_s: float
    comm_s: float
    exposed_comm_s: float
    parts: dict[str, float] = field(default_factory=dict)  # compute seconds by part
    comm_parts: dict[str, float] = field(default_factory=dict)  # comm seconds by collective
    work: StepWork | None = None  # one micro-batch's work
    overhead_s: float = 0.0  # what the plan's decode / prefill efficiency adds

    def to_dict(self) -> dict[str, float]:
        return {
            "time_s": self.time_s,
            "compute_s": self.compute_s,
            "comm_s": self.comm_s,
            "exposed_comm_s": self.exposed_comm_s,
            "deployment_overhead_s": self.overhead_s,
            **{f"{k}_s": v for k, v in sorted(self.parts.items())},
            **{f"{k}_s": v for k, v in sorted(self.comm_parts.items())},
        }


class Deployment:
    """A model served with a plan on a pool of a cluster; times steps (memoized)."""

    def __init__(self, model: Model, plan: ServePlan, pool: Pool, cluster: Cluster) -> None:
        self.model, self.plan, self.pool = model, plan, pool
        self.cluster = cluster.with_devices(max(pool.devices, 1))
        self.chip = cluster.chip
        self.algorithm = int(Algorithm.parse(plan.ep_algorithm))
        self.ep_routing = self._ep_routing()
        self._comm_cache: dict[tuple, float] = {}
        self._cache: dict[tuple, StepTime] = {}

    def _ep_routing(self) -> tuple[float, float] | None:
        """(distinct ranks, distinct nodes) a token's routed copies reach in the EP group: the
        group's ep ranks fill scale-up domains in order; the expert slots (redundant ones
        included) spread evenly over them; node-limited routing as the model sets it."""
        model, ep = self.model, self.pool.ep
        if not model.is_moe_model or ep <= 1:
            return None
        slots = model.experts + self.plan.redundant_experts
        r = routing(slots, model.top_k, ep, self.cluster.domain_size, model.max_routed_nodes)
        return r.ranks, r.nodes

    def comm_seconds(self, comm: Comm) -> float:
        """One collective's time: the closed form of the engine (no contention)."""
        key = (
            comm.op,
            comm.group,
            comm.bytes_per_rank,
            comm.message_bytes,
            comm.fanout,
            comm.low_latency,
        )
        if key not in self._comm_cache:
            if comm.bytes_per_rank <= 0 or comm.group <= 1:
                self._comm_cache[key] = 0.0
            else:
                self._comm_cache[key] = self._time(comm)
        return self._comm_cache[key]

    def _time(self, comm: Comm) -> float:
        op = int(Collective.parse(comm.op))
        algorithm = self.algorithm if comm.op == "all-to-all" else int(Algorithm.AUTO)
        if algorithm == Algorithm.LOW_LATENCY and not comm.low_latency:
            # DeepEP's low-latency kernels serve decode; prefill steps (one copy per distinct
            # rank) take its normal kernels: the engine's choice.
            algorithm = int(Algorithm.AUTO)
        ranks = np.arange(comm.group, dtype=np.int32)
        nbytes, message, fanout = comm.bytes_per_rank, comm.message_bytes, comm.fanout
        return float(
            collective_time(self.cluster, op, algorithm, ranks, nbytes, message, fanout)[1]
        )

    def _timed(self, work: StepWork, micro: int) -> StepTime:
        comm_parts: dict[str, float] = {}
        for comm in work.comms:
            seconds = micro * comm.count * self.comm_seconds(comm)
            comm_parts[comm.label] = comm_parts.get(comm.label, 0.0) + seconds
        compute = micro * work.compute_s
        comm = sum(comm_parts.values())
        time = compute + comm if micro == 1 else max(compute, comm, self._two_batch(work))
        parts = {k: micro * v for k, v in work.parts.items()}
        return StepTime(time, compute, comm, time - compute, parts, comm_parts, work)

    def _two_batch(self, work: StepWork) -> float:
        """Two micro-batches A and B through the MoE layers, each all-to-all waiting for its
        own micro-batch's compute (SGLang's two-batch overlap, after DeepSeek's profile-data):
        per layer four windows, each as long as its longer side: B's attention with A's
        dispatch, A's experts with B's dispatch, B's experts with A's combine, A's next
        attention with B's combine. Other compute (dense layers, head, MTP) runs twice."""
        seconds = {c.label: self.comm_seconds(c) for c in work.comms}
        d, c = seconds.get("ep_dispatch", 0.0), seconds.get("ep_combine", 0.0)
        a, e = work.moe_layer_s
        windows = max(a, d) + max(e, d) + max(e, c) + max(a, c)
        rest = work.compute_s - work.moe_layers * (a + e)
        return 2 * rest + work.moe_layers * windows

    def decode(self, batch: float, context: float) -> StepTime:
        """A decode step (a round of all pipeline stages) of `batch` sequences per attention
        rank with `context` KV tokens each."""
        key = ("decode", float(batch), float(context))
        if key not in self._cache:
            pp, micro = self.pool.pp, self.pool.micro_batches
            seqs = batch / (pp * micro)
            work = decode_work(
                self.model, self.plan, self.pool, self.chip, seqs, context, self.ep_routing
            )
            stage = self._timed(work, micro)
            self._cache[key] = _rounds(_sustained(stage, self.plan.decode_efficiency), pp)
        return self._cache[key]

    def prefill(self, seqs: float, new_tokens: float, cached: float = 0.0) -> StepTime:
        """A prefill step of `seqs` sequences per attention rank computing `new_tokens` each
        after `cached` tokens already cached."""
        key = ("prefill", float(seqs), float(new_tokens), float(cached))
        if key not in self._cache:
            pp, micro = self.pool.pp, self.pool.micro_batches
            per = seqs / (pp * micro)
            work = prefill_work(
                self.model,
                self.plan,
                self.pool,
                self.chip,
                per,
                new_tokens,
                cached,
                self.ep_routing,
            )
            stage = _sustained(self._timed(work, micro), self.plan.prefill_efficiency)
            self._cache[key] = _rounds(stage, pp)
        return self._cache[key]


def _sustained(stage: StepTime, efficiency: float) -> StepTime:
    """The step as the deployment sustains it: the modelled step over the plan's efficiency,
    the difference shown as overhead."""
    time = stage.time_s / efficiency
    return replace(stage, time_s=time, overhead_s=time - stage.time_s)


def _rounds(stage: StepTime, pp: int) -> StepTime:
    """pp micro-batches through pp stages: pp stage times per round."""
    if pp == 1:
        return stage
    scale = lambda d: {k: pp * v for k, v in d.items()}  # noqa: E731
    return StepTime(
        pp * stage.time_s,
        pp * stage.compute_s,
        pp * stage.comm_s,
        pp * stage.exposed_comm_s,
        scale(stage.parts),
        scale(stage.comm_parts),
        stage.work,
        pp * stage.overhead_s,
    )
