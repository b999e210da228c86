"""Counting the passes of a long computation for whoever shows them: ``on_progress(done, total, what)``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

OnProgress = Callable[[int, int, str], None]  # (passes done, passes in all, what runs now, in words)
DONE = "done"


@dataclass
class PassCounter:
    """Reports ``on_progress(done, total, what)`` as each pass starts, and ``(total, total, "done")`` at the end."""

    total: int
    on_progress: OnProgress | None = None
    done: int = 0

    def tell(self, what: str) -> None:
        """Report the passes done so far (never beyond ``total``) and what runs now."""
        if self.on_progress is not None:
            self.on_progress(min(self.done, self.total), self.total, what)

    @contextmanager
    def step(self, what: str) -> Iterator[None]:
        """One pass: reported as it starts, counted as done when the block ends."""
        self.tell(what)
        yield
        self.done += 1

    def finish(self) -> None:
        """Every pass is done (passes skipped, as tokens after an end of sequence, count as done)."""
        self.done = self.total
        self.tell(DONE)


class TokenCounter:
    """A ``generate`` streamer (``put``, ``end``) counting one pass per decoding step of a call, all rows at once.

    ``generate`` puts the prompt first, then each step's new tokens; a call whose rows all end early still counts
    its ``max_new_tokens`` passes when it ends.
    """

    def __init__(self, counter: PassCounter, who: str, max_new_tokens: int):
        self.counter, self.who, self.max_new_tokens = counter, who, max_new_tokens
        self.start, self.tokens = counter.done, -1  # -1: the prompt is not a new token

    def put(self, value) -> None:
        self.tokens += 1
        if self.tokens:
            self.counter.done = self.start + self.tokens
            self.counter.tell(f"generating for {self.who}: token {self.tokens} of {self.max_new_tokens}")

    def end(self) -> None:
        self.counter.done = self.start + self.max_new_tokens
