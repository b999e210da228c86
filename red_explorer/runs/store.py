"""The run store: every user's runs as small folders on disk, written atomically, listed, renamed, exported."""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock
from torch import nn

from red_explorer.core.archive import ALLOWED_FILES
from red_explorer.core.registry import MethodSpec, save_method
from red_explorer.runs.attach import attach_saved
from red_explorer.runs.disk_room import check_disk_room
from red_explorer.runs.home import default_home
from red_explorer.runs.labels import LabelFacts, label_for_new_run, unique_label
from red_explorer.runs.leftovers import DELETING, INCOMING, remove_leftovers, writer_lock
from red_explorer.runs.record import BaseModelKey, RunRecord
from red_explorer.runs.size import human_bytes

if TYPE_CHECKING:
    from red_explorer.engine.experiment import RunResult
    from red_explorer.engine.step_timing import StepTiming
    from red_explorer.models.loading import LoadedModel

RUN_FILE = "run.json"
METRICS_FILE = "metrics.json"
LOCK_FILE = ".lock"  # in the root: one writer at a time (labels, quota, rename), across processes
OWNER_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
RUN_ID_PATTERN = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")
MAX_LABEL = 120
_ROOT_LOCKS: dict[Path, threading.RLock] = {}
_ROOT_LOCKS_GUARD = threading.Lock()
log = logging.getLogger(__name__)


class QuotaError(ValueError):
    """Saving a run would take an owner past the store's quota; nothing was deleted."""


class RunNotFoundError(ValueError):
    """No complete run of that id (or label) for that owner."""


