"""One browser session's state (held in a gr.State): its own workbench, created on first use, freed when idle."""

from __future__ import annotations

import copy
import re
import threading
import time
import weakref
from contextlib import contextmanager

from red_explorer.app.workbench import Workbench, new_owner_key
from red_explorer.app.workbench_ticket import WorkbenchTicket, rebuild, ticket

BROWSER_KEY = re.compile(r"[0-9a-f]{32}")  # what new_owner_key makes: never a reserved owner such as "local"
_OPEN: weakref.WeakSet = weakref.WeakSet()  # sessions holding a workbench (for the header and the tests)
_CLOSER: list[threading.Thread] = []  # the one thread that frees idle sessions, once started


def is_browser_key(key: object) -> bool:
    """Whether ``key`` has the form of a key ``new_owner_key`` makes (anything else from a browser is refused)."""
    return isinstance(key, str) and BROWSER_KEY.fullmatch(key) is not None


def open_sessions() -> int:
    """How many browser sessions hold a workbench right now."""
    return len(_OPEN)


class Session:
    """What gr.State keeps per browser tab. Deep-copied while empty; the workbench appears on first use.

    (A plain class, not a dataclass: Gradio would try to serialise a dataclass state value.) Pickled, a session
    travels as its workbench's ticket: the process that unpickles it (a ZeroGPU worker) rebuilds the workbench on
    first use.
    """

    def __init__(self, workbench: Workbench | None = None, show_cli_runs: bool = False):
        self._workbench = workbench
        self._ticket: WorkbenchTicket | None = None  # what a pickled session rebuilds its workbench from
        self._owner = workbench.owner if workbench is not None else None
        self.show_cli_runs = show_cli_runs  # offer the command line's runs (an app on loopback only)
        self.shared_tokens = workbench.shared_tokens if workbench is not None else []  # outlive an idle close
        self.job: str | None = None  # "training" or "ablation" while one runs (what Stop would stop)
        self.last_error = ""  # the reason of the last refused request (shown when the page is restored)
        self.restore_note = (None, "")  # (model key, note) of the page load's restore, shown with that model
        self.last_used = time.monotonic()
        self.gone = False  # the tab left: a request still under way then gets no new workbench
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
        """Use the runs of the owner ``key`` kept in the browser; a key of any other form than the random ones the
        app makes (none, a reserved owner such as the command line's "local", a path) gets the random key this
        session already uses (a click before the page load finished made one and may have kept something under
        it), else a new one.

        Returns the key, for the browser to keep: a reload or a server restart finds the same runs.
        """
        if is_browser_key(key):
            self._owner = key
        elif not is_browser_key(self._owner):
            self._owner = new_owner_key()
        self.workbench.set_owner(self._owner)
        return self._owner

    @property
    def workbench(self) -> Workbench:
        """The session's workbench (made on first use, again after an idle close, with the same owner)."""
        self.last_used = time.monotonic()
        if self._workbench is None:
            if self.gone:
                raise ValueError("this page was closed; reload it to go on (your runs are kept)")
            if self._ticket is not None:
                self._workbench = rebuild(self._ticket)
            else:
                self._workbench = Workbench(owner=self._owner, show_cli_runs=self.show_cli_runs)
            self._workbench.shared_tokens = self.shared_tokens
            self._owner = self._workbench.owner
            _OPEN.add(self)
        return self._workbench

    def close(self) -> None:
        """The tab left (gr.State's delete_callback): free it for good; its runs stay kept on disk."""
        self.gone = True
        self.free()

    def free(self) -> None:
        """Free the page's data and files; its runs stay kept on disk, and a later request gets a new workbench."""
        if self._workbench is not None:
            self._workbench.close()
            self._workbench = None
        _OPEN.discard(self)

    def __reduce__(self):
        return _from_ticket, (ticket(self.workbench),)

    def __deepcopy__(self, memo: dict) -> Session:
        """A copy of every attribute (gr.State copies its empty session for each new tab), not a pickled one."""
        copied = Session.__new__(Session)
        copied.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return copied

    def __repr__(self) -> str:
        return f"Session(workbench={'open' if self._workbench else 'none'})"


def _from_ticket(sent: WorkbenchTicket) -> Session:
    """A pickled session, unpickled: cheap (the workbench is rebuilt on first use, inside the GPU grant)."""
    session = Session(show_cli_runs=sent.show_cli_runs)
    session._owner, session._ticket, session.shared_tokens = sent.owner, sent, sent.shared_tokens
    return session


def close_idle(idle_seconds: float) -> int:
    """Free the sessions unused for ``idle_seconds`` with no job running (API clients never say they left);
    returns how many. Their runs stay kept; a session used again gets a new workbench with the same owner."""
    cutoff = time.monotonic() - idle_seconds
    idle = [session for session in list(_OPEN) if session.job is None and session.last_used < cutoff]
    for session in idle:
        session.free()
    return len(idle)


def keep_closing_idle(idle_seconds: float) -> None:
    """Start the thread that frees idle sessions (``close_idle``), checking a few times per ``idle_seconds``."""
    if _CLOSER:
        return
    every = max(1.0, min(60.0, idle_seconds / 4))

    def loop() -> None:
        while True:
            time.sleep(every)
            close_idle(idle_seconds)

    _CLOSER.append(threading.Thread(target=loop, name="close-idle-sessions", daemon=True))
    _CLOSER[0].start()
