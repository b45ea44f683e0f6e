"""A long training run with failures, checkpoints and restarts: the Monte Carlo, as a result."""

from podsim.engine.failures import FailureModel, monte_carlo
from podsim.results.long_run import LongRunResult


def long_run(
    model: FailureModel,
    *,
    threads: int | None = None,
    window_s: float | None = None,
    max_wall_s: float | None = None,
) -> LongRunResult:
    """Simulate model.runs independent long runs (see podsim.engine.failures.monte_carlo)."""
    return LongRunResult(
        **monte_carlo(model, threads=threads, window_s=window_s, max_wall_s=max_wall_s)
    )
