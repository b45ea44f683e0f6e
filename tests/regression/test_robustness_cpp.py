"""Regression tests for the C++ core's robustness findings (fuzzing campaign, findings 1, 2, 11,
12, 13, 14, 18). Each test copies the essence of its reproducer (named in the docstring); the
project does not depend on the reproducer folder."""

import math
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import podsim
from podsim import _core
from podsim.engine import reference
from podsim.errors import ProgramError, SpecError

HOUR = 3600.0


def run_limited(code: str, spare_bytes: int, timeout: float = 120) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter whose address space is limited, after the imports, to
    its size then plus `spare_bytes` (as prlimit --as does on shared machines)."""
    prelude = textwrap.dedent(
        f"""
        import os, resource
        import numpy as np
        import podsim
        from podsim import _core
        pages = int(open("/proc/self/statm").read().split()[0])
        limit = pages * os.sysconf("SC_PAGE_SIZE") + {spare_bytes}
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        """
    )
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def long_runs(rate_per_device_s, spare_devices=1, *, threads=1, **kw):
    args = dict(
        class_rates_per_s=np.array([rate_per_device_s]),
        class_spare_devices=np.array([spare_devices], dtype=np.int64),
        devices=16,
        links=0,
        link_rate_per_s=0.0,
        useful_time_s=1e6,
        max_wall_s=1e8,
        checkpoint_interval_s=1e4,
        checkpoint_write_s=10.0,
        checkpoint_async=False,
        checkpoint_snapshot_s=0.0,
        restart_s=600.0,
        spares=-1,
        replacement_s=0.0,
        seed=0,
        runs=4,
        threads=threads,
    )
    args.update(kw)
    return _core.long_runs(**args)


# --- 1: a worker thread that cannot start (threads_abort.py, cli_on_128_cores.py) -------------


def test_threads_that_cannot_start_do_not_abort():
    """threads_abort.py: 2000 threads under an address-space limit aborted the interpreter
    (std::system_error from std::thread, SIGABRT). Now the threads that start share the runs:
    the same results as on one thread."""
    proc = run_limited(
        """
        args = dict(class_rates_per_s=np.array([1 / (10_000 * 3600.0)]),
                    class_spare_devices=np.array([1], dtype=np.int64), devices=1024, links=0,
                    link_rate_per_s=0.0, useful_time_s=30 * 86400.0, max_wall_s=3e8,
                    checkpoint_interval_s=3600.0, checkpoint_write_s=60.0, checkpoint_async=False,
                    checkpoint_snapshot_s=0.0, restart_s=600.0, spares=-1, replacement_s=0.0,
                    seed=3, runs=4000)
        many = _core.long_runs(threads=2000, **args)
        one = _core.long_runs(threads=1, **args)
        assert all(np.array_equal(many[k], one[k]) for k in one if isinstance(one[k], np.ndarray))
        print("ok")
        """,
        spare_bytes=64 << 20,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "ok"


def test_replicated_steps_on_threads_that_cannot_start_do_not_abort():
    """The same for noisy steps replicated from stage representatives (docs/engine.md,
    "Replicated runs"): the threads that start share the steps, with the one-thread results."""
    proc = run_limited(
        """
        from podsim.engine.core import replicated_engine
        from podsim.lowering.training import StepBuilder
        from podsim.plans.training import Plan
        from podsim.specs.models import get_model
        plan = Plan(seq_len=512, global_batch=8, tp=2, pp=2, dp=2)
        cluster = podsim.make_cluster("h100-sxm", plan.devices)
        lowered = StepBuilder(get_model("llama3-8b"), plan, cluster, 1).lower()
        engine = replicated_engine(lowered.symmetric_program, lowered.symmetric_copies(),
                                   cluster, podsim.NoiseModel(seed=1, compute_cv=0.1))
        many = engine.replicated_makespans(0, 3000, 2000)
        one = engine.replicated_makespans(0, 3000, 1)
        assert many == one and len(set(one)) == 3000
        print("ok")
        """,
        spare_bytes=96 << 20,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "ok"


# --- 2: a job that never finishes (failures_mc_unbounded.toml, failures_mc_1run.toml) ---------


def test_a_run_that_never_finishes_raises_soon():
    """16 devices failing once per hour: the job fails every 225 s, a restart takes 600 s, so it
    never finishes. With max_wall_s allowing 2.2e7 expected failures, a run stops at 1e7
    failures with a SpecError instead of grinding on."""
    t0 = time.monotonic()
    with pytest.raises(SpecError, match="practically never finishes"):
        long_runs(1 / HOUR, max_wall_s=2.2e7 * 225, checkpoint_interval_s=1e6, runs=8, threads=2)
    assert time.monotonic() - t0 < 60


def test_more_than_1e9_expected_failures_are_refused_up_front():
    with pytest.raises(SpecError, match="max_wall_s"):
        long_runs(1 / HOUR, max_wall_s=2e9 * 225)


# --- 11: memory in proportion to the program (engine_memory.py) -------------------------------


def test_one_op_on_a_high_rank_and_stream_needs_little_memory():
    """engine_memory.py (1): one compute op on rank 2^24 - 1, stream 63 made the engine allocate
    a (max rank + 1) x (max stream + 1) int64 table: 8 GiB. Now it runs in 512 MiB."""
    proc = run_limited(
        """
        b = podsim.ProgramBuilder()
        b.compute(2**24 - 1, 1.0, stream=63)
        r = podsim.simulate(b.build(), podsim.make_cluster("h100-sxm", 2**24))
        print(r.makespan)
        """,
        spare_bytes=512 << 20,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert float(proc.stdout) == 1.0


# --- 12: WAIT ops with a duration (wait_duration.py, wait_nan_contention.py) -----------------


@pytest.mark.parametrize("duration", [5.0, -1.0, math.nan, math.inf, -1e300])
@pytest.mark.parametrize("engine", ["core", "reference"])
def test_a_wait_with_a_duration_is_a_program_error(duration, engine):
    cluster = podsim.make_cluster("h100-sxm", 2)
    b = podsim.ProgramBuilder()
    c = b.compute(0, 1e-3)
    w = b.wait(0, deps=[c])
    p = b.build()
    p.duration[w] = duration  # the Program is a frozen dataclass of plain numpy arrays
    with pytest.raises(ProgramError, match="duration"):
        if engine == "core":
            podsim.simulate(p, cluster)
        else:
            reference.simulate(p, cluster)


@pytest.mark.parametrize("network", ["analytical", "contention"])
def test_wait_nan_among_transfers_is_a_program_error(network):
    cluster = podsim.make_cluster("h100-sxm", 16)
    b = podsim.ProgramBuilder()
    g = b.group(range(16))
    for r in range(16):
        c = b.compute(r, 1e-3 * (r + 1))
        w = b.wait(r, deps=[c])
        b.collective(r, "all-reduce", g, 1e8, deps=[w])
        b.send(r, (r + 1) % 16, 1e7, stream=2)
        b.recv(r, (r - 1) % 16, 1e7, stream=3)
    p = b.build()
    p.duration[p.kind == podsim.Kind.WAIT] = math.nan
    with pytest.raises(ProgramError, match="duration = nan"):
        podsim.simulate(p, cluster, network)


# --- 13: spare counts (spares_overflow.py) ----------------------------------------------------


def test_spare_devices_per_failure_are_bounded():
    """2^62 spare devices per failure overflowed the int64 spare count (negative counts)."""
    with pytest.raises(SpecError, match="class_spare_devices"):
        long_runs(1e-3 / 8, spare_devices=2**62, devices=8)
    r = long_runs(1e-5, spare_devices=10**9)
    assert np.array_equal(r["spares_used"], r["interruptions"] * 10**9)
    assert (r["spares_used"] >= 0).all()


# --- 14: int32 link ids (link_id_overflow.py) -------------------------------------------------


def test_topologies_whose_link_ids_overflow_int32_are_refused():
    with pytest.raises(SpecError, match="357913941"):
        _core.Topology(536_870_910, 2, 2, 1e11, 1e-6, 1e11, 1e-6, 100.0, 0.0)
    devices = 357_913_941  # the largest accepted: 6 x devices link ids fit in int32
    t = _core.Topology(devices, 1, 1, 1e11, 1e-6, 1e11, 1e-6, 100.0, 0.0)
    times = [
        _core.collective_time(t, 0, 1, np.array(ranks, np.int32), 1e9)[1]
        for ranks in ([0, 2], [devices - 3, devices - 1])
    ]
    assert times[0] == times[1]  # the same cross-pod ring at both ends of the cluster


# --- 18: one-rank collectives -----------------------------------------------------------------


@pytest.mark.parametrize("op", range(6))
def test_a_one_rank_collective_takes_the_launch_latency(op):
    launch = 3e-6
    t = _core.Topology(8, 4, 8, 4e11, 2e-6, 5e10, 5e-6, 1.0, launch)
    _, seconds = _core.collective_time(t, op, 0, np.array([5], np.int32), 1e9)
    assert seconds == pytest.approx(launch, rel=1e-12)
