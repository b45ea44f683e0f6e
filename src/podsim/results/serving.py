"""Serving results: what a deployment achieved, with the interface contract's keys
(`ttft_s`, `tpot_s`, `prefill_tokens_per_s_per_device`, `decode_tokens_per_s_per_device`,
`batch`, `fits_in_memory`) plus percentiles, memory and a breakdown. Results hold what the
simulation measured; they compute nothing."""

import gzip
import json
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

from podsim.version import __version__


@dataclass(frozen=True)
class ServeResult:
    """One serving scenario's answer (SI units; per device where the key says so)."""

    phase: str
    ttft_s: float
    tpot_s: float
    prefill_tokens_per_s_per_device: float
    decode_tokens_per_s_per_device: float
    batch: int
    fits_in_memory: bool
    devices: int  # devices of the deployment(s)
    step_time_s: float = 0.0  # the decode (or prefill) step at `batch`
    max_batch: int = 0  # the most sequences per attention rank that fit
    tokens_per_step: float = 1.0  # expected tokens per sequence and decode step (MTP)
    memory: dict[str, Any] = field(default_factory=dict)
    breakdown: dict[str, float] = field(default_factory=dict)
    percentiles: dict[str, float] = field(default_factory=dict)  # request-level runs
    requests: dict[str, Any] = field(default_factory=dict)  # request-level statistics
    disaggregation: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, Any] = field(default_factory=dict)
    cluster: dict[str, Any] = field(default_factory=dict)
    model: str = ""
    notes: tuple[str, ...] = ()
    # Energy and cost per million tokens (podsim.costs.energy.serving_energy; docs/serving.md)
    energy: dict[str, float] = field(default_factory=dict)
    # Throughput against latency over the candidate batches that fit (docs/serving.md):
    # decode {batch, step_time_s, tpot_s, decode_tokens_per_s_per_device}, and for a prefill
    # run prefill {batch, step_time_s, ttft_s, prefill_tokens_per_s_per_device}.
    curve: tuple[dict[str, Any], ...] = ()
    prefill_curve: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "phase": self.phase,
            "ttft_s": self.ttft_s,
            "tpot_s": self.tpot_s,
            "prefill_tokens_per_s_per_device": self.prefill_tokens_per_s_per_device,
            "decode_tokens_per_s_per_device": self.decode_tokens_per_s_per_device,
            "batch": self.batch,
            "fits_in_memory": self.fits_in_memory,
            "devices": self.devices,
            "step_time_s": self.step_time_s,
            "max_batch": self.max_batch,
            "tokens_per_step": self.tokens_per_step,
            "memory_per_device_bytes": self.memory.get("total_bytes"),
            "memory": dict(self.memory),
            "breakdown": dict(self.breakdown),
        }
        out.update(self.percentiles)
        out.update(self.energy)
        if self.requests:
            out["requests"] = dict(self.requests)
        if self.disaggregation:
            out["disaggregation"] = dict(self.disaggregation)
        if self.curve:
            out["curve"] = [dict(point) for point in self.curve]
        if self.prefill_curve:
            out["prefill_curve"] = [dict(point) for point in self.prefill_curve]
        out["model"] = self.model
        out["plan"] = dict(self.plan)
        out["cluster"] = dict(self.cluster)
        out["notes"] = list(self.notes)
        out["podsim_version"] = __version__
        return out


def step_trace_events(parts: list[tuple[str, str, float]], layers: int) -> list[dict[str, Any]]:
    """Chrome trace events of one decode step: `parts` are (stream, name, seconds) for one
    layer's share of each kernel class and collective, laid out layer by layer on a compute
    and a communication stream (one process, a thread per stream)."""
    streams = sorted({s for s, _, _ in parts})
    tid = {s: i for i, s in enumerate(streams)}
    events: list[dict[str, Any]] = [
        {"ph": "M", "name": "process_name", "pid": 0, "tid": 0, "args": {"name": "device 0"}}
    ]
    for s in streams:
        events.append(
            {"ph": "M", "name": "thread_name", "pid": 0, "tid": tid[s], "args": {"name": s}}
        )
    clock = dict.fromkeys(streams, 0.0)
    for layer in range(layers):
        for stream, name, seconds in parts:
            begin = clock[stream]
            events.append(
                {
                    "ph": "X",
                    "name": name,
                    "pid": 0,
                    "tid": tid[stream],
                    "ts": begin * 1e6,
                    "dur": seconds * 1e6,
                    "args": {"layer": layer},
                }
            )
            clock[stream] = begin + seconds
    return events


def write_step_trace(path: "str | PathLike[str]", events: list[dict[str, Any]]) -> Path:
    """Write trace events as Chrome JSON (gzip when the name ends in .gz)."""
    target = Path(path)
    data = json.dumps({"traceEvents": events, "displayTimeUnit": "ms"}).encode()
    if target.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    target.write_bytes(data)
    return target
