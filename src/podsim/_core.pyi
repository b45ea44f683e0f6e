"""Typed stubs of podsim._core, the C++ engine (cpp/bindings/): private, use the podsim package.

Integers and floats are accepted as pybind11 does (anything with __int__/__index__ or
__float__); numpy arguments must be numpy arrays. Keep in step with cpp/bindings/*.cpp.
"""

from collections.abc import Callable, Sequence
from typing import Any, SupportsFloat, SupportsIndex, SupportsInt, TypeAlias, TypedDict

import numpy as np
import numpy.typing as npt

_Int: TypeAlias = SupportsInt | SupportsIndex
_Float: TypeAlias = SupportsFloat | SupportsIndex

class Topology:
    """The cluster as the network sees it (podsim/topology.hpp); validated on construction
    (raises podsim.errors.SpecError)."""

    def __init__(
        self,
        devices: _Int,
        domain_size: _Int,
        pod_size: _Int,
        scale_up_bandwidth: _Float,
        scale_up_latency: _Float,
        scale_out_bandwidth: _Float,
        scale_out_latency: _Float,
        oversubscription: _Float,
        launch_latency: _Float,
        message_overhead: _Float = 0.0,
        nic_message_rate: _Float = 0.0,
        forward_efficiency: _Float = 1.0,
        scale_up_topology: _Int = 0,
        link_bandwidth: _Float = 0.0,
        torus_dims: tuple[_Int, _Int, _Int] = (1, 1, 1),
        package_size: _Int = 1,
        package_bandwidth: _Float = 0.0,
        nvls_bandwidth: _Float = 0.0,
        nvls_latency: _Float = 0.0,
        protocol: _Int = 3,
    ) -> None: ...
    @property
    def devices(self) -> int: ...
    @property
    def domain_size(self) -> int: ...
    @property
    def pod_size(self) -> int: ...
    @property
    def scale_up_topology(self) -> int: ...
    @property
    def link_bandwidth(self) -> float: ...
    @property
    def torus_dims(self) -> tuple[int, int, int]: ...
    @property
    def package_size(self) -> int: ...
    @property
    def nvls_bandwidth(self) -> float: ...
    @property
    def nvls_latency(self) -> float: ...
    @property
    def protocol(self) -> int: ...

class Noise:
    """Run-to-run variation (podsim/engine.hpp, docs/engine.md "Noise")."""

    def __init__(
        self,
        seed: _Int = 0,
        compute_cv: _Float = 0.0,
        latency_sigma: _Float = 0.0,
        straggler_fraction: _Float = 0.0,
        straggler_ranks: Sequence[_Int] = [],
        straggler_slowdown: _Float = 1.0,
        straggler_probability: _Float = 1.0,
    ) -> None: ...

class Engine:
    """Runs a program (its columns: podsim.lowering.program.Program's fields by name, each a 1-D
    numpy array of exactly its dtype) on a topology. `mode`: 0 analytical, 1 contention.
    Raises podsim.errors.ProgramError or SpecError."""

    def __init__(
        self,
        columns: dict[str, npt.NDArray[Any]],
        topology: Topology,
        mode: _Int,
        noise: Noise = ...,
        symmetric: bool = ...,
        copies: dict[str, npt.NDArray[Any]] | None = ...,
        consume: bool = ...,
        record: bool = ...,
    ) -> None: ...
    def restart(self, iteration: _Int) -> None:
        """Run the step again as iteration `iteration` (fresh noise draws)."""
    def advance(self, max_events: _Int) -> bool:
        """Process up to max_events events; True once the run is complete (raises
        podsim.errors.DeadlockError if it cannot finish)."""
    def replicate(self, noise: Noise) -> None:
        """After a complete run of a symmetric program with rank and group copies in the
        analytical network: prepare runs of every rank it stands for, with `noise`
        (docs/engine.md, "Replicated runs")."""
    def replicated_makespans(self, first: _Int, count: _Int, threads: _Int = 1) -> list[float]:
        """Makespans of steps first .. first + count - 1 of every rank, on `threads` threads."""
    def replicated_times(
        self, iteration: _Int
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], float]:
        """(start, end, makespan) of step `iteration` of every rank, in the every-rank
        program's op order."""
    @property
    def replicated_ops(self) -> int: ...
    @property
    def done(self) -> bool: ...
    @property
    def start(self) -> npt.NDArray[np.float64]: ...
    @property
    def end(self) -> npt.NDArray[np.float64]: ...
    @property
    def resolved_algorithm(self) -> npt.NDArray[np.int8]: ...
    @property
    def events_processed(self) -> int: ...
    @property
    def makespan(self) -> float: ...
    @property
    def symmetry_note(self) -> str:
        """Why a copy of a symmetric program's collective or send would not take its
        representative's time over pod links (the run is then not exact); empty if none."""

