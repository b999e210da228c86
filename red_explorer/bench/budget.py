"""A wall-clock budget for the bench's optional sections: one that cannot start in time is marked skipped."""

from __future__ import annotations

import time
from collections.abc import Callable

# Sections that compile first start only with this many seconds left (compiling a small model takes tens of seconds).
STARTING_SECONDS = {"compiled_step": 60.0, "compiled_generation": 60.0}


class TimeBudget:
    """``seconds`` of wall-clock time from now; ``None`` is no limit."""

    def __init__(self, seconds: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.deadline = None if seconds is None else clock() + seconds
        self.seconds = seconds

    def left(self) -> float | None:
        """Seconds left, or None without a limit."""
        return None if self.deadline is None else self.deadline - self.clock()

    def run(self, name: str, measure: Callable[[], dict]) -> dict:
        """``measure()``, or ``{"skipped": why}`` when the time left is under what ``name`` needs to start."""
        left = self.left()
        needed = STARTING_SECONDS.get(name, 0.0)
        if left is None or left > needed:
            return measure()
        if left <= 0:
            return {"skipped": f"the time budget of {self.seconds:.0f} s was spent before it could start"}
        budget = f"{left:.0f} s of the {self.seconds:.0f} s time budget left"
        return {"skipped": f"{budget}; it starts with over {needed:.0f} s left"}
