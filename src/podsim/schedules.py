"""Pipeline schedules: the order in which one stage runs its forward and backward passes.

A pass is ("F" | "B", chunk, microbatch); a chunk is one of the stage's virtual stages
(model chunk), so virtual stage `chunk * pp + stage` holds the chunk's layers.
"""

from podsim.errors import SpecError

Pass = tuple[str, int, int]


def gpipe(pp: int, stage: int, m: int) -> list[Pass]:
    """All forwards, then all backwards (Huang et al. 2019)."""
    return [("F", 0, i) for i in range(m)] + [("B", 0, i) for i in range(m)]


def one_f_one_b(pp: int, stage: int, m: int) -> list[Pass]:
    """PipeDream-Flush / Megatron 1F1B: pp - stage - 1 warm-up forwards, then one forward and
    one backward in turn, then the remaining backwards."""
    warmup = min(pp - stage - 1, m)
    order: list[Pass] = [("F", 0, i) for i in range(warmup)]
    for i in range(m - warmup):
        order += [("F", 0, warmup + i), ("B", 0, i)]
    return order + [("B", 0, i) for i in range(m - warmup, m)]


def interleaved(pp: int, stage: int, m: int, v: int) -> list[Pass]:
    """Megatron's interleaved 1F1B (Narayanan et al. SC'21): microbatches go through the v
    chunks in rounds of pp; warm-up is (pp - stage - 1) * 2 + (v - 1) * pp passes."""
    if m % pp:
        raise SpecError(
            f"train.global_batch gives {m} microbatches per pipeline: the "
            f"interleaved schedule needs a multiple of pp ({pp})"
        )
    total = m * v

    def forward(k: int) -> Pass:
        return ("F", (k // pp) % v, (k // (pp * v)) * pp + k % pp)

    def backward(k: int) -> Pass:
        return ("B", v - 1 - (k // pp) % v, (k // (pp * v)) * pp + k % pp)

    warmup = min((pp - stage - 1) * 2 + (v - 1) * pp, total)
    order = [forward(k) for k in range(warmup)]
    for k in range(total - warmup):
        order += [forward(warmup + k), backward(k)]
    return order + [backward(k) for k in range(total - warmup, total)]


def stage_order(schedule: str, pp: int, stage: int, m: int, v: int) -> list[Pass]:
    if schedule == "gpipe":
        return gpipe(pp, stage, m)
    if schedule == "interleaved" and v > 1:
        return interleaved(pp, stage, m, v)
    return one_f_one_b(pp, stage, m)
