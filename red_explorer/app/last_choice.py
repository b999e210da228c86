"""What an owner last loaded (base model and data file), kept in their folder of the run store: a reload restores it."""

from __future__ import annotations

import json
import os
import secrets
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from filelock import FileLock

from red_explorer.app.model_registry import ModelKey
from red_explorer.data.bundled import SAMPLE_FOLDER
from red_explorer.runs.disk_room import free_bytes, reserve_bytes
from red_explorer.runs.store import RunStore, check_owner

CHOICE_FILE = "last-choice.json"  # beside the owner's run folders (the store lists only run-id folders)
CHOICE_LOCK = ".last-choice.lock"
DATA_FOLDER = "last-data"  # a copy of the owner's last uploaded file (uploads are temporary files)
MAX_DATA_BYTES = 50_000_000  # a larger upload is not kept: after a reload it has to be uploaded again
DEFAULT_MAX_LENGTH = 128  # tokens: the Data tab's max length until the owner sets another


@dataclass
class LastChoice:
    """The model (as the Model tab takes it), the data file and the max length an owner last chose."""

    spec: str = "default"
    task: str = "causal-lm"
    device: str = "auto"
    dtype: str = "auto"
    quantize: str | None = None
    data_path: str | None = None  # a bundled sample, or the kept copy of an upload
    data_name: str | None = None
    validation_fraction: float = 0.1
    max_rows: int | None = None
    max_length: int = DEFAULT_MAX_LENGTH

    def key(self) -> ModelKey:
        return ModelKey(self.spec, self.task, None, self.device, self.dtype, self.quantize)


def _folder(store: RunStore, owner: str) -> Path:
    folder = store.root / check_owner(owner)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def _kept_data(folder: Path, path: Path, name: str) -> Path | None:
    """The data file as it can be read again later: a bundled sample as it is, an upload copied (when small)."""
    if path.parent == SAMPLE_FOLDER:
        return path
    if not path.is_file() or path.stat().st_size > MAX_DATA_BYTES:
        return None
    if free_bytes(folder) - path.stat().st_size < reserve_bytes():  # a near-full disk keeps runs, not a copy
        return None
    target = folder / DATA_FOLDER / Path(name).name
    if path.resolve() != target.resolve():
        shutil.rmtree(target.parent, ignore_errors=True)
        target.parent.mkdir(mode=0o700)
        shutil.copyfile(path, target)
        target.chmod(0o600)
    return target


def remember(store: RunStore, owner: str, key: ModelKey, data=None, max_length: int = DEFAULT_MAX_LENGTH) -> LastChoice:
    """Keep ``key``, ``data`` (a DataState or None) and ``max_length`` as the owner's last choice; written whole,
    owner-only."""
    folder = _folder(store, owner)
    choice = LastChoice(key.spec, key.task, key.device, key.dtype, key.quantize, max_length=int(max_length))
    with FileLock(str(folder / CHOICE_LOCK), mode=0o600, thread_local=False):  # two tabs of one browser, or two apps
        return _write(folder, choice, data)


def _write(folder: Path, choice: LastChoice, data) -> LastChoice:
    if data is not None:
        kept = _kept_data(folder, Path(data.path), data.name)
        if kept is not None:
            choice.data_path, choice.data_name = str(kept), data.name
            choice.validation_fraction, choice.max_rows = data.validation_fraction, data.max_rows
    temporary = folder / f".{CHOICE_FILE}.{secrets.token_hex(4)}"
    temporary.write_text(json.dumps(asdict(choice), indent=2) + "\n")
    temporary.chmod(0o600)
    os.replace(temporary, folder / CHOICE_FILE)  # readers see the old file or the new one, never half of one
    return choice


def recall(store: RunStore, owner: str) -> LastChoice | None:
    """The owner's last choice, or None when there is none (or it cannot be read: then nothing is restored)."""
    path = store.root / check_owner(owner) / CHOICE_FILE
    try:
        choice = LastChoice(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if choice.data_path and not Path(choice.data_path).is_file():
        choice.data_path = choice.data_name = None
    return choice
