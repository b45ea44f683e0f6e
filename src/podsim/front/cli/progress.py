"""A progress bar that shows itself only when a run takes longer than two seconds."""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import Progress

DELAY_S = 2.0


@contextmanager
def progress_after(
    console: Console, label: str, total: int, delay_s: float = DELAY_S
) -> Iterator[Callable[..., None]]:
    """Yields `advance(done, total=None)` (a total given replaces the bar's); the bar appears
    after `delay_s` if the work is not done by then and is removed when it ends (also on
    Ctrl-C, which goes on to stop the run)."""
    bar = Progress(console=console, transient=True)
    task = bar.add_task(label, total=total)
    lock = threading.Lock()
    state = {"started": False, "closed": False}

    def start() -> None:
        with lock:
            if not state["closed"]:
                bar.start()
                state["started"] = True

    timer = threading.Timer(delay_s, start)
    timer.daemon = True
    timer.start()
    try:
        yield lambda done, total=None: bar.update(task, completed=done, total=total)
    finally:
        timer.cancel()
        with lock:
            state["closed"] = True
            if state["started"]:
                bar.stop()
