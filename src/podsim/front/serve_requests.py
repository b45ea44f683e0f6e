"""`phase = "both"`: a request-level run of one deployment (podsim.engine.requests) with step
times from the step-cost model, cached by batch and context buckets.

Arrivals: Poisson at `arrival_rate` requests/s to the cluster, or a trace file (CSV with a
header: arrival_s, input_len, output_len). The cluster's deployments (devices / (dp x tp x pp))
and their dp attention ranks share the load evenly, so one attention rank is simulated at
rate / (deployments x dp); its step time is the deployment's at that batch (every rank steps
in lockstep with the same batch: the symmetric approximation). A mixed iteration (chunked
prefill) costs its decode step plus its prompt tokens' prefill step.
"""

import csv

import numpy as np

from podsim.costs.serving_memory import kv_capacity_tokens
from podsim.engine.requests import bucket, poisson_arrivals, simulate_fast
from podsim.errors import SpecError
from podsim.results.serving import ServeResult

__all__ = ["bucket", "read_trace", "simulate_requests", "step_function"]


def read_trace(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        arrival = np.array([float(r["arrival_s"]) for r in rows])
        inputs = np.array([int(r["input_len"]) for r in rows], np.int64)
        outputs = np.array([int(r["output_len"]) for r in rows], np.int64)
    except (OSError, KeyError, ValueError) as error:
        raise SpecError(f"serve.trace = {path!r} cannot be read: {error}") from error
    if len(arrival) == 0 or np.any(np.diff(arrival) < 0) or np.any(inputs < 1):
        raise SpecError(f"serve.trace = {path!r}: needs rows sorted by arrival_s, input_len >= 1")
    return arrival, inputs, np.maximum(outputs, 1)


def step_function(server):
    """A mixed iteration's time at (decode sequences, context bucket, prompt-token bucket):
    the simulator buckets and caches, so each distinct triple is timed once."""
    dep = server.deployment

    def step(decode_seqs: int, context: float, prefill_tokens: float) -> float:
        t = 0.0
        if decode_seqs:
            t += dep.decode(decode_seqs, context).time_s
        if prefill_tokens:
            t += dep.prefill(1, prefill_tokens, 0.0).time_s
        return t

    return step


def simulate_requests(server) -> ServeResult:
    plan, pool = server.plan, server.pool
    replicas = max(1, server.cluster.devices // pool.devices)
    ranks = replicas * pool.dp
    if plan.trace is not None:
        arrival, inputs, outputs = read_trace(plan.trace)
        arrival = arrival * 1.0  # the rank sees its share: every ranks-th request
        arrival, inputs, outputs = arrival[::ranks], inputs[::ranks], outputs[::ranks]
    else:
        if plan.arrival_rate is None:
            raise SpecError('serve: phase = "both" needs arrival_rate or trace')
        arrival = poisson_arrivals(plan.arrival_rate / ranks, plan.requests, plan.seed)
        inputs = np.full(plan.requests, plan.input_len, np.int64)
        outputs = np.full(plan.requests, plan.output_len, np.int64)
    cached = np.floor(inputs * plan.prefix_hit_rate).astype(np.int64)
    cached = np.minimum(cached, inputs - 1)
    capacity = kv_capacity_tokens(
        server.model, plan, pool, server.chip, plan.max_batch, plan.max_batch
    )
    stats = simulate_fast(
        arrival,
        inputs,
        outputs,
        cached,
        step_function(server),
        capacity,
        plan.max_batch,
        plan.scheduler,
        plan.chunk_tokens,
        plan.kv_block_tokens,
        plan.tokens_per_step,
    )
    per_device = 1.0 / (stats.makespan_s * pool.tp * pool.pp)
    ttft, tpot = stats.ttft_s, stats.tpot_s
    ok = np.ones(len(ttft), bool)
    if plan.ttft_slo is not None:
        ok &= ttft <= plan.ttft_slo
    if plan.tpot_slo is not None:
        ok &= tpot <= plan.tpot_slo
    percentiles = {}
    for name, values in (("ttft", ttft), ("tpot", tpot)):
        for q in (50, 90, 99):
            percentiles[f"{name}_p{q}_s"] = float(np.percentile(values, q))
    requests = {
        "count": len(arrival),
        "iterations": stats.iterations,
        "preemptions": stats.preemptions,
        "makespan_s": stats.makespan_s,
        "utilization": stats.busy_s / stats.makespan_s,
        "mean_in_system": stats.mean_in_system,
        "mean_sojourn_s": float(np.mean(stats.finish_s - arrival)),
        "arrival_rate_per_rank": float(len(arrival) / arrival[-1]) if arrival[-1] > 0 else 0.0,
        "goodput": float(ok.mean()),
        "goodput_requests_per_s_per_device": float(ok.sum()) * per_device,
        "kv_capacity_tokens": capacity,
    }
    return ServeResult(
        phase="both",
        ttft_s=float(np.mean(ttft)),
        tpot_s=float(np.mean(tpot)),
        prefill_tokens_per_s_per_device=float(np.sum(inputs - cached)) * per_device,
        decode_tokens_per_s_per_device=float(np.sum(outputs)) * per_device,
        batch=plan.max_batch,
        fits_in_memory=capacity > 0,
        devices=pool.devices,
        max_batch=server.max_batch(),
        tokens_per_step=plan.tokens_per_step,
        percentiles=percentiles,
        requests=requests,
        plan=plan.to_dict(),
        cluster=server.cluster.to_dict(),
        model=server.model.name,
    )
