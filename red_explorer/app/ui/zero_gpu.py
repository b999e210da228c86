"""ZeroGPU: a handler's work runs in the Space's forked GPU worker; the session in this process takes its results.

``spaces.GPU`` runs the granted function in a worker process forked once and reused: its arguments and every value
it yields are pickled, and its memory is a snapshot of the fork (a model loaded or a run kept later is not in it).
So the worker gets the handler's name and its arguments, the session among them as its workbench's ticket
(``Session.__reduce__``); it rebuilds the workbench over its own model cache (the base loads there, inside the
grant, when the snapshot lacks it), runs the handler and yields ``Update``s (outputs, progress, the job running),
then ``Finished`` with the ticket of what it left; a plain handler that reports progress runs in a thread there, so
that its progress comes while it runs. Here each update is shown and ``Finished`` is adopted: this
process stays the owner of every session. Runs travel through the shared run store on disk; Stop through the
session's stop file (``StopFlag``).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import pickle
from collections.abc import Callable
from dataclasses import dataclass

from red_explorer.app.ui.gpu_grants import GPU_SECONDS, handler_name
from red_explorer.app.ui.handlers import common
from red_explorer.app.ui.handlers.common import EXPECTED_ERRORS, Worker
from red_explorer.app.ui.session import Session
from red_explorer.app.workbench_ticket import WorkbenchTicket, adopt, stop_across_processes, ticket

logger = logging.getLogger(__name__)


def handler_named(name: str) -> Callable:
    module, function = name.split(".")
    return getattr(importlib.import_module(f"red_explorer.app.ui.handlers.{module}"), function)


@dataclass
class Update:
    """One output of the handler in the worker, the last progress it reported before, and the job it runs."""

    outputs: object
    progress: tuple[tuple, dict] | None
    job: str | None


@dataclass
class Finished:
    """The end of a granted call: the workbench as the worker left it (None if it was not rebuilt), or the error."""

    workbench: WorkbenchTicket | None
    error: BaseException | None


class Running:
    """The outputs of an update sent while a plain handler still runs: none yet, only its progress."""


class ProgressSlot:
    """Where the handler's ``progress`` goes in the arguments sent (Gradio's progress object stays here)."""


class _Recorder:
    """The worker's ``progress``: keeps the last call, sent with the next update."""

    def __init__(self) -> None:
        self.last: tuple[tuple, dict] | None = None

    def __call__(self, *args, **kwargs) -> None:
        self.last = (args, kwargs)

    def take(self) -> tuple[tuple, dict] | None:
        last, self.last = self.last, None
        return last


def _while_running(call: Callable[[], object], recorder: _Recorder):
    """``call`` in a thread: ``Running()`` after each poll in which it reported progress, then its outputs. If the
    page leaves, the call still ends before the worker takes the next one."""
    worker = Worker(call)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(common.POLL_SECONDS)
            if worker.is_alive() and recorder.last is not None:
                yield Running()
    finally:
        worker.join()
    if worker.error is not None:
        raise worker.error
    yield worker.result


def _portable(error: Exception) -> Exception:
    """``error`` if it survives pickling, else one of the same kind (a refusal stays a refusal) with its text."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # noqa: BLE001 - any error that does not travel is replaced
        kind = ValueError if isinstance(error, EXPECTED_ERRORS) else RuntimeError
        return kind(str(error) if kind is ValueError else f"{type(error).__name__}: {error}")


def grant_seconds(name: str, args: tuple, kwargs: dict) -> int:
    """The grant ``granted_work(name, ...)`` asks for (``spaces.GPU`` calls its duration with the call's arguments)."""
    return GPU_SECONDS[name]


def granted_work(name: str, args: tuple, kwargs: dict):
    """In the GPU worker: the handler ``name`` on ``args`` and ``kwargs`` (args[0] a session sent as its ticket);
    yields an ``Update`` per output, then ``Finished``. Errors are sent as values, so a refusal keeps its message."""
    session, recorder = args[0], _Recorder()
    args = tuple(recorder if isinstance(value, ProgressSlot) else value for value in args)
    kwargs = {key: recorder if isinstance(value, ProgressSlot) else value for key, value in kwargs.items()}
    results, error, handler = None, None, handler_named(name)
    try:
        if "progress" in inspect.signature(handler).parameters and not inspect.isgeneratorfunction(handler):
            results = _while_running(lambda: handler(*args, **kwargs), recorder)
        else:
            results = handler(*args, **kwargs)
        for outputs in results if inspect.isgenerator(results) else [results]:
            yield Update(outputs, recorder.take(), session.job)
    except Exception as raised:  # noqa: BLE001 - sent back and raised there
        if not isinstance(raised, EXPECTED_ERRORS):
            logger.exception("%s failed in the GPU worker", name)
        error = _portable(raised)
    finally:
        if inspect.isgenerator(results):
            results.close()  # also when the page left: the handler's own clean-up asks its job to stop
    yield Finished(ticket(session.workbench) if session._workbench is not None else None, error)


def in_worker(handler: Callable, granted: Callable) -> Callable:
    """A stand-in for ``handler`` (same arguments, generator if it is one) whose work ``granted`` runs in the GPU
    worker; each output is yielded here as it comes, and what the job changed is adopted by the session."""
    parameters = list(inspect.signature(handler).parameters)
    slot = parameters.index("progress") if "progress" in parameters else None
    name = handler_name(handler)

    def outputs(session: Session, *rest, **kwargs):
        args, progress = [session, *rest], kwargs.get("progress")
        if slot is not None and slot < len(args):
            progress, args[slot] = args[slot], ProgressSlot()
        elif "progress" in kwargs:
            kwargs["progress"] = ProgressSlot()
        stop_across_processes(session.workbench)
        sent, finished, messages = ticket(session.workbench), None, granted(name, tuple(args), kwargs)
        try:
            for message in messages:
                if isinstance(message, Finished):
                    finished = message
                    continue
                session.job = message.job
                if message.progress is not None and callable(progress):
                    progress(*message.progress[0], **message.progress[1])
                if not isinstance(message.outputs, Running):
                    yield message.outputs
        except GeneratorExit:  # the page left: the job in the worker stops after its step
            with contextlib.suppress(ValueError):  # (a closed page's stop was asked when it closed)
                session.workbench.stop()
            raise
        finally:
            session.job = None
            messages.close()
        if finished is None:
            raise RuntimeError(f"the GPU worker ended {name} without an answer; try again")
        if finished.workbench is not None:
            adopt(session.workbench, sent, finished.workbench)
        if finished.error is not None:
            raise finished.error

    if inspect.isgeneratorfunction(handler):
        return outputs

    def call(*args, **kwargs):
        return list(outputs(*args, **kwargs))[-1]  # the handler's one output

    return call
