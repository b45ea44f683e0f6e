"""Pipeline schedules: the order in which one stage runs its forward and backward passes.

A pass is (kind, chunk, microbatch); a chunk is one of the stage's virtual stages (model
chunk), so virtual stage `chunk * pp + stage` holds the chunk's layers (DualPipe: see
dualpipe_slots). Kinds: "F" forward; "B" backward, the whole of it (input and weight
gradients) in GPipe and 1F1B, only the input gradients where the schedule also gives a
"W" pass, the weight gradients of the same chunk and microbatch (zero-bubble split, DualPipe).
"""

from collections import deque

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


Slot = tuple[Pass, ...]


def check_dualpipe(pp: int, m: int) -> None:
    """DualPipe's published constraints (deepseek-ai/DualPipe, DualPipe.step): an even number
    of stages and an even number of microbatches, at least twice the stages (each direction
    needs pp microbatches to fill its half of the pipeline)."""
    if pp % 2 or m % 2 or m < 2 * pp:
        raise SpecError(
            f"train.global_batch gives {m} microbatches per pipeline: the dualpipe schedule "
            f"needs an even number of at least 2 x pp ({2 * pp}), with pp even (pp = {pp})"
        )


class _DualPipeRank:
    """One rank's DualPipe slots, written step by step as DeepSeek's DualPipe.step runs them.

    The rank holds chunk 0 (the downward copy of the model, at position `stage`) and chunk 1
    (the upward copy, at pp - 1 - stage); a "phase" names a chunk from the rank's point of view:
    phase 0 is the chunk whose data reaches it first (chunk 0 in the first half of the ranks,
    chunk 1 in the second). Chunk 0 runs microbatches 0 .. m/2 - 1, chunk 1 the others.
    """

    def __init__(self, pp: int, stage: int, m: int) -> None:
        self.second = int(stage >= pp // 2)
        self.forwards, self.backwards = [0, m // 2], [0, m // 2]
        self.deferred: deque[tuple[int, int]] = deque()  # zero-bubble W chunks, oldest first
        self.slots: list[Slot] = []

    def forward(self, phase: int) -> Pass:
        chunk = phase ^ self.second
        mb = self.forwards[chunk]
        self.forwards[chunk] += 1
        return ("F", chunk, mb)

    def backward(self, phase: int, zero_bubble: bool) -> Slot:
        """A backward chunk: B alone with its W deferred (zero bubble), or B then W."""
        chunk = phase ^ self.second
        mb = self.backwards[chunk]
        self.backwards[chunk] += 1
        if zero_bubble:
            self.deferred.append((chunk, mb))
            return (("B", chunk, mb),)
        return (("B", chunk, mb), ("W", chunk, mb))

    def weight(self) -> Slot:
        chunk, mb = self.deferred.popleft()
        return (("W", chunk, mb),)

    def add(self, *slots: Slot) -> None:
        self.slots += slots

    def overlapped(self, forward_phase: int, backward_phase: int) -> Slot:
        return (self.forward(forward_phase), *self.backward(backward_phase, False))


def dualpipe_slots(pp: int, stage: int, m: int) -> list[Slot]:
    """DualPipe (DeepSeek-V3 report, section 3.2.1; deepseek-ai/DualPipe): the slots one stage
    runs in order. A slot is one pass ((F,), a zero-bubble (B,) or a deferred (W,)), a full
    backward (B, W), or an overlapped forward and full backward of two microbatches
    (F, B, W: DeepSeek's F&B chunk). W chunks run the deferred weight gradients first in, first
    out. The eight steps of DualPipe.step, with h = min(stage, pp - 1 - stage):
    1: 2(pp/2 - h - 1) F0; 2: h + 1 x (F0, F1); 3: pp/2 - h - 1 x (B1 zero bubble, W, F1);
    4: m/2 - pp + h + 1 x (F0&B1, F1&B0), the middle ranks' first F0 and B1 not overlapped;
    5: pp/2 - h - 1 x (B1, F1&B0); 6: h + 1 x (B1, B0), their second half zero bubble;
    7: pp/2 - h - 1 x (W, B0 zero bubble); 8: h + 1 x W."""
    check_dualpipe(pp, m)
    half, h = pp // 2, min(stage, pp - 1 - stage)
    r = _DualPipeRank(pp, stage, m)
    for _ in range(2 * (half - h - 1)):
        r.add((r.forward(0),))
    for _ in range(h + 1):
        r.add((r.forward(0),))
        r.add((r.forward(1),))
    for _ in range(half - h - 1):
        r.add(r.backward(1, True), r.weight(), (r.forward(1),))
    for i in range(m // 2 - pp + h + 1):
        if i == 0 and h == half - 1:  # DeepSeek: not overlapped, to shorten the bubble
            r.add((r.forward(0),), r.backward(1, False))
        else:
            r.add(r.overlapped(0, 1))
        r.add(r.overlapped(1, 0))
    for _ in range(half - h - 1):
        r.add(r.backward(1, False), r.overlapped(1, 0))
    zero_bubble = False
    for i in range(h + 1):  # the later half of these backwards defer their W
        if i == (h + 1) // 2 and h % 2 == 1:
            zero_bubble = True
        r.add(r.backward(1, zero_bubble))
        if i == (h + 1) // 2 and h % 2 == 0:
            zero_bubble = True
        r.add(r.backward(0, zero_bubble))
    for _ in range(half - h - 1):
        r.add(r.weight(), r.backward(0, True))
    for _ in range(h + 1):
        r.add(r.weight())
    return r.slots


def dualpipe(pp: int, stage: int, m: int) -> list[Pass]:
    """DualPipe's passes in order (dualpipe_slots, flattened)."""
    return [p for slot in dualpipe_slots(pp, stage, m) for p in slot]


def stage_order(schedule: str, pp: int, stage: int, m: int, v: int) -> list[Pass]:
    if schedule == "gpipe":
        return gpipe(pp, stage, m)
    if schedule == "dualpipe":
        return dualpipe(pp, stage, m)
    if schedule == "interleaved" and v > 1:
        return interleaved(pp, stage, m, v)
    return one_f_one_b(pp, stage, m)
