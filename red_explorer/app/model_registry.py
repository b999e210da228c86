"""Shared read-only base models, keyed by what makes them differ, each loaded once (thread-safe)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from red_explorer.models.loading import DTYPES, LoadedModel, load_model, resolve_device, resolve_dtype


@dataclass(frozen=True)
class ModelKey:
    """Everything that makes two loaded base models different."""

    spec: str = "default"
    task: str = "causal-lm"
    num_labels: int | None = None
    device: str = "auto"
    dtype: str = "auto"

    def resolved(self) -> ModelKey:
        """The same key with "auto" device and dtype replaced by what they mean on this machine."""
        device = resolve_device(self.device)
        dtype = resolve_dtype(self.dtype, device)
        dtype_name = next(name for name, value in DTYPES.items() if value == dtype)
        return replace(self, spec=self.spec.strip() or "default", device=str(device), dtype=dtype_name)


@dataclass
class _Entry:
    done: threading.Event = field(default_factory=threading.Event)
    model: LoadedModel | None = None
    error: BaseException | None = None


class ModelRegistry:
    """Base models shared by every session, keyed by ModelKey; each is loaded once, however many ask.

    The models are frozen and must never be modified: training deep-copies them
    (``train_method(copy_base=True)``). The least recently used model is dropped past ``capacity``.
    """

    def __init__(self, capacity: int = 2, loader: Callable[..., LoadedModel] = load_model):
        self.capacity = capacity
        self._loader = loader
        self._lock = threading.Lock()
        self._entries: OrderedDict[ModelKey, _Entry] = OrderedDict()

    def get(self, key: ModelKey) -> LoadedModel:
        """The loaded model for ``key``, loading it now (or waiting for a load in progress)."""
        key = key.resolved()
        with self._lock:
            entry = self._entries.get(key)
            owner = entry is None or entry.error is not None
            if owner:
                entry = self._entries[key] = _Entry()
            self._entries.move_to_end(key)
        if owner:
            self._load(key, entry)
        entry.done.wait()
        if entry.error is not None:
            raise entry.error
        return entry.model

    def _load(self, key: ModelKey, entry: _Entry) -> None:
        try:
            entry.model = self._loader(key.spec, key.task, key.num_labels, key.device, key.dtype)
        except BaseException as error:  # kept for every waiter, re-raised by get()
            entry.error = error
        finally:
            entry.done.set()
        with self._lock:
            finished = [k for k, e in self._entries.items() if e.done.is_set() and k != key]
            while len(self._entries) > self.capacity and finished:
                self._entries.pop(finished.pop(0))

    def preload(self, key: ModelKey) -> threading.Thread:
        """Start loading ``key`` in a background thread (errors show in ``status``)."""

        def load() -> None:
            try:
                self.get(key)
            except Exception:  # noqa: BLE001 - reported through status()
                pass

        thread = threading.Thread(target=load, name=f"preload-{key.spec}", daemon=True)
        thread.start()
        return thread

    def status(self, key: ModelKey) -> str:
        """'not loaded', 'loading', 'ready' or 'failed: <reason>'."""
        try:
            key = key.resolved()
        except ValueError as error:
            return f"failed: {error}"
        with self._lock:
            entry = self._entries.get(key)
        if entry is None:
            return "not loaded"
        if not entry.done.is_set():
            return "loading"
        return "ready" if entry.error is None else f"failed: {entry.error}"

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


SHARED_MODELS = ModelRegistry()
