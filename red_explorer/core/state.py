"""What every hook-based edit (RED, TARE) keeps on a model: sites, hooks, an on/off switch; attach and detach."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import nn

from red_explorer.core.sites import Site

STATE_ATTRIBUTE = "_edit_state"  # one hook-based edit per model at a time
TITLES = {"red": "RED", "tare": "TARE"}


@dataclass
class EditState:
    """The edit a model carries (``model._edit_state``): which method, its config, sites and hooks."""

    method: str
    config: object
    sites: list[Site]
    handles: list = field(default_factory=list)
    enabled: bool = True


def attached_state(model: nn.Module) -> EditState | None:
    """The hook-based edit the model carries, or None."""
    return getattr(model, STATE_ATTRIBUTE, None)


def require_state(model: nn.Module, method: str) -> EditState:
    """The model's ``method`` edit state, or a ValueError that says how to attach one."""
    state = attached_state(model)
    if state is None or state.method != method:
        title = TITLES.get(method, method)
        raise ValueError(
            f"this model carries no {title} edits: call attach_{method}(model, {title.capitalize()}Config()) first"
        )
    return state


def check_free(model: nn.Module, method: str) -> None:
    """Refuse to attach ``method`` over an edit that is already there."""
    state = attached_state(model)
    if state is not None:
        present = TITLES.get(state.method, state.method)
        raise ValueError(
            f"this model already carries {present} edits: remove them first "
            f"(detach_{state.method}(model), or get_method({state.method!r}).detach(model)) "
            f"before attaching {TITLES.get(method, method)}"
        )


def execution_device(module: nn.Module) -> torch.device:
    """The module's device; refuses weights that accelerate offloads (its hook would not know the edit)."""
    if module.weight.device.type == "meta":
        raise ValueError(
            "this module's weights are offloaded by accelerate (on 'meta' until used); edits cannot attach there. "
            "Load the model with a device_map that keeps every layer on a device (no 'cpu'/'disk' offload)."
        )
    return module.weight.device


def freeze(model: nn.Module) -> None:
    for parameter in model.parameters():
        parameter.requires_grad_(False)


def install(model: nn.Module, state: EditState, hook: Callable) -> None:
    """Register ``hook(state, site_name, module, inputs, output)`` on every site and keep the state on the model."""
    for site in state.sites:
        module = model.get_submodule(site.name)
        state.handles.append(module.register_forward_hook(partial(hook, state, site.name)))
    setattr(model, STATE_ATTRIBUTE, state)


def remove(model: nn.Module, state: EditState, tensor_names: tuple[str, ...]) -> None:
    """Remove the hooks and the named tensors of every site: the model is exactly the base again."""
    for handle in state.handles:
        handle.remove()
    for site in state.sites:
        module = model.get_submodule(site.name)
        for name in tensor_names:
            module._parameters.pop(name, None)
    delattr(model, STATE_ATTRIBUTE)


@contextmanager
def switched_off(state: EditState) -> Iterator[None]:
    """Inside this block the hooks pass outputs through unchanged."""
    previous, state.enabled = state.enabled, False
    try:
        yield
    finally:
        state.enabled = previous


def site_tensors(model: nn.Module, state: EditState, tensor_names: tuple[str, ...]) -> dict[str, nn.Parameter]:
    """The edit's tensors by state_dict name (``<module>.<tensor name>``), in site order."""
    tensors = {}
    for site in state.sites:
        module = model.get_submodule(site.name)
        for name in tensor_names:
            if module._parameters.get(name) is not None:
                tensors[f"{site.name}.{name}"] = module._parameters[name]
    return tensors
