"""The Chrome trace of one decode step: each layer's kernels on a compute stream and its
collectives on a communication stream, per micro-batch (the step model's times, laid out)."""

from typing import Any

from podsim.front.serve import Server
from podsim.results.serving import step_trace_events


def decode_step_trace(server: Server, batch: int) -> list[dict[str, Any]]:
    step = server.decode_at(batch).step
    layers = max(1, round(server.model.layers / server.pool.pp))
    parts = [("compute", name, seconds / layers) for name, seconds in step.parts.items()]
    parts += [
        ("communication", name, seconds / layers) for name, seconds in step.comm_parts.items()
    ]
    return step_trace_events(parts, layers)
