"""The bench's time budget: a later section starts only while time is left, and says why it did not."""

from __future__ import annotations

from red_explorer.bench.budget import TimeBudget


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_without_a_limit_every_section_runs():
    budget = TimeBudget(None)
    assert budget.left() is None and budget.run("compiled_step", lambda: {"ms": 1.0}) == {"ms": 1.0}


def test_a_section_runs_while_time_is_left_and_is_skipped_after():
    clock = Clock()
    budget = TimeBudget(300, clock)
    assert budget.run("engine", lambda: {"ratio": 0.9}) == {"ratio": 0.9}
    clock.now += 299.5
    assert budget.left() == 0.5 and budget.run("engine", lambda: {"ratio": 0.9}) == {"ratio": 0.9}
    clock.now += 1
    skipped = budget.run("engine", lambda: {"ratio": 0.9})
    assert skipped == {"skipped": "the time budget of 300 s was spent before it could start"}


def test_a_compiled_section_needs_a_minute_to_start():
    clock = Clock()
    budget = TimeBudget(300, clock)
    clock.now += 250
    assert budget.run("memory", lambda: {"peak": 1}) == {"peak": 1}
    assert budget.run("compiled_step", lambda: {"ms": 1.0}) == {
        "skipped": "50 s of the 300 s time budget left; it starts with over 60 s left"
    }
