"""A request-level simulator of one attention rank of a deployment: arrivals, continuous
batching, KV-cache admission, preemption, prefix-cache hits.

Iterations (one model step each) run back to back while there is work. Per iteration the
scheduler picks:

* "vllm" (vLLM's default scheduler before chunked prefill): a prefill-only iteration when
  requests wait and their prompts fit in the free KV cache and the token budget
  (`chunk_tokens`, default 8,192), else a decode iteration of every running sequence;
* "sarathi" (Sarathi-Serve, chunked prefill): every iteration decodes all running sequences
  and fills the rest of a token budget (`chunk_tokens`, default 512) with prompt chunks;
* "orca" (iteration-level batching with reservation): like vllm, but a request is admitted
  only when the KV of its whole prompt and output is free, so nothing is ever preempted.

KV admission is by paged blocks of `block` tokens. When a decode step needs KV that is not
free, the most recently admitted running request is preempted (its cache dropped, it waits
again at the head of the queue and recomputes its prompt and generated tokens: vLLM's
recompute preemption). Prefix-cache hits skip `cached` prompt tokens of a request.

The simulator is exact for its model: a request's first token comes at the end of the
iteration that finishes its prompt; each decode iteration gives every running sequence
`gain` tokens (1 + MTP acceptances, accumulated exactly as fractions); step times come from
`step_time(decode_seqs, mean_context, prefill_tokens)`. Everything is deterministic.

`simulate` is the reference (small, readable: the oracle of the tests); `simulate_fast` runs the
same loop compiled (cpp/src/requests.cpp), with the step time seen through `bucket` and cached,
and gives the same bits per request (tests/test_requests_fast.py).
"""

import inspect
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from podsim import _core
from podsim.errors import SpecError

SCHEDULERS = ("vllm", "sarathi", "orca")
DEFAULT_BUDGET = {"vllm": 8192, "sarathi": 512, "orca": 8192}
BUCKETS_PER_DOUBLING = 8  # context and prompt-token buckets: 2^(1/8) apart (about 9%)

StepTime = Callable[[int, float, float], float]


def bucket(x: float) -> float:
    """x rounded up to the next of a geometric ladder (2^(k/8)); (0, 1] gives 1, 0 stays 0
    (the compiled simulator's _core.step_bucket, bit for bit)."""
    if x <= 1:
        return float(x > 0)
    return 2.0 ** (math.ceil(math.log2(x) * BUCKETS_PER_DOUBLING) / BUCKETS_PER_DOUBLING)


def bucketed(step_time: StepTime) -> StepTime:
    """`step_time` seen through the buckets: what simulate_fast evaluates."""
    return lambda seqs, context, tokens: step_time(seqs, bucket(context), bucket(tokens))


@dataclass(frozen=True)
class RequestStats:
    """Per-request results (arrays in request order) and run totals."""

    ttft_s: np.ndarray
    tpot_s: np.ndarray
    finish_s: np.ndarray
    iterations: int
    preemptions: int
    makespan_s: float
    busy_s: float
    mean_in_system: float  # time-average number of requests in the system (Little's law)


