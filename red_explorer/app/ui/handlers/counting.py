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
    runs now and, once a pass is done, the time left at the pace of the recent passes (the last ``RECENT_SHARE`` of
    those done, at least one): a job that slows down, as on a CPU that gets busy, says so as it goes."""

    RECENT_SHARE = 1 / 3

    def __init__(self, progress: Progress | None, clock: Callable[[], float] = time.monotonic):
        self.progress = given_progress(progress)
        self.clock = clock
        self.reached: dict[int, float] = {}  # passes done -> when that many were first reported

    def __call__(self, done: int, total: int, what: str) -> None:
        now = self.clock()
        self.reached.setdefault(done, now)
        desc = what
        window = done - max(1, int(done * self.RECENT_SHARE))  # the passes done when the recent ones began
        since = max((count for count in self.reached if count <= window), default=min(self.reached))
        if 0 < done < total and since < done:
            pace = (now - self.reached[since]) / (done - since)  # seconds per pass, lately
            desc += f" · {time_left(pace * (total - done))}"
        self.progress(done / total if total else 1.0, desc=desc)


class TimeLeft:
    """The time left of a job that reports the fraction it has done, at its pace since it passed ``after`` (the
    share of set-up that has no steady pace, e.g. loading a model that may already be loaded)."""

    def __init__(self, after: float = 0.0, clock: Callable[[], float] = time.monotonic):
        self.after, self.clock = after, clock
        self.start: tuple[float, float] | None = None  # (time, fraction) of the first report past ``after``
        self.last: tuple[float, float] | None = None

    def report(self, fraction: float) -> None:
        if fraction <= self.after:
            return
        now = self.clock()
        self.start = self.start or (now, fraction)
        self.last = (now, fraction)

    def text(self) -> str | None:
        """'about 40 s left' once two reports past ``after`` give a pace, else None."""
        if self.start is None or self.last is None or self.last[1] <= self.start[1] or self.last[1] >= 1.0:
            return None
        (started, first), (reported, fraction) = self.start, self.last
        left = (1.0 - fraction) * (reported - started) / (fraction - first) - (self.clock() - reported)
        return time_left(max(left, 1.0))
