"""Disaggregated serving: a prefill pool and a decode pool with their own plans and device
counts, the KV cache moved between them over the fabric, and the ratio that balances them.

Each request computes input_len x (1 - prefix_hit_rate) prompt tokens in the prefill pool and
output_len tokens in the decode pool. With prefill throughput Xp and decode throughput Xd per
device, the pools keep pace when prefill_devices / decode_devices = (new tokens / Xp) /
(output_len / Xd); with both counts given the deployment serves min(P Xp / new, D Xd / out)
requests/s and the other pool idles. TTFT = one request's prefill + its KV transfer.
"""

from dataclasses import replace

from podsim.front.serve import Server
from podsim.results.serving import ServeResult


def disaggregated(scenario, decode: Server) -> ServeResult:
    plan = decode.plan
    prefill_pool = plan.prefill_pool or plan.pool
    prefill = Server(decode.model, replace(plan, phase="prefill"), decode.cluster, prefill_pool)
    p_point = prefill.best_prefill(plan.ttft_slo) or prefill.prefill_at(1)
    d_point = decode.best_decode(plan.tpot_slo) or decode.decode_at(1)
    new, out = prefill.new_tokens, float(plan.output_len)
    xp, xd = p_point.tokens_per_s_per_device, d_point.tokens_per_s_per_device
    ratio = (new / xp) / (out / xd)
    transfer = decode.kv_transfer_s(prefill_pool)
    p_devices, d_devices = plan.prefill_devices, plan.decode_devices
    if p_devices is None:
        p_devices = max(prefill_pool.devices, round(d_devices * ratio))
    if d_devices is None:
        d_devices = max(decode.pool.devices, round(p_devices / ratio))
    rate = min(p_devices * xp / new, d_devices * xd / out)
    devices = p_devices + d_devices
    info = {
        "prefill_devices": p_devices,
        "decode_devices": d_devices,
        "balanced_prefill_per_decode_device": ratio,
        "requests_per_s": rate,
        "bottleneck": "prefill" if p_devices * xp / new < d_devices * xd / out else "decode",
        "kv_transfer_s": transfer,
        "prefill_batch": p_point.batch,
        "prefill_step_s": p_point.step.time_s,
    }
    memory = decode.decode_at(d_point.batch)
    return ServeResult(
        phase="disaggregated",
        ttft_s=prefill.prefill_at(1).ttft_s + transfer,
        tpot_s=d_point.tpot_s,
        prefill_tokens_per_s_per_device=rate * new / devices,
        decode_tokens_per_s_per_device=rate * out / devices,
        batch=d_point.batch,
        fits_in_memory=d_point.batch <= decode.max_batch() and prefill.prefill_fits(p_point.batch),
        devices=devices,
        step_time_s=memory.step.time_s,
        max_batch=decode.max_batch(),
        tokens_per_step=plan.tokens_per_step,
        breakdown=d_point.step.to_dict(),
        disaggregation=info,
        plan=plan.to_dict(),
        cluster=decode.cluster.to_dict(),
        model=decode.model.name,
    )
