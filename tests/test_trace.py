"""Chrome / Perfetto traces of engine timelines."""

import gzip
import json
from collections import Counter

import numpy as np
import pytest
from conftest import cluster

from podsim import ProgramBuilder, SpecError, simulate
from podsim.lowering.program import Kind, Program
from podsim.results.trace import chrome_trace, write_chrome_trace


def small_run():
    """Two ranks: compute, an all-reduce overlapped on stream 1, a join, a send/recv pair and
    a side computation on stream 2."""
    b = ProgramBuilder()
    pair = b.group([0, 1])
    for rank in (0, 1):
        first = b.compute(rank, 1e-3 * (rank + 1))
        reduce = b.collective(rank, "all-reduce", pair, 1e6, deps=[first])
        b.compute(rank, 2e-3)
        b.wait(rank, deps=[reduce])
    b.send(0, 1, 4096, deps=[])
    b.recv(1, 0, 4096, deps=[])
    b.compute(1, 5e-4, stream=2)
    program = b.build()
    return program, simulate(program, cluster(2))


def complete_events(trace):
    return [e for e in trace["traceEvents"] if e["ph"] == "X"]


def test_one_event_per_op_but_zero_length_waits():
    program, timeline = small_run()
    events = complete_events(chrome_trace(program, timeline))
    assert len(events) == program.num_ops - 2  # the two waits take no time
    lanes = Counter((e["pid"], e["tid"]) for e in events)
    assert lanes == {(0, 0): 2, (0, 1): 2, (1, 0): 2, (1, 1): 2, (1, 2): 1}


def test_times_are_the_timeline_in_microseconds():
    program, timeline = small_run()
    events = complete_events(chrome_trace(program, timeline))
    shown = [i for i in range(program.num_ops) if program.kind[i] != Kind.WAIT]
    for op, event in zip(shown, events, strict=True):
        assert event["pid"] == program.rank[op] and event["tid"] == program.stream[op]
        # Microseconds to the nanosecond; ts + dur is the rounded end.
        assert event["ts"] == pytest.approx(timeline.start[op] * 1e6, abs=5e-4)
        assert event["ts"] + event["dur"] == pytest.approx(timeline.end[op] * 1e6, abs=1e-3)
    end = max(e["ts"] + e["dur"] for e in events)
    assert end == pytest.approx(timeline.makespan * 1e6, abs=1e-3)


def test_names_and_args():
    program, timeline = small_run()
    events = complete_events(chrome_trace(program, timeline))
    by_name = Counter(e["name"] for e in events)
    assert by_name == {"compute": 5, "all-reduce": 2, "send to 1": 1, "recv from 0": 1}
    reduce = next(e for e in events if e["name"] == "all-reduce")
    assert reduce["cat"] == "collective"
    assert reduce["args"]["bytes"] == 1e6 and reduce["args"]["group_size"] == 2
    assert reduce["args"]["algorithm"] != "auto"  # the one the engine resolved
    send = next(e for e in events if e["name"] == "send to 1")
    assert send["args"] == {"op": 8, "bytes": 4096.0, "peer": 1}
    assert all("args" not in e for e in events if e["cat"] == "compute")


def test_given_names_replace_the_defaults():
    program, timeline = small_run()
    names = [f"op{i}" for i in range(program.num_ops)]
    events = complete_events(chrome_trace(program, timeline, names=names))
    assert [e["name"] for e in events] == [
        "op0",
        "op1",
        "op2",
        "op4",
        "op5",
        "op6",
        "op8",
        "op9",
        "op10",
    ]
    with pytest.raises(SpecError, match="names: 3 names"):
        chrome_trace(program, timeline, names=names[:3])


def test_metadata_events():
    program, timeline = small_run()
    trace = chrome_trace(program, timeline, metadata={"scenario": "test"})
    meta = [e for e in trace["traceEvents"] if e["ph"] == "M"]
    processes = {e["pid"]: e["args"]["name"] for e in meta if e["name"] == "process_name"}
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in meta if e["name"] == "thread_name"}
    assert processes == {0: "rank 0", 1: "rank 1"}
    assert threads == {
        (0, 0): "compute",
        (0, 1): "communication",
        (1, 0): "compute",
        (1, 1): "communication",
        (1, 2): "stream 2",
    }
    assert trace["displayTimeUnit"] == "ms" and trace["otherData"] == {"scenario": "test"}
    assert chrome_trace(program, timeline)["otherData"] == {}


@pytest.mark.parametrize("suffix", [".json", ".json.gz"])
def test_written_trace_round_trips(tmp_path, suffix):
    program, timeline = small_run()
    path = tmp_path / f"trace{suffix}"
    write_chrome_trace(path, program, timeline, metadata={"devices": 2})
    data = path.read_bytes()
    text = gzip.decompress(data) if suffix.endswith(".gz") else data
    assert b", " not in text  # compact
    assert json.loads(text) == chrome_trace(program, timeline, metadata={"devices": 2})


def test_a_timeline_of_another_program_is_refused():
    _, timeline = small_run()
    other = ProgramBuilder()
    other.compute(0, 1.0)
    with pytest.raises(SpecError, match="not the same run"):
        chrome_trace(other.build(), timeline)


def large_program(ranks: int, per_rank: int) -> Program:
    """Each rank alternates compute (stream 0) and an all-reduce with its neighbour (stream 1)."""
    ops = ranks * per_rank
    rank = np.repeat(np.arange(ranks, dtype=np.int32), per_rank)
    stream = np.tile(np.arange(per_rank, dtype=np.int32) % 2, ranks)
    comm = stream == 1
    pairs = np.arange(0, ranks, 2)
    return Program(
        rank=rank,
        stream=stream,
        kind=np.where(comm, Kind.COLLECTIVE, Kind.COMPUTE).astype(np.int8),
        duration=np.where(comm, 0.0, 1e-4),
        bytes=np.where(comm, 1e6, 0.0),
        peer=np.where(comm, rank // 2, -1).astype(np.int32),
        collective=np.where(comm, 0, -1).astype(np.int8),
        algorithm=np.where(comm, 0, -1).astype(np.int8),
        repeat=np.ones(ops, dtype=np.int32),
        dep_offsets=np.zeros(ops + 1, dtype=np.int64),
        dep_ops=np.zeros(0, dtype=np.int32),
        group_offsets=np.arange(0, ranks + 1, 2, dtype=np.int64),
        group_ranks=np.stack([pairs, pairs + 1], axis=1).ravel().astype(np.int32),
    )


def test_a_large_trace(tmp_path):
    # 200k ops: a smoke test that the column-wise build copes (benchmarks/ times it).
    program = large_program(ranks=1000, per_rank=200)
    timeline = simulate(program, cluster(1000))
    trace = chrome_trace(program, timeline)
    assert len(complete_events(trace)) == 200_000
    write_chrome_trace(tmp_path / "large.json.gz", program, timeline)
