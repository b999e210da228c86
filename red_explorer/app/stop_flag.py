"""A stop request that another process sees: a flag kept as a file (a forked GPU worker polls it between steps)."""

from __future__ import annotations

import threading
from pathlib import Path


class StopFlag(threading.Event):
    """``set()`` writes ``path``, ``clear()`` removes it, ``is_set()`` checks it: every process sharing the
    folder sees the same flag. (Only these three are used of threading.Event, whose place it takes.)

    The training loop calls ``is_set()`` between steps, so a file check per step costs nothing next to a step.
    A flag whose folder is gone (its session closed) reads as set: nobody waits for that job any more.
    """

    def __init__(self, path: str | Path):
        super().__init__()
        self.path = Path(path)

    def set(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def is_set(self) -> bool:
        return self.path.exists() or not self.path.parent.is_dir()