def max_of_normals(n: _Float, u: _Float) -> float:
    """The largest of n standard normals at probability u (order statistic)."""

def normal_quantile(p: _Float) -> float: ...

class _LongRuns(TypedDict):
    """What long_runs returns: one slot per run (podsim/failures.hpp, LongRuns)."""

    wall_s: npt.NDArray[np.float64]
    progress_s: npt.NDArray[np.float64]
    interruptions: npt.NDArray[np.int64]
    lost_s: npt.NDArray[np.float64]
    checkpoint_s: npt.NDArray[np.float64]
    restart_s: npt.NDArray[np.float64]
    waiting_s: npt.NDArray[np.float64]
    spares_used: npt.NDArray[np.int64]
    finished: npt.NDArray[np.bool_]
    class_counts: npt.NDArray[np.int64]  # runs x (classes + 1); last column: links
    job_rate_per_s: float

def long_runs(
    class_rates_per_s: npt.NDArray[Any],
    class_spare_devices: npt.NDArray[Any],
    devices: _Int,
    links: _Int,
    link_rate_per_s: _Float,
    useful_time_s: _Float,
    max_wall_s: _Float,
    checkpoint_interval_s: _Float,
    checkpoint_write_s: _Float,
    checkpoint_async: bool,
    checkpoint_snapshot_s: _Float,
    restart_s: _Float,
    spares: _Int,
    replacement_s: _Float,
    seed: _Int,
    runs: _Int,
    threads: _Int,
) -> _LongRuns:
    """Monte Carlo of `runs` independent long runs with failures, checkpoints and restarts: a
    dict of per-run numpy arrays (see podsim/failures.hpp). Same bits for any thread count."""

def collective_time(
    topology: Topology,
    op: _Int,
    algorithm: _Int,
    ranks: npt.NDArray[np.int32],
    bytes: _Float,
    message_bytes: _Float = 0.0,
    fanout: _Float = 1.0,
) -> tuple[int, float]:
    """(resolved algorithm, seconds) of one collective without contention."""

def collective_protocol(
    topology: Topology, op: _Int, algorithm: _Int, ranks: npt.NDArray[np.int32], bytes: _Float
) -> int:
    """The protocol (0 auto, 1 ll, 2 ll128, 3 simple) the collective runs: never 0."""

def collective_phases(
    topology: Topology,
    op: _Int,
    algorithm: _Int,
    ranks: npt.NDArray[np.int32],
    bytes: _Float,
    message_bytes: _Float = 0.0,
    fanout: _Float = 1.0,
) -> list[tuple[float, list[tuple[int, int, float]]]]:
    """The phases [(latency_s, [(src, dst, bytes), ...]), ...] of the contention network."""

class _RequestRun(TypedDict):
    """What simulate_requests returns (podsim/requests.hpp, RequestRun)."""

    first_s: npt.NDArray[np.float64]
    finish_s: npt.NDArray[np.float64]
    iterations: int
    preemptions: int
    step_evaluations: int
    makespan_s: float
    busy_s: float
    mean_in_system: float

def simulate_requests(
    arrival_s: npt.NDArray[np.float64],
    input_len: npt.NDArray[np.int64],
    output_len: npt.NDArray[np.int64],
    cached: npt.NDArray[np.int64],
    kv_capacity_tokens: _Float,
    max_batch: _Int,
    scheduler: _Int,
    budget: _Int,
    block: _Int,
    gain: _Float,
    step_time: Callable[[int, float, float], float],
) -> _RequestRun:
    """The request-level simulator of one attention rank (see podsim/requests.hpp)."""

def step_bucket(x: _Float) -> float:
    """x rounded up to the ladder of 8 steps per doubling (0 -> 0, (0, 1] -> 1)."""