def check_owner(owner: str) -> str:
    """``owner`` if it is a safe folder name (letters, digits, '_', '.', '-'; 1-64, starting alphanumeric)."""
    if not isinstance(owner, str) or not OWNER_PATTERN.fullmatch(owner):
        raise ValueError(
            f"owner key {owner!r} is not allowed: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit (e.g. a user name or a session hash)"
        )
    return owner


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _write_json(path: Path, value: dict) -> None:
    """Write ``path`` through a temporary file and a rename: readers see the old or the new file, whole."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    temporary.write_text(json.dumps(value, indent=2, default=str) + "\n")
    os.replace(temporary, path)


def _new_thread_locks() -> None:
    """In a forked child (a GPU worker): fresh thread locks, as one held by another thread at the fork never frees."""
    global _ROOT_LOCKS_GUARD
    _ROOT_LOCKS_GUARD = threading.Lock()
    _ROOT_LOCKS.clear()


os.register_at_fork(after_in_child=_new_thread_locks)


def _root_lock(root: Path) -> threading.RLock:
    with _ROOT_LOCKS_GUARD:
        return _ROOT_LOCKS.setdefault(root, threading.RLock())


class RunStore:
    """Runs on disk: ``<root>/<owner>/<run id>/`` holds the method's files, metrics.json and run.json.

    A run is the method's own small files (RED/TARE edits, a PEFT adapter; a whole checkpoint only
    for full fine-tuning), never a model in memory: ``attach`` puts it back on a base when needed.
    Runs are built in ``.incoming-<id>/`` and renamed into place, so a crash never leaves a run that
    half-loads; listing sees only complete runs. Nothing is deleted unless ``delete`` is called: a
    save past ``quota_bytes`` (per owner) raises ``QuotaError``. A file lock on ``<root>/.lock``
    (with a thread lock per root) makes label choice, the quota check and the rename one step for
    every thread and process on the root. Opening a store removes what crashes left behind: folders
    of interrupted deletes, and incoming folders whose writer no longer holds their lock.
    """

    def __init__(self, root: str | Path | None = None, quota_bytes: int | None = None):
        if quota_bytes is not None and quota_bytes <= 0:
            raise ValueError(f"quota_bytes must be positive (or None for no quota), got {quota_bytes}")
        self.root = Path(root).expanduser() if root is not None else default_home() / "runs"
        self.quota_bytes = quota_bytes
        self._lock = _root_lock(self.root.resolve())
        self._file_lock = FileLock(str(self.root / LOCK_FILE), mode=0o600, thread_local=False)
        if self.root.is_dir():
            remove_leftovers(self.root)  # an owner's folder whose removal was interrupted (runs/owners.py)
            for owner_folder in self.root.iterdir():
                if owner_folder.is_dir() and OWNER_PATTERN.fullmatch(owner_folder.name):
                    remove_leftovers(owner_folder)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the store: no other thread or process on this root labels, checks the quota or renames meanwhile."""
        with self._lock:
            self.root.mkdir(parents=True, exist_ok=True)
            with self._file_lock:
                yield

    # ------------------------------------------------------------ writing

    def save(
        self,
        owner: str,
        result: RunResult,
        loaded: LoadedModel,
        data_fingerprint: dict | None,
        group: str | None = None,
        label: str | None = None,
        timing: StepTiming | None = None,
    ) -> RunRecord:
        """Keep a trained run: the method's files (``save_method``), metrics.json and run.json.

        ``label`` defaults to an automatic one that tells it apart from the owner's other runs; ``timing`` (how
        long the run took to set up and per step) is kept with it.
        """

        def write(folder: Path) -> None:
            save_method(result.model, result.spec, folder, loaded.base_name, loaded.head_parameter_names)

        record = RunRecord(
            id="",
            label=label or "",
            owner=owner,
            created="",
            group=group,
            base=BaseModelKey.of(loaded),
            spec=result.spec.to_dict(),
            train_config=result.train_config.to_dict(),
            data=data_fingerprint,
            loss_history=list(result.train_loss),
            eval_history=list(result.eval_history),
            method_bytes=0,
            files=[],
            metrics_before=dict(result.metrics_before),
            metrics_after=dict(result.metrics_after),
            trainable_parameters=result.trainable_parameters,
            train_seconds=result.train_seconds,
            stopped_reason=result.stopped_reason,
            setup_seconds=timing.setup if timing else None,
            seconds_per_step=timing.per_step if timing else None,
        )
        return self._commit(record, write, result.metrics())

    def import_edits(
        self, owner: str, folder: str | Path, spec: MethodSpec, loaded: LoadedModel, label: str | None = None
    ) -> RunRecord:
        """Keep an edits folder that was validated elsewhere (e.g. an uploaded zip, ``load_method``-checked)."""
        source = Path(folder)
        metrics_path = source / METRICS_FILE
        metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}

        def write(target: Path) -> None:
            for path in sorted(source.iterdir()):
                if path.is_file() and path.name not in (METRICS_FILE, RUN_FILE):
                    shutil.copy2(path, target / path.name)

        record = RunRecord(
            id="",
            label=label or f"{spec.label} (imported)",
            owner=owner,
            created="",
            group=None,
            base=BaseModelKey.of(loaded),
            spec=spec.to_dict(),
            train_config=dict(metrics.get("train_config") or {}),
            data=None,
            loss_history=list(metrics.get("train_loss") or []),
            eval_history=list(metrics.get("eval_history") or []),
            method_bytes=0,
            files=[],
            stopped_reason="imported",
        )
        return self._commit(record, write, metrics or None)

    def _commit(self, record: RunRecord, write, metrics: dict | None) -> RunRecord:
        """Build the run in an incoming folder, check the quota, label it, and rename it into place."""
        owner_folder = self._owner_folder(record.owner)
        owner_folder.mkdir(parents=True, exist_ok=True)
        remove_leftovers(owner_folder)  # e.g. a CLI process that crashed while this app kept running
        now = datetime.now(UTC)
        record.id = f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        record.created = now.isoformat(timespec="microseconds")
        incoming = owner_folder / f"{INCOMING}{record.id}"
        writer = writer_lock(incoming)
        writer.acquire()  # before the folder exists: a cleaner never sees it unlocked while this process lives
        try:
            incoming.mkdir()
            write(incoming)
            record.files = sorted(path.name for path in incoming.iterdir() if path.is_file())
            record.method_bytes = folder_bytes(incoming)
            if metrics is not None:
                _write_json(incoming / METRICS_FILE, metrics)
            with self._locked():
                existing = self.list(record.owner)
                record.label = self._new_label(record, existing)
                _write_json(incoming / RUN_FILE, record.to_dict())
                written = folder_bytes(incoming)
                check_disk_room(self.root, written, written=written)
                self._check_quota(record.owner, existing, written)
                os.rename(incoming, owner_folder / record.id)
        except BaseException:
            shutil.rmtree(incoming, ignore_errors=True)
            raise
        finally:
            writer.release()
            Path(writer.lock_file).unlink(missing_ok=True)
        record.path = owner_folder / record.id
        return record

    def _new_label(self, record: RunRecord, existing: list[RunRecord]) -> str:
        taken = {run.label for run in existing}
        if record.label:
            return unique_label(_clean_label(record.label), taken)
        facts = [_facts(run) for run in existing]
        return label_for_new_run(_facts(record), facts, taken)

    def check_room(self, owner: str, needed_bytes: int, what: str = "this run") -> None:
        """Before training: a DiskFullError or QuotaError now when ``needed_bytes`` more (an estimate) would not fit
        the disk's free space (less a reserve) or the owner's quota."""
        check_disk_room(self.root, needed_bytes, f"training {what} would keep about", "train again")
        if self.quota_bytes is None:
            return
        with self._locked():
            existing = self.list(owner)
        self._check_quota(owner, existing, needed_bytes, f"training {what} would keep about", "train again")

    def _check_quota(
        self, owner: str, existing: list[RunRecord], needed: int, doing="saving this run needs", again="save again"
    ) -> None:
        if self.quota_bytes is None:
            return
        sizes = {run.id: folder_bytes(run.path) for run in existing}
        usage = sum(sizes.values())
        if usage + needed <= self.quota_bytes:
            return
        largest = sorted(existing, key=lambda run: -sizes[run.id])[:3]
        names = ", ".join(f"{run.id} '{run.label}' ({human_bytes(sizes[run.id])})" for run in largest)
        raise QuotaError(
            f"{doing} {human_bytes(needed)}, but {owner!r} already uses {human_bytes(usage)} "
            f"of its {human_bytes(self.quota_bytes)} quota in {len(existing)} runs; nothing was deleted. "
            f"Delete runs you no longer need (largest: {names or 'none'}) and {again}."
        )

    # ------------------------------------------------------------ reading

    def _owner_folder(self, owner: str) -> Path:
        return self.root / check_owner(owner)

    def list(self, owner: str) -> list[RunRecord]:
        """The owner's complete runs, oldest first (incoming, half-written or unreadable folders are skipped)."""
        folder = self._owner_folder(owner)
        if not folder.is_dir():
            return []
        runs = []
        for child in folder.iterdir():
            if child.is_dir() and RUN_ID_PATTERN.fullmatch(child.name):
                record = self._read(child)
                if record is not None:
                    runs.append(record)
        return sorted(runs, key=lambda run: (run.created, run.id))

    def _read(self, folder: Path) -> RunRecord | None:
        path = folder / RUN_FILE
        if not path.is_file():
            return None
        try:
            return RunRecord.from_dict(json.loads(path.read_text()), path=folder)
        except (ValueError, TypeError, OSError) as error:
            log.warning("skipping run folder %s: unreadable %s (%s)", folder, RUN_FILE, error)
            return None

    def get(self, owner: str, run_id: str) -> RunRecord:
        """The owner's run ``run_id``; a RunNotFoundError that says how to list runs otherwise."""
        folder = self._owner_folder(owner)
        record = self._read(folder / run_id) if RUN_ID_PATTERN.fullmatch(str(run_id)) else None
        if record is None:
            raise RunNotFoundError(f"no run {run_id!r} for owner {owner!r}: list them with `red-explorer runs list`")
        return record

    def find(self, owner: str, key: str) -> RunRecord:
        """A run by its id, its exact label, or a prefix of its id that only it has."""
        runs = self.list(owner)
        for matches in (
            [run for run in runs if run.id == key],
            [run for run in runs if run.label == key],
            [run for run in runs if key and run.id.startswith(key)],
        ):
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise RunNotFoundError(f"{key!r} names {len(matches)} runs of {owner!r}: give the full run id")
        raise RunNotFoundError(f"no run {key!r} for owner {owner!r}: list them with `red-explorer runs list`")

    def usage_bytes(self, owner: str) -> int:
        """Bytes on disk of the owner's complete runs."""
        return sum(folder_bytes(run.path) for run in self.list(owner))

    # ------------------------------------------------------------ changing

    def rename(self, owner: str, run_id: str, label: str) -> RunRecord:
        """Give a run a new label (unique among the owner's runs)."""
        label = _clean_label(label)
        with self._locked():
            record = self.get(owner, run_id)
            if any(run.label == label and run.id != run_id for run in self.list(owner)):
                raise ValueError(f"another run of {owner!r} is called {label!r}: choose another label")
            record.label = label
            _write_json(record.path / RUN_FILE, record.to_dict())
        return record

    def delete(self, owner: str, run_id: str) -> RunRecord:
        """Delete one run (what the user asked for, nothing else; its share links open nothing more); its record."""
        with self._locked():
            record = self.get(owner, run_id)
            doomed = record.path.with_name(f"{DELETING}{run_id}-{secrets.token_hex(3)}")
            os.rename(record.path, doomed)  # gone from listings at once, even if removal is interrupted
        shutil.rmtree(doomed, ignore_errors=True)
        return record

    # ------------------------------------------------------------ using

    def export_zip(self, owner: str, run_id: str, target_folder: str | Path) -> Path:
        """A zip of the run's method files and metrics.json, in the format the app's importer accepts."""
        record = self.get(owner, run_id)
        if record.method_spec.entry.saves_whole_model:
            raise ValueError(
                f"run {run_id} is a full fine-tuning checkpoint ({human_bytes(record.method_bytes)}), not edits: "
                f"use its folder {record.path} as a model"
            )
        names = [name for name in [*record.files, METRICS_FILE] if (record.path / name).is_file()]
        unexpected = [name for name in names if name not in ALLOWED_FILES]
        if unexpected:
            raise ValueError(f"run {run_id} holds files an edits zip cannot carry: {unexpected}")
        target = Path(target_folder)
        target.mkdir(parents=True, exist_ok=True)
        archive = target / f"{_slug(record.label)}-{record.id}.zip"
        temporary = archive.with_name(f".{archive.name}.{secrets.token_hex(4)}")
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
            for name in names:
                bundle.write(record.path / name, name)
        os.replace(temporary, archive)
        return archive

    def attach(self, owner: str, run_id: str, model: nn.Module) -> tuple[nn.Module, MethodSpec]:
        """The run put back on ``model`` (see ``attach_saved``: edits attach to it, a full run loads from disk)."""
        record = self.get(owner, run_id)
        return attach_saved(model, record.path, record.method_spec)


def _facts(record: RunRecord) -> LabelFacts:
    return LabelFacts(record.method_spec.label, record.spec, record.learning_rate, record.steps)


def _clean_label(label: str) -> str:
    label = " ".join(str(label).split())
    if not label or len(label) > MAX_LABEL:
        raise ValueError(f"a run label must hold 1 to {MAX_LABEL} characters, got {len(label)}")
    return label


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "run"
