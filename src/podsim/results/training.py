"""The result of one training step: what the engine measured, with FLOP and memory accounting.

The step time and the breakdown are rank 0's (the first rank of the first pipeline stage);
nothing is recomputed later.
"""

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from podsim.costs.flops import flops_per_step
from podsim.engine.core import Timeline
from podsim.lowering.layout import COMPUTE
from podsim.lowering.program import Kind
from podsim.lowering.training import LoweredStep
from podsim.version import __version__

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
    # "symmetric": the noise-free step ran on one representative rank per stage (exactly equal
    # to a run of every rank); "full": every rank (noisy steps always are)
    simulation: str = "full"
    simulation_note: str | None = None  # why the noise-free step could not run symmetric
    version: str = __version__  # of podsim, so that a result can be re-run
    # The peak `mfu` and `hfu` are against (the PaLM / Megatron convention: the dense BF16 peak,
    # also for FP8 training, as DeepSeek-V3's 43.73% is against 989 TFLOP/s). FP8 GEMMs run up
    # to twice that peak, so FP8 plans can exceed 1 against it; `mfu_precision_peak` and
    # `hfu_precision_peak` are against the dense peak of the precision the GEMMs run in
    # (`gemm_precision`, `precision_peak_flops_per_s`), which no kernel exceeds.
    mfu_peak_flops_per_s: float | None = None
    mfu_peak_precision: str = "bf16"
    gemm_precision: str = "bf16"
    precision_peak_flops_per_s: float | None = None
    mfu_precision_peak: float | None = None
    hfu_precision_peak: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if v is not None}
        for key in LONG_RUN_KEYS:  # the contract's keys, at the top level
            if self.long_run is not None and self.long_run.get(key) is not None:
                out[key] = self.long_run[key]
        return out


def breakdown(lowered: LoweredStep, timeline: Timeline) -> Breakdown:
    """Rank 0's time: compute, collectives on its compute stream and the wait for gradient
    reduction (exposed communication), and the rest of the step (pipeline bubble)."""
    ops = lowered.templates[0].ops  # rank 0's ops come first in either program
    n = len(ops)
    kind = np.array([int(op.kind) for op in ops])
    stream = np.array([op.stream for op in ops])
    start, end = timeline.start[:n], timeline.end[:n]
    on_compute = stream == COMPUTE
    compute = float(np.sum((end - start)[on_compute & (kind == Kind.COMPUTE)]))
    comm = float(np.sum((end - start)[on_compute & (kind == Kind.COLLECTIVE)]))
    optimizer = max(i for i, op in enumerate(lowered.templates[0].ops) if op.name == "optimizer")
    before = np.max(end[:optimizer][on_compute[:optimizer]], initial=0.0)
    comm += max(0.0, float(start[optimizer] - before))
    bubble = max(0.0, timeline.makespan - compute - comm)
    return Breakdown(compute, comm, bubble)


def train_result(
    model, plan, cluster, network, memory, fits, lowered, timeline, steps=None, noise=None
) -> TrainResult:
    """The result of a simulated step: the engine's measurements with FLOP and memory
    accounting (steps: the makespans of a noise Monte Carlo, if one ran)."""
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
    flops = flops_per_step(model, plan)
    per_device = step * cluster.devices
    peak = cluster.chip.peak("bf16")
    gemm_peak = cluster.chip.peak(plan.precision)
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
        ops=lowered.num_ops,
        events=timeline.events,
        time_to_train_s=ttt,
        device_hours=ttt * cluster.devices / 3600 if ttt else None,
        **spread,
        mfu_peak_flops_per_s=peak,
        mfu_peak_precision="bf16",
        gemm_precision=plan.precision,
        precision_peak_flops_per_s=gemm_peak,
        mfu_precision_peak=flops["model"] / per_device / gemm_peak,
        hfu_precision_peak=flops["hardware"] / per_device / gemm_peak,
    )
