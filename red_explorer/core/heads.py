"""A base model's classification head kept aside while a method sits on it, and put back exactly afterwards."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from red_explorer.core.adapters import head_modules, read_adapter_config
from red_explorer.core.checkpoint import CONFIG_FILE, read_record

HEAD_ATTRIBUTE = "_base_head"  # the kept head of the base under an attached run (see ``remember_head``)
PEFT_CLASSIFIER_MODULES = ("classifier", "score")  # PEFT adds these to modules_to_save for SEQ_CLS adapters


@dataclass
class HeadBackup:
    """The base's own head modules by name, and a copy of each of their weights with its ``requires_grad``."""

    modules: dict[str, nn.Module]
    weights: dict[str, tuple[torch.Tensor, bool]]


def keep_head(model: nn.Module, module_names) -> HeadBackup:
    """The named head modules of ``model`` and a copy of their weights, to give back with ``restore_head``."""
    modules = {name: model.get_submodule(name) for name in module_names}
    weights = {
        name: (parameter.detach().clone(), parameter.requires_grad)
        for prefix, module in modules.items()
        for name, parameter in module.named_parameters(prefix=prefix)
    }
    return HeadBackup(modules, weights)


def restore_head(model: nn.Module, backup: HeadBackup) -> None:
    """Put the kept head back: its own modules where a method swapped or wrapped them, then their weights.

    RED, TARE, BitFit and LoReFT copy a run's head into the base's parameters; PEFT's ``unload`` puts its
    trained copy of the head in the base (LN tuning even leaves its wrapper there).
    """
    for name, module in backup.modules.items():
        if model.get_submodule(name) is not module:
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, module)
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for name, (weights, trainable) in backup.weights.items():
            parameters[name].copy_(weights)
            parameters[name].requires_grad_(trainable)
            parameters[name].grad = None


def saved_head_modules(model: nn.Module, directory: str | Path) -> list[str]:
    """The modules of ``model`` that loading the run saved in ``directory`` replaces with the run's trained head."""
    directory = Path(directory)
    if (directory / CONFIG_FILE).is_file():
        return head_modules(read_record(directory).get("head_parameters", [])) or []
    adapter = read_adapter_config(directory) or {}
    keys = list(adapter.get("modules_to_save") or [])
    if adapter.get("task_type") == "SEQ_CLS":
        keys += PEFT_CLASSIFIER_MODULES
    return [
        name
        for name, _ in model.named_modules()
        if name and any(name == key or name.endswith(f".{key}") for key in keys)
    ]


def remember_head(trained: nn.Module, backup: HeadBackup) -> None:
    """Keep the base's head on the model a run is attached as (strengths interpolate from it)."""
    setattr(trained, HEAD_ATTRIBUTE, backup)


def remembered_head(trained: nn.Module) -> HeadBackup | None:
    """The base's head kept on an attached run's model by ``remember_head``, or None."""
    return trained.__dict__.get(HEAD_ATTRIBUTE)


def forget_head(trained: nn.Module) -> HeadBackup | None:
    """Take the kept head off an attached run's model; returns it (None when there was none)."""
    return trained.__dict__.pop(HEAD_ATTRIBUTE, None)