def simulate(
    arrival_s: np.ndarray,
    input_len: np.ndarray,
    output_len: np.ndarray,
    cached: np.ndarray,
    step_time,
    kv_capacity_tokens: float,
    max_batch: int,
    scheduler: str = "vllm",
    budget: int | None = None,
    block: int = 16,
    gain: float = 1.0,
) -> RequestStats:
    """Run the requests (sorted by arrival) through one attention rank."""
    n = len(arrival_s)
    budget = budget or DEFAULT_BUDGET[scheduler]
    blocks_free = total_blocks = int(kv_capacity_tokens // block)
    first = np.full(n, np.nan)
    finish = np.full(n, np.nan)
    waiting: deque[int] = deque()
    # Per request: prompt tokens still to compute, KV blocks held, tokens generated.
    todo = (input_len - cached).astype(np.int64)
    held = np.zeros(n, np.int64)
    generated = np.zeros(n, np.float64)
    prefilling: list[int] = []  # admitted, prompt not finished (sarathi chunks)
    running: list[int] = []  # decoding, in admission order
    now, nxt, iterations, preemptions, busy = 0.0, 0, 0, 0, 0.0
    area, last = 0.0, 0.0  # integral of the number in system
    in_system = 0

    def blocks_for(tokens: float) -> int:
        return int(-(-tokens // block))

    def arrive_until(t: float) -> None:
        nonlocal nxt, area, last, in_system
        while nxt < n and arrival_s[nxt] <= t:
            area += in_system * (arrival_s[nxt] - last)
            last = arrival_s[nxt]
            in_system += 1
            waiting.append(nxt)
            nxt += 1

    def depart(r: int, t: float) -> None:
        nonlocal area, last, in_system
        area += in_system * (t - last)
        last = t
        in_system -= 1
        finish[r] = t

    while nxt < n or waiting or running or prefilling:
        arrive_until(now)
        if not (waiting or running or prefilling):
            now = float(arrival_s[nxt])
            continue
        # --- admission ---
        admitted_tokens = 0
        chunks: list[tuple[int, int]] = []
        room = budget
        if scheduler == "sarathi":
            room = max(0, budget - len(running))
            for r in prefilling:
                take = int(min(todo[r], room))
                if take:
                    chunks.append((r, take))
                    room -= take
        while waiting and len(running) + len(prefilling) < max_batch and room > 0:
            r = waiting[0]
            prompt = int(input_len[r] + generated[r])  # recompute after preemption
            need_total = prompt + (output_len[r] if scheduler == "orca" else 1)
            need = blocks_for(need_total)
            if need > blocks_free:
                if not running and not prefilling and need > total_blocks:
                    raise SpecError(
                        f"requests: request {r} needs {need} KV blocks of {block} tokens and "
                        f"the whole cache holds {total_blocks}: it can never be admitted"
                    )
                break
            take = int(min(todo[r], room)) if scheduler == "sarathi" else int(todo[r])
            if scheduler != "sarathi" and admitted_tokens and admitted_tokens + take > budget:
                break
            waiting.popleft()
            blocks_free -= need
            held[r] = need
            prefilling.append(r)
            chunks.append((r, take))
            admitted_tokens += take
            room -= take
        decode = running if (scheduler == "sarathi" or not chunks) else []
        # --- preemption: the decode step's new tokens need KV ---
        if decode:
            while True:
                extra = _extra_blocks(decode, input_len, generated, held, gain, block)
                if extra <= blocks_free or len(decode) <= 1 or scheduler == "orca":
                    break
                victim = decode.pop()
                blocks_free += int(held[victim])
                held[victim] = 0
                todo[victim] = int(input_len[victim] - cached[victim] + generated[victim])
                waiting.appendleft(victim)
                preemptions += 1
        prefill_tokens = sum(t for _, t in chunks)
        context = 0.0
        if decode:  # summed in order, as the compiled form does
            context = float(sum(input_len[r] + generated[r] for r in decode)) / len(decode)
        dt = step_time(len(decode), context, prefill_tokens)
        now += dt
        busy += dt
        iterations += 1
        # --- progress ---
        if decode:
            blocks_free -= _extra_blocks(decode, input_len, generated, held, gain, block, True)
            done = []
            for r in decode:
                generated[r] += gain
                if generated[r] >= output_len[r] - 1 - 1e-9:
                    done.append(r)
            for r in done:
                decode.remove(r)
                blocks_free += int(held[r])
                held[r] = 0
                depart(r, now)
        for r, take in chunks:
            todo[r] -= take
            if todo[r] <= 0:
                prefilling.remove(r)
                if np.isnan(first[r]):
                    first[r] = now
                if output_len[r] <= 1:
                    blocks_free += int(held[r])
                    held[r] = 0
                    depart(r, now)
                else:
                    running.append(r)
    mean_in_system = area / last if last > 0 else 0.0
    return _stats(
        arrival_s, output_len, first, finish, iterations, preemptions, now, busy, mean_in_system
    )


def _stats(arrival_s, output_len, first, finish, *totals) -> RequestStats:
    """Per-request TTFT and TPOT from the first and last token times, and the run totals."""
    ttft = first - arrival_s
    outputs = np.maximum(output_len - 1, 1)
    tpot = np.where(output_len > 1, (finish - first) / outputs, 0.0)
    return RequestStats(ttft, tpot, finish, *totals)


def _extra_blocks(decode, input_len, generated, held, gain, block, take=False) -> int:
    """Blocks the decode step's new tokens need beyond those held (and take them if asked)."""
    extra = 0
    for r in decode:
        need = int(-(-(input_len[r] + generated[r] + gain) // block))
        if need > held[r]:
            extra += need - int(held[r])
            if take:
                held[r] = need
    return extra


def poisson_arrivals(rate: float, count: int, seed: int) -> np.ndarray:
    """`count` Poisson arrival times at `rate` per second (counter-based: same seed, same
    times)."""
    rng = np.random.Generator(np.random.Philox(key=seed))
    return np.cumsum(rng.exponential(1.0 / rate, count))


def simulate_fast(*args, **kwargs) -> RequestStats:
    """The compiled simulator (podsim._core.simulate_requests), with `simulate`'s arguments:
    `simulate` with `bucketed(step_time)`, request for request and bit for bit, but `step_time`
    is called once per distinct (decode sequences, context bucket, prompt-token bucket) and the
    loop runs in C++ (a million requests in about a second)."""
    bound = inspect.signature(simulate).bind(*args, **kwargs)
    bound.apply_defaults()
    a = bound.arguments
    arrival_s, output_len, scheduler = a["arrival_s"], a["output_len"], a["scheduler"]
    if scheduler not in SCHEDULERS:
        raise SpecError(f"requests: scheduler = {scheduler!r} is not allowed: one of {SCHEDULERS}")
    run = _core.simulate_requests(
        np.asarray(arrival_s, np.float64),
        np.asarray(a["input_len"], np.int64),
        np.asarray(output_len, np.int64),
        np.asarray(a["cached"], np.int64),
        float(a["kv_capacity_tokens"]),
        int(a["max_batch"]),
        SCHEDULERS.index(scheduler),
        int(a["budget"] or DEFAULT_BUDGET[scheduler]),
        int(a["block"]),
        float(a["gain"]),
        a["step_time"],
    )
    return _stats(
        arrival_s,
        output_len,
        run["first_s"],
        run["finish_s"],
        int(run["iterations"]),
        int(run["preemptions"]),
        float(run["makespan_s"]),
        float(run["busy_s"]),
        float(run["mean_in_system"]),
    )
