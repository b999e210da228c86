"""A workbench as plain values, for a forked GPU worker (ZeroGPU) to act for it: sent there, rebuilt, sent back.

The process that serves the page owns every workbench; a worker gets a ``WorkbenchTicket`` (owner, model key, data
file, results so far), rebuilds a workbench from it over its own models and caches, and returns the ticket of what
it left, which ``adopt`` takes back. Runs need no carrying: the run store on disk is shared (under its file lock).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import torch

from red_explorer.app.data_state import LENGTH_PROBE, DataState
from red_explorer.app.model_registry import SHARED_MODELS, ModelKey, ModelRegistry
from red_explorer.app.stop_flag import StopFlag
from red_explorer.app.workbench import Workbench
from red_explorer.data.prepared import prepare_data
from red_explorer.data.tables import DataConfig
from red_explorer.runs.store import RunStore

STOP_FILE = "stop"  # in the session's folder: a Stop pressed in one process reaches a job in the other
DATA_KEPT = 4  # data files read in a worker, kept for its next calls


@dataclass(frozen=True)
class DataFile:
    """The session's data file as it was read; ``stamp`` (size, mtime) tells a file replaced under its name."""

    path: Path
    name: str
    validation_fraction: float
    max_rows: int | None
    stamp: tuple[int, int] | None


@dataclass
class WorkbenchTicket:
    """What a workbench is, in plain values: enough to rebuild it in another process, and to take it back."""

    owner: str
    key: ModelKey
    store_root: Path
    quota_bytes: int | None
    folder: Path
    show_cli_runs: bool
    data: DataFile | None
    max_length: int
    shared_tokens: list[str] = field(default_factory=list)
    ablation_rows: list[dict] = field(default_factory=list)
    sweep_points: list[dict] = field(default_factory=list)


def _data_file(data: DataState | None) -> DataFile | None:
    if data is None:
        return None
    try:
        stat = data.path.stat()
        stamp = (stat.st_size, stat.st_mtime_ns)
    except OSError:
        stamp = None
    return DataFile(data.path, data.name, data.validation_fraction, data.max_rows, stamp)


def ticket(workbench: Workbench) -> WorkbenchTicket:
    """The ticket of ``workbench`` (lists and dicts copied: the ticket does not change with it)."""
    return WorkbenchTicket(
        owner=workbench.owner,
        key=workbench.key,
        store_root=workbench.store.root,
        quota_bytes=workbench.store.quota_bytes,
        folder=workbench.folder(),
        show_cli_runs=workbench.show_cli_runs,
        data=_data_file(workbench.data),
        max_length=workbench.max_length,
        shared_tokens=list(workbench.shared_tokens),
        ablation_rows=list(workbench.ablation_rows),
        sweep_points=list(workbench.sweep_points),
    )


def stop_across_processes(workbench: Workbench) -> None:
    """Make the workbench's Stop a file in its folder, which a worker acting for it polls (``rebuild`` does too)."""
    if not isinstance(workbench.stop_event, StopFlag):
        workbench.stop_event = StopFlag(workbench.folder() / STOP_FILE)


@dataclass
class _ProcessCaches:
    """What a worker keeps between calls: its models, stores and data files read, for this process only."""

    pid: int
    registry: ModelRegistry
    stores: dict = field(default_factory=dict)
    data: OrderedDict = field(default_factory=OrderedDict)


_CACHES: list[_ProcessCaches] = []
_FORKED: list[bool] = []  # set in a forked child


def _caches() -> _ProcessCaches:
    """This process's caches; a forked child starts its own from the models its parent had loaded.

    A forked child computes on one CPU thread: OpenMP's thread pool, once used by the parent, is not in the child,
    whose first parallel CPU operation would wait for it forever (its heavy work is on the GPU anyway).
    """
    if not _CACHES or _CACHES[0].pid != os.getpid():
        if _FORKED:
            torch.set_num_threads(1)
        _CACHES[:] = [_ProcessCaches(os.getpid(), SHARED_MODELS.in_this_process())]
    return _CACHES[0]


os.register_at_fork(after_in_child=lambda: _FORKED.append(True))


def _store(caches: _ProcessCaches, root: Path, quota_bytes: int | None) -> RunStore:
    if (root, quota_bytes) not in caches.stores:
        caches.stores[root, quota_bytes] = RunStore(root, quota_bytes)
    return caches.stores[root, quota_bytes]


def _data(caches: _ProcessCaches, file: DataFile, key: ModelKey) -> DataState:
    """The data file read for the model of ``key`` (tokenised per max length on demand), cached while unchanged."""
    if (file, key) not in caches.data:
        config = DataConfig(
            task=key.task, max_length=LENGTH_PROBE, validation_fraction=file.validation_fraction, max_rows=file.max_rows
        )
        probe = prepare_data(file.path, caches.registry.get(key).tokenizer, config)
        caches.data[file, key] = DataState(file.path, file.name, file.validation_fraction, file.max_rows, probe)
        while len(caches.data) > DATA_KEPT:
            caches.data.popitem(last=False)
    caches.data.move_to_end((file, key))
    return caches.data[file, key]


def rebuild(sent: WorkbenchTicket) -> Workbench:
    """A workbench acting for ``sent`` in this process: its base model from this process's registry (loaded here
    when missing), its folder and stop flag the owner's. It is never closed: the folder is the owner's."""
    caches = _caches()
    workbench = Workbench(caches.registry, _store(caches, sent.store_root, sent.quota_bytes), sent.owner)
    workbench.show_cli_runs, workbench.key, workbench.max_length = sent.show_cli_runs, sent.key, sent.max_length
    workbench.shared_tokens = list(sent.shared_tokens)
    workbench.ablation_rows, workbench.sweep_points = list(sent.ablation_rows), list(sent.sweep_points)
    workbench._folder = sent.folder  # the owner's scratch folder: files made here are served from there
    workbench.stop_event = StopFlag(sent.folder / STOP_FILE)
    workbench.data = _data(caches, sent.data, sent.key) if sent.data is not None else None
    return workbench


def adopt(workbench: Workbench, sent: WorkbenchTicket, done: WorkbenchTicket) -> None:
    """Take into ``workbench`` what a job changed in the worker's copy (``sent`` → ``done``): results, a model or
    data it loaded. What the job left alone stays as it is here now (another job of the page may have changed it)."""
    for name in ("ablation_rows", "sweep_points", "max_length", "key"):
        if getattr(done, name) != getattr(sent, name):
            setattr(workbench, name, getattr(done, name))
    if done.shared_tokens != sent.shared_tokens:
        workbench.shared_tokens[:] = done.shared_tokens  # the session holds the same list
    if done.data != sent.data:
        workbench.data = None
        if done.data is not None:
            data = done.data
            workbench.load_data(data.path, data.validation_fraction, data.max_rows, name=data.name)
