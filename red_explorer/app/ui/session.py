"""One browser session's state (held in a gr.State): its own workbench, created on first use."""

from __future__ import annotations

import weakref
from contextlib import contextmanager

from red_explorer.app.workbench import Workbench, new_owner_key

_OPEN: weakref.WeakSet = weakref.WeakSet()  # sessions holding a workbench (for the header and the tests)


def open_sessions() -> int:
    """How many browser sessions hold a workbench right now."""
    return len(_OPEN)


class Session:
    """What gr.State keeps per browser tab. Deep-copied while empty; the workbench appears on first use.

    (A plain class, not a dataclass: Gradio would try to serialise a dataclass state value.)
    """

    def __init__(self, workbench: Workbench | None = None):
        self._workbench = workbench
        self.job: str | None = None  # "training" or "ablation" while one runs (what Stop would stop)
        self.last_error = ""  # the reason of the last refused request (shown when the page is restored)
        if workbench is not None:
            _OPEN.add(self)

    @contextmanager
    def running(self, job: str):
        """``with session.running("training"): ...`` marks a job as running for Stop."""
        self.job = job
        try:
            yield
        finally:
            self.job = None

    def adopt_owner(self, key: str | None) -> str:
        """Use the runs of the owner ``key`` kept in the browser (a new random key when it has none or a bad one).

        Returns the key, for the browser to keep: a reload or a server restart finds the same runs.
        """
        try:
            self.workbench.set_owner(key or "")
        except ValueError:
            self.workbench.set_owner(new_owner_key())
        return self.workbench.owner

    @property
    def workbench(self) -> Workbench:
        if self._workbench is None:
            self._workbench = Workbench()
            _OPEN.add(self)
        return self._workbench

    def close(self) -> None:
        """Free the page's data and files (gr.State's delete_callback); its runs stay kept on disk."""
        if self._workbench is not None:
            self._workbench.close()
            self._workbench = None
        _OPEN.discard(self)

    def __repr__(self) -> str:
        return f"Session(workbench={'open' if self._workbench else 'none'})"
