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


def unit_start_times(pp: int, m: int) -> dict[tuple[int, str, int], float]:
    """Start of every pass of one 1F1B pipeline when a forward takes 1 and a backward 2:
    (position, "F" | "B", microbatch) -> time."""
    orders = [one_f_one_b(pp, q, m) for q in range(pp)]
    end: dict[tuple[int, str, int], float] = {}
    start: dict[tuple[int, str, int], float] = {}
    free, nxt = [0.0] * pp, [0] * pp
    while any(nxt[q] < len(orders[q]) for q in range(pp)):
        for q in range(pp):
            while nxt[q] < len(orders[q]):
                kind, _, mb = orders[q][nxt[q]]
                need = (q - 1, "F", mb) if kind == "F" else (q + 1, "B", mb)
                if kind == "B" and q == pp - 1:
                    need = (q, "F", mb)
                if kind == "F" and q == 0:
                    need = None
                if need is not None and need not in end:
                    break
                begin = max(free[q], end[need] if need else 0.0)
                start[q, kind, mb] = begin
                end[q, kind, mb] = free[q] = begin + (1.0 if kind == "F" else 2.0)
                nxt[q] += 1
    return start


def dualpipe(pp: int, stage: int, m: int) -> list[Pass]:
    """DualPipe (DeepSeek-V3 report, section 3.2.1), approximated: half the microbatches flow
    from stage 0 to pp-1 through chunk 0, half the other way through chunk 1 (a second copy of
    the model, mirrored over the stages). Each stage runs both directions' 1F1B passes merged by
    their start in an ideal timeline, so both ends of the pipeline start at once and no stage
    ever waits for a pass it runs later (no deadlock)."""
    if m % 2:
        raise SpecError(
            f"train.global_batch gives {m} microbatches per pipeline: the "
            "dualpipe schedule needs an even number"
        )
    half = m // 2
    times = unit_start_times(pp, half)
    down = [(times[stage, k, mb], 0, (k, 0, mb)) for k, _, mb in one_f_one_b(pp, stage, half)]
    mirror = pp - 1 - stage
    up = [
        (times[mirror, k, mb], 1, (k, 1, half + mb)) for k, _, mb in one_f_one_b(pp, mirror, half)
    ]
    return [p for _, _, p in sorted(down + up)]


def stage_order(schedule: str, pp: int, stage: int, m: int, v: int) -> list[Pass]:
    if schedule == "gpipe":
        return gpipe(pp, stage, m)
    if schedule == "dualpipe":
        return dualpipe(pp, stage, m)
    if schedule == "interleaved" and v > 1:
        return interleaved(pp, stage, m, v)
    return one_f_one_b(pp, stage, m)
