"""Shared read-only base models (loaded once, thread-safe) and what a model looks like at a glance."""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from red_explorer.core.registry import MethodSpec, apply_method
from red_explorer.core.sites import find_scheme
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


REGISTRY = ModelRegistry()


@dataclass
class ModelInfo:
    """A base model at a glance: its shape, where RED edits it, and what each method would train."""

    spec: str
    task: str
    architecture: str
    model_type: str
    family: str
    num_layers: int
    hidden_size: int
    intermediate_size: int | None
    vocab_size: int | None
    total_parameters: int
    ffn_module: str
    attn_module: str
    device: str
    dtype: str
    parameter_counts: dict[str, int]
    notes: list[str] = field(default_factory=list)


def _site_width(model: nn.Module, sites: list[str]) -> int:
    """Σ over the edited modules of their output width: the length of all RED vectors of one kind."""
    from red_explorer.core.red.config import RedConfig
    from red_explorer.core.sites import find_sites, output_size

    return sum(output_size(model.get_submodule(site.name)) for site in find_sites(model, RedConfig(sites=sites)))


def _lora_count(model: nn.Module, task: str, rank: int = 8) -> int:
    """LoRA's trainable parameters, counted by PEFT itself on a weightless (meta-device) copy."""
    with torch.device("meta"):
        skeleton = type(model)._from_config(copy.deepcopy(model.config))
    trained = apply_method(skeleton, MethodSpec("lora", rank=rank), task)
    return sum(p.numel() for name, p in trained.named_parameters() if p.requires_grad and "lora_" in name)


def method_parameter_counts(model: nn.Module, task: str) -> dict[str, int]:
    """Trainable parameters of each method on this architecture (a classification head excluded)."""
    ffn, attn = _site_width(model, ["ffn"]), _site_width(model, ["attn"])
    editors = MethodSpec("tare").num_editors
    return {
        "RED (FFN)": 2 * ffn,
        "RED (FFN + attention)": 2 * (ffn + attn),
        f"TARE (E={editors}, k=2)": 3 * editors * ffn,
        "LoRA (r=8)": _lora_count(model, task),
        "Full fine-tuning": sum(parameter.numel() for parameter in model.parameters()),
    }


def _config_value(config, *names: str) -> int | None:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return None


def model_info(loaded: LoadedModel) -> ModelInfo:
    """Describe a loaded base model (layers, widths, edit sites, parameter counts per method)."""
    model, config = loaded.model, loaded.model.config
    from red_explorer.core.red.config import RedConfig
    from red_explorer.core.sites import find_sites

    sites = {kind: find_sites(model, RedConfig(sites=[kind])) for kind in ("ffn", "attn")}
    return ModelInfo(
        spec=loaded.name,
        task=loaded.task,
        architecture=type(model).__name__,
        model_type=config.model_type,
        family=find_scheme(model).family,
        num_layers=len(sites["ffn"]),
        hidden_size=_config_value(config, "hidden_size", "n_embd", "d_model") or 0,
        intermediate_size=_config_value(config, "intermediate_size", "n_inner", "ffn_dim", "d_ff"),
        vocab_size=_config_value(config, "vocab_size"),
        total_parameters=sum(parameter.numel() for parameter in model.parameters()),
        ffn_module=sites["ffn"][0].name,
        attn_module=sites["attn"][0].name,
        device=str(loaded.device),
        dtype=str(loaded.dtype).removeprefix("torch."),
        parameter_counts=method_parameter_counts(model, loaded.task),
    )
