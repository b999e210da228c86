"""A stand-in for the ``spaces`` package's ZeroGPU decorator that keeps its rules (spaces/zero/wrappers.py).

The decorated function runs in a worker process forked on the first call and reused by later calls while idle
(a busy one makes the next call fork another): its memory is a snapshot of the fork. The call's (args, kwargs)
are pickled to it, the return value, or each value a generator yields, pickled back. Closing the generator
here asks the worker to close its own after the value under way.
"""

from __future__ import annotations

import functools
import inspect
import multiprocessing
import traceback

FORK = multiprocessing.get_context("fork")


def _serve(task, calls, results, closing) -> None:
    """The worker's loop: one call at a time, each value pickled back, then "end" (or the error's traceback)."""
    while True:
        args, kwargs = calls.get()
        closing.clear()
        try:
            if inspect.isgeneratorfunction(task):
                generator = task(*args, **kwargs)
                for value in generator:
                    if closing.is_set():
                        generator.close()
                        break
                    results.put(("value", value))
            else:
                results.put(("value", task(*args, **kwargs)))
            results.put(("end", None))
        except Exception:  # noqa: BLE001 - what the worker would report
            results.put(("error", traceback.format_exc()))


class _Worker:
    def __init__(self, task):
        self.calls, self.results, self.closing = FORK.SimpleQueue(), FORK.SimpleQueue(), FORK.Event()
        self.process = FORK.Process(target=_serve, args=(task, self.calls, self.results, self.closing), daemon=True)
        self.process.start()
        self.busy = False

    def answers(self):
        """The values of the call under way, until its end; the worker's error as a RuntimeError."""
        while self.busy:
            kind, value = self.results.get()
            self.busy = kind == "value"
            if kind == "error":
                raise RuntimeError(f"ZeroGPU worker error:\n{value}")
            if kind == "value":
                yield value


class FakeSpaces:
    """``spaces`` as a module: ``GPU(duration=...)``; ``durations`` and ``worker_pids`` record each call."""

    def __init__(self) -> None:
        self.decorated: dict = {}
        self.idle: dict = {}  # task -> idle workers
        self.durations: list[int] = []
        self.worker_pids: list[int] = []

    def GPU(self, task=None, *, duration=None):  # noqa: N802 - the name spaces uses
        if task is None:
            return functools.partial(self.GPU, duration=duration)
        if task not in self.decorated:
            self.decorated[task] = self._wrap(task, duration)
        return self.decorated[task]

    def _call(self, task, duration, args, kwargs) -> _Worker:
        self.durations.append(duration(*args, **kwargs) if callable(duration) else duration)
        idle = self.idle.setdefault(task, [])
        worker = idle.pop() if idle and idle[-1].process.is_alive() else _Worker(task)
        self.worker_pids.append(worker.process.pid)
        worker.calls.put((args, kwargs))
        worker.busy = True
        return worker

    def _wrap(self, task, duration):
        if inspect.isgeneratorfunction(task):

            @functools.wraps(task)
            def generator(*args, **kwargs):
                worker = self._call(task, duration, args, kwargs)
                try:
                    yield from worker.answers()
                finally:
                    if worker.busy:  # closed here: the worker closes its generator, then answers "end"
                        worker.closing.set()
                        for _ in worker.answers():
                            pass
                    self.idle[task].append(worker)

            return generator

        @functools.wraps(task)
        def regular(*args, **kwargs):
            worker = self._call(task, duration, args, kwargs)
            try:
                return list(worker.answers())[0]
            finally:
                self.idle[task].append(worker)

        return regular

    def close(self) -> None:
        for workers in self.idle.values():
            for worker in workers:
                worker.process.kill()
                worker.process.join()
