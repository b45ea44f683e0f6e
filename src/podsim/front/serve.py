"""`podsim serve`: prefill and decode of one deployment, SLO searches, disaggregated pools and
(phase = "both") a request-level run.

Decode at a batch: the step time of `batch` sequences per attention rank at `context_len`
KV tokens; TPOT = step / expected tokens per step (MTP); tokens/s per device = batch x tokens
per step / (step x tp x pp). TTFT: one request's prefill alone (plus the KV transfer when the
pools are disaggregated). With `tpot_slo` (and batch = "auto") the batch is the one that
maximises decode tokens/s per device among the candidates that meet the limit and fit; without
it, the largest that fits (capped by max_batch). Prefill: `batch` prompts per attention rank
per step (auto: the most that meet `ttft_slo` and fit, or a step of about PREFILL_TOKENS
tokens per rank).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from podsim.costs.energy import serving_energy
from podsim.costs.serving import kv_bytes_per_token
from podsim.costs.serving_memory import max_batch as memory_max_batch
from podsim.costs.serving_memory import serve_memory
from podsim.engine.serving import Deployment, StepTime
from podsim.errors import SpecError
from podsim.plans.serving import Pool, ServePlan, check_serve_plan, serve_plan_from_table
from podsim.results.serving import ServeResult
from podsim.specs.clusters import Cluster
from podsim.specs.models import Model

# Prompt tokens per attention rank in one prefill step when no TTFT limit says otherwise: a
# step large enough that GEMMs run at full efficiency (ESTIMATE; DeepSeek does not publish its
# prefill batch).
PREFILL_TOKENS = 16384
# Candidate batches of the SLO searches: every batch up to 64, then steps of 5% (a fixed set,
# so that a looser limit never loses a candidate).
DENSE_UP_TO = 64
GROWTH = 1.05


def candidates(cap: int) -> list[int]:
    """Batches tried by the searches, up to `cap`."""
    out = list(range(1, min(cap, DENSE_UP_TO) + 1))
    b = float(DENSE_UP_TO)
    while True:
        b *= GROWTH
        n = int(b)
        if n > cap:
            break
        if n > out[-1]:
            out.append(n)
    if cap > out[-1]:
        out.append(cap)
    return out


@dataclass(frozen=True)
class DecodePoint:
    batch: int
    step: StepTime
    tpot_s: float
    tokens_per_s_per_device: float


@dataclass(frozen=True)
class PrefillPoint:
    batch: int
    step: StepTime
    ttft_s: float
    tokens_per_s_per_device: float  # prompt tokens computed (prefix hits excluded)


class Server:
    """One deployment of a model with a serving plan on a cluster."""

    def __init__(
        self, model: Model, plan: ServePlan, cluster: Cluster, pool: Pool | None = None
    ) -> None:
        self.model, self.plan, self.cluster = model, plan, cluster
        self.pool = pool or plan.pool
        check_serve_plan(model, plan, self.pool, max(cluster.devices, self.pool.devices))
        self.deployment = Deployment(model, plan, self.pool, cluster)
        self.chip = cluster.chip

    # --- decode -------------------------------------------------------------------------

    def decode_at(self, batch: int, context: float | None = None) -> DecodePoint:
        context = self.plan.kv_len if context is None else context
        step = self.deployment.decode(batch, context)
        gained = self.plan.tokens_per_step
        per_device = batch * gained / (step.time_s * self.pool.tp * self.pool.pp)
        return DecodePoint(batch, step, step.time_s / gained, per_device)

    def max_batch(self, context: float | None = None) -> int:
        context = self.plan.kv_len if context is None else context
        q = 1 + self.plan.mtp_depth
        return memory_max_batch(self.model, self.plan, self.pool, self.chip, context, q)

    def decode_curve(self, cap: int | None = None) -> list[DecodePoint]:
        """Decode at every candidate batch that fits (and is at most max_batch or `cap`)."""
        limit = min(self.max_batch(), self.plan.max_batch if cap is None else cap)
        return [self.decode_at(b) for b in candidates(limit)] if limit >= 1 else []

    def best_decode(self, tpot_slo: float | None, cap: int | None = None) -> DecodePoint | None:
        """The batch of most decode tokens/s per device with TPOT <= tpot_slo (None: any)
        among those that fit; None when none meets it."""
        return _best(self.decode_curve(cap), "tpot_s", tpot_slo)

    # --- prefill ------------------------------------------------------------------------

    @property
    def new_tokens(self) -> float:
        """Prompt tokens a request computes: the prefix-cache hits are read, not computed."""
        return max(1.0, round(self.plan.input_len * (1.0 - self.plan.prefix_hit_rate)))

    def prefill_at(self, batch: int) -> PrefillPoint:
        new = self.new_tokens
        cached = self.plan.input_len - new
        chunk = self.plan.chunk_tokens
        if chunk is None or chunk >= new:
            step = self.deployment.prefill(batch, new, cached)
            total = step.time_s
        else:  # chunked prefill: the chunks of the batch's prompts, one after another
            total, done = 0.0, 0.0
            while done < new:
                size = min(chunk, new - done)
                step = self.deployment.prefill(batch, size, cached + done)
                total += step.time_s
                done += size
        per_device = batch * new / (total * self.pool.tp * self.pool.pp)
        return PrefillPoint(batch, step, total, per_device)

    def prefill_fits(self, batch: int) -> bool:
        tokens = batch * self.new_tokens
        memory = serve_memory(
            self.model,
            self.plan,
            self.pool,
            self.chip,
            batch,
            self.plan.input_len,
            min(tokens, self.plan.chunk_tokens or tokens),
            batch,
        )
        return memory.fits

    def best_prefill(self, ttft_slo: float | None) -> PrefillPoint | None:
        if ttft_slo is None:
            b = max(1, math.ceil(PREFILL_TOKENS / self.new_tokens))
            while b > 1 and not self.prefill_fits(b):
                b //= 2
            return self.prefill_at(b)
        return _best(self.prefill_curve(), "ttft_s", ttft_slo)

    def prefill_curve(self) -> list[PrefillPoint]:
        """Prefill at every candidate batch that fits, up to 4 x PREFILL_TOKENS tokens."""
        points = []
        for b in candidates(max(1, math.ceil(4 * PREFILL_TOKENS / self.new_tokens))):
            if not self.prefill_fits(b):
                break
            points.append(self.prefill_at(b))
        return points

    def kv_transfer_s(self, prefill_pool: Pool) -> float:
        """One request's KV cache from the prefill pool to the decode pool over the fabric:
        each of the prefill rank's tp x pp devices sends its share at the scale-out bandwidth
        and efficiency, plus one latency."""
        whole = Pool(tp=1, ep=1, dp=1, pp=1)
        nbytes = kv_bytes_per_token(self.model, self.plan, whole) * self.plan.input_len
        senders = prefill_pool.pp * (prefill_pool.tp if self.model.attention != "mla" else 1)
        c = self.cluster
        rate = c.scale_out_bandwidth * c.scale_out_efficiency * senders
        return nbytes / rate + c.scale_out_latency + c.launch_latency


def _best(points, latency: str, slo: float | None):
    """The point of most tokens/s per device whose `latency` meets `slo` (None: any); the
    first of equals; None when none meets it."""
    best = None
    for point in points:
        if slo is not None and getattr(point, latency) > slo:
            continue
        if best is None or point.tokens_per_s_per_device > best.tokens_per_s_per_device:
            best = point
    return best


def curve_of(points: "list[DecodePoint] | list[PrefillPoint]") -> tuple[dict[str, Any], ...]:
    """The points of a decode or prefill curve as JSON objects (the `curve` and
    `prefill_curve` keys of a serve result)."""
    out = []
    for p in points:
        if isinstance(p, DecodePoint):
            row = {"tpot_s": p.tpot_s, "decode_tokens_per_s_per_device": p.tokens_per_s_per_device}
        else:
            row = {"ttft_s": p.ttft_s, "prefill_tokens_per_s_per_device": p.tokens_per_s_per_device}
        out.append({"batch": p.batch, "step_time_s": p.step.time_s, **row})
    return tuple(out)


def server_of(scenario, pool: Pool | None = None) -> Server:
    if scenario.model is None or scenario.serve is None:
        raise SpecError(f"{scenario.source}: serving needs [model] and [serve] tables")
    plan = serve_plan_from_table(scenario.serve)
    return Server(scenario.model, plan, scenario.cluster, pool)


def _memory_at(server: Server, batch: int) -> dict[str, Any]:
    q = 1 + server.plan.mtp_depth
    m = serve_memory(
        server.model,
        server.plan,
        server.pool,
        server.chip,
        batch,
        server.plan.kv_len,
        batch * q,
        batch * q,
    )
    return m.to_dict()


def serve_scenario(scenario) -> ServeResult:
    """The answer to a scenario's [serve] table (see the module docstring), with its energy
    and cost per million tokens (podsim.costs.energy.serving_energy)."""
    server = server_of(scenario)
    result = _serve(scenario, server)
    energy = serving_energy(
        server.cluster,
        result.prefill_tokens_per_s_per_device,
        result.decode_tokens_per_s_per_device,
    )
    if server.plan.phase == "prefill":
        return replace(result, energy=energy, prefill_curve=curve_of(server.prefill_curve()))
    return replace(result, energy=energy, curve=curve_of(server.decode_curve()))


def _serve(scenario, server: "Server") -> ServeResult:
    plan = server.plan
    if plan.phase == "both":
        from podsim.front.serve_requests import simulate_requests

        return simulate_requests(server)
    if plan.disaggregated:
        from podsim.front.serve_disagg import disaggregated

        return disaggregated(scenario, server)
    if plan.phase == "prefill":
        return _prefill_result(server)
    return _decode_result(server)


def _common(server: Server) -> dict[str, Any]:
    return {
        "devices": server.pool.devices,
        "plan": server.plan.to_dict(),
        "cluster": server.cluster.to_dict(),
        "model": server.model.name,
    }


Point = TypeVar("Point")


def _chosen_point(
    batch: int | None,
    slo: float | None,
    best: Callable[[float | None], Point | None],
    at: Callable[[int], Point],
    slo_key: str,
) -> tuple[Point, list[str]]:
    """The batch a result shows: the plan's when given, else the best under the SLO (`best`),
    else batch 1 with a note saying so; (the point `at` that batch, notes)."""
    if batch is not None:
        return at(batch), []
    point = best(slo)
    if point is None:
        return at(1), [f"no batch meets {slo_key} and fits: batch 1 shown"]
    return point, []


def _decode_result(server: Server) -> ServeResult:
    plan = server.plan
    fit_cap = server.max_batch()
    point, notes = _chosen_point(
        plan.batch, plan.tpot_slo, server.best_decode, server.decode_at, "tpot_slo"
    )
    ttft = server.prefill_at(1)
    prefill = server.best_prefill(plan.ttft_slo)
    memory = _memory_at(server, point.batch)
    breakdown = point.step.to_dict()
    return ServeResult(
        phase="decode",
        ttft_s=ttft.ttft_s,
        tpot_s=point.tpot_s,
        prefill_tokens_per_s_per_device=prefill.tokens_per_s_per_device if prefill else 0.0,
        decode_tokens_per_s_per_device=point.tokens_per_s_per_device,
        batch=point.batch,
        fits_in_memory=bool(memory["fits_in_memory"]),
        step_time_s=point.step.time_s,
        max_batch=fit_cap,
        tokens_per_step=plan.tokens_per_step,
        memory=memory,
        breakdown=breakdown,
        notes=tuple(notes),
        **_common(server),
    )


def _prefill_result(server: Server) -> ServeResult:
    plan = server.plan
    point, notes = _chosen_point(
        plan.batch, plan.ttft_slo, server.best_prefill, server.prefill_at, "ttft_slo"
    )
    tokens = point.batch * server.new_tokens
    memory = serve_memory(
        server.model,
        plan,
        server.pool,
        server.chip,
        point.batch,
        plan.input_len,
        min(tokens, plan.chunk_tokens or tokens),
        point.batch,
    )
    decode = server.decode_at(1)
    return ServeResult(
        phase="prefill",
        ttft_s=point.ttft_s,
        tpot_s=decode.tpot_s,
        prefill_tokens_per_s_per_device=point.tokens_per_s_per_device,
        decode_tokens_per_s_per_device=decode.tokens_per_s_per_device,
        batch=point.batch,
        fits_in_memory=memory.fits,
        step_time_s=point.step.time_s,
        max_batch=server.max_batch(),
        tokens_per_step=plan.tokens_per_step,
        memory=memory.to_dict(),
        breakdown=point.step.to_dict(),
        notes=tuple(notes),
        **_common(server),
    )


def with_serve(scenario, **changes: Any):
    """The scenario with [serve] keys changed (for searches and sweeps)."""
    table = dict(scenario.serve or {})
    table.update(changes)
    return replace(scenario, serve=table)
