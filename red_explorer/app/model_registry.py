"""Shared read-only base models, keyed by what makes them differ, each loaded once (thread-safe)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from red_explorer.app.training_replica import TrainingReplicas
from red_explorer.models.loading import DTYPES, LoadedModel, load_model, resolve_device, resolve_dtype
from red_explorer.models.quantization import check_quantize


@dataclass(frozen=True)
class ModelKey:
    """Everything that makes two loaded base models different."""

    spec: str = "default"
    task: str = "causal-lm"
    num_labels: int | None = None
    device: str = "auto"
    dtype: str = "auto"
    quantize: str | None = None  # None, "8bit" or "4bit" (``load_model``'s quantize)

    def resolved(self) -> ModelKey:
        """The same key with "auto" device and dtype replaced by what they mean on this machine."""
        device = resolve_device(self.device)
        dtype = resolve_dtype(self.dtype, device)
        dtype_name = next(name for name, value in DTYPES.items() if value == dtype)
        spec, quantize = self.spec.strip() or "default", check_quantize(self.quantize)
        return replace(self, spec=spec, device=str(device), dtype=dtype_name, quantize=quantize)


@dataclass
class _Entry:
    done: threading.Event = field(default_factory=threading.Event)
    model: LoadedModel | None = None
    error: BaseException | None = None


class ModelRegistry:
    """Base models shared by every session, keyed by ModelKey; each is loaded once, however many ask.

    The models are frozen: training works on one reused replica per base (``replicas``), and a kept
    run is applied to a shared base (hooks or adapters attached for milliseconds) only while holding ``base_lock(key)``.
    Past ``capacity`` loaded models, the least recently used one is dropped, but only to make room
    for a model that did load: a failed load holds no slot, evicts nothing, and is remembered apart
    (for ``status``) until a later attempt succeeds.
    """

    def __init__(self, capacity: int = 2, loader: Callable[..., LoadedModel] = load_model, failures_kept: int = 16):
        self.capacity = capacity
        self._loader = loader
        self._lock = threading.Lock()
        self._entries: OrderedDict[ModelKey, _Entry] = OrderedDict()  # loading or loaded, least recent first
        self._failures: OrderedDict[ModelKey, BaseException] = OrderedDict()
        self._failures_kept = failures_kept
        self._base_locks: dict[ModelKey, threading.RLock] = {}
        self.replicas = TrainingReplicas()  # one training copy per base, lent to one job at a time

    def base_lock(self, key: ModelKey) -> threading.RLock:
        """The lock to hold while attaching anything to (or copying) the shared base model of ``key``."""
        key = key.resolved()
        with self._lock:
            return self._base_locks.setdefault(key, threading.RLock())

    def get(self, key: ModelKey) -> LoadedModel:
        """The loaded model for ``key``, loading it now (or waiting for a load in progress)."""
        key = key.resolved()
        with self._lock:
            entry = self._entries.get(key)
            owner = entry is None
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
            quantized = {"quantize": key.quantize} if key.quantize else {}
            entry.model = self._loader(key.spec, key.task, key.num_labels, key.device, key.dtype, **quantized)
        except BaseException as error:  # kept for every waiter, re-raised by get()
            entry.error = error
        with self._lock:
            if entry.error is None:
                self._failures.pop(key, None)
                self._evict(keep=key)
            else:  # a failure takes no slot: the next get() tries again
                self._entries.pop(key, None)
                self._failures[key] = entry.error
                self._failures.move_to_end(key)
                while len(self._failures) > self._failures_kept:
                    self._failures.popitem(last=False)
        entry.done.set()

    def _evict(self, keep: ModelKey) -> None:
        """Drop the least recently used loaded models (never ``keep``, never a load in progress) past capacity."""
        loaded = [k for k, e in self._entries.items() if e.done.is_set() or k == keep]
        while len(loaded) > self.capacity:
            victim = next(k for k in loaded if k != keep)
            loaded.remove(victim)
            self._entries.pop(victim)
            self.replicas.drop(victim)

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
            entry, failure = self._entries.get(key), self._failures.get(key)
        if entry is not None:
            return "ready" if entry.done.is_set() else "loading"
        return "not loaded" if failure is None else f"failed: {failure}"

    def loaded_keys(self) -> list[ModelKey]:
        """The keys of the models loaded now, least recently used first."""
        with self._lock:
            return [key for key, entry in self._entries.items() if entry.done.is_set()]

    def in_this_process(self) -> ModelRegistry:
        """A registry for a forked process (a GPU worker): the models loaded here, under locks of its own.

        A lock that another thread held at the fork would never be released in the child, so none is taken or
        kept; models the child needs later load there.
        """
        registry = ModelRegistry(self.capacity, self._loader, self._failures_kept)
        for key, entry in list(self._entries.items()):
            if entry.done.is_set() and entry.model is not None:
                registry._entries[key] = _Entry(model=entry.model)
                registry._entries[key].done.set()
        return registry

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._failures.clear()


SHARED_MODELS = ModelRegistry()
