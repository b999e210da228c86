"""A library computation's ``on_progress(done, total, what)`` shown on the page's progress bar, with the time left."""

from __future__ import annotations

import time
from collections.abc import Callable

from red_explorer.app.ui.handlers.common import Progress, given_progress


def time_left(seconds: float) -> str:
    """'about 40 s left', 'about 3 min left'."""
    if seconds < 60:
        return f"about {max(1, round(seconds))} s left"
    return f"about {round(seconds / 60)} min left"


class ShownProgress:
    """The library's ``on_progress(done, total, what)`` as ``progress(done / total, desc=...)`` (gr.Progress): what
    runs now and, once a pass is done, the time left at the pace so far (counted from the first report)."""

    def __init__(self, progress: Progress | None, clock: Callable[[], float] = time.monotonic):
        self.progress = given_progress(progress)
        self.clock, self.started = clock, None

    def __call__(self, done: int, total: int, what: str) -> None:
        now = self.clock()
        self.started = now if self.started is None else self.started
        desc = what
        if 0 < done < total:
            desc += f" · {time_left((now - self.started) / done * (total - done))}"
        self.progress(done / total if total else 1.0, desc=desc)
