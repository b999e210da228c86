"""A run's set-up time and steady step time, read from its training events as they come."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from red_explorer.engine.training import Callback, StepEvent


@dataclass
class StepTiming:
    """When a run's job started and how long each optimizer step took.

    set-up = (first step reported) − (start) − (first step's own time): everything before the first step (the
    training copy of the base, tokenising, attaching the method, the first validation). per step = the median
    step time after the first (the steady state).
    """

    started: float = field(default_factory=time.perf_counter)
    first_reported: float | None = None
    step_seconds: list[float] = field(default_factory=list)

    def record(self, seconds: float, now: float) -> None:
        if self.first_reported is None:
            self.first_reported = now
        self.step_seconds.append(seconds)

    def watching(self, callback: Callback | None = None, clock: Callable[[], float] = time.perf_counter) -> Callback:
        """A training callback that times each step, then passes every event on to ``callback``."""

        def watch(event) -> None:
            if isinstance(event, StepEvent):
                self.record(event.seconds, clock())
            if callback is not None:
                callback(event)

        return watch

    @property
    def setup(self) -> float | None:
        if self.first_reported is None:
            return None
        return max(0.0, self.first_reported - self.started - self.step_seconds[0])

    @property
    def per_step(self) -> float | None:
        steady = self.step_seconds[1:] or self.step_seconds
        return statistics.median(steady) if steady else None
