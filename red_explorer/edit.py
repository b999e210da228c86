"""Attaching RED edits to a model: the forward hook, disabling and detaching."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import nn

from .config import RedConfig
from .sites import Site, find_sites, output_size

SCALE = "red_scale"
BIAS = "red_bias"
STATE_ATTRIBUTE = "_red_state"


@dataclass
class RowEdits:
    """Per-row edits for one batch: row i of the batch uses edit ``row_ids[i]`` of each bank."""

    row_ids: torch.Tensor  # (B,) long
    scales: dict[str, torch.Tensor]  # site name -> (N, H)
    biases: dict[str, torch.Tensor]  # site name -> (N, H)
    gathered: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict, repr=False)  # (B, H) each


@dataclass
class RedState:
    """What RED keeps on an edited model (``model._red_state``)."""

    config: RedConfig
    sites: list[Site]
    handles: list = field(default_factory=list)
    enabled: bool = True
    merged_backup: dict[str, tuple[torch.Tensor, torch.Tensor | None]] | None = None
    row_edits: RowEdits | None = None
    casts: dict[str, tuple[tuple, torch.Tensor]] = field(default_factory=dict, repr=False)  # inference casts


def get_state(model: nn.Module) -> RedState:
    state = getattr(model, STATE_ATTRIBUTE, None)
    if state is None:
        raise ValueError("this model carries no RED edits: call attach_red(model, RedConfig()) first")
    return state


def has_red(model: nn.Module) -> bool:
    return getattr(model, STATE_ATTRIBUTE, None) is not None


def _edit_output(state: RedState, site_name: str, module: nn.Module, inputs, output: torch.Tensor):
    """RED(h) = scale ⊙ h + bias on the module output h: (..., H)."""
    if not state.enabled or state.merged_backup is not None:
        return None
    if state.row_edits is not None:
        return _edit_rows(state.row_edits, site_name, output)
    scale = module._parameters.get(SCALE)
    bias = module._parameters.get(BIAS)
    if scale is not None:
        scale = _as_dtype(state, f"{site_name}.{SCALE}", scale, output.dtype)
    if bias is not None:
        bias = _as_dtype(state, f"{site_name}.{BIAS}", bias, output.dtype)
    if scale is not None and bias is not None:
        return torch.addcmul(bias, output, scale)
    if scale is not None:
        return output * scale
    return output + bias


def _as_dtype(state: RedState, key: str, vector: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``vector`` in the output's dtype. Where no gradient is needed (generation, evaluation), the cast
    is made once and reused until the vector changes in place (its version counter moves)."""
    if vector.dtype == dtype:
        return vector
    if torch.is_grad_enabled() and vector.requires_grad:
        return vector.to(dtype)
    stamp = (vector._version, vector.data_ptr(), dtype)
    cached = state.casts.get(key)
    if cached is None or cached[0] != stamp:
        cached = (stamp, vector.detach().to(dtype))
        state.casts[key] = cached
    return cached[1]


def _edit_rows(row_edits: RowEdits, site_name: str, output: torch.Tensor) -> torch.Tensor:
    """Row b of output (B, T, H) gets the edit row_ids[b] of the banks."""
    if output.shape[0] != row_edits.row_ids.shape[0]:
        raise ValueError(
            f"per-row edits name {row_edits.row_ids.shape[0]} rows but the batch has {output.shape[0]} "
            "(beam search and num_return_sequences > 1 change the batch size: give one row id per sequence)"
        )
    gathered = row_edits.gathered.get(site_name)
    if gathered is None or gathered[0].dtype != output.dtype:  # gather once per per_row_edits block
        rows = row_edits.row_ids
        scale = row_edits.scales[site_name].index_select(0, rows).to(output.dtype)  # (B, H)
        bias = row_edits.biases[site_name].index_select(0, rows).to(output.dtype)  # (B, H)
        gathered = row_edits.gathered[site_name] = (scale, bias)
    shape = (output.shape[0],) + (1,) * (output.dim() - 2) + (output.shape[-1],)
    return torch.addcmul(gathered[1].view(shape), output, gathered[0].view(shape))


def attach_red(model: nn.Module, config: RedConfig | None = None) -> list[Site]:
    """Add RED vectors to every site of ``config`` (mutates ``model``) and freeze the base.

    The vectors start as the identity edit (scale = 1, bias = 0) and are registered on the edited
    module itself as ``red_scale`` / ``red_bias``, so their state_dict names are
    ``<module name>.red_scale``. Returns the edited sites.
    """
    if has_red(model):
        raise ValueError("this model already carries RED edits: call detach_red(model) first")
    if getattr(model, "_tare_state", None) is not None:
        raise ValueError("this model carries TARE edits: call detach_tare(model) before attaching RED")
    config = config or RedConfig()
    sites = find_sites(model, config)
    devices = {site.name: _execution_device(model.get_submodule(site.name)) for site in sites}
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    state = RedState(config=config, sites=sites)
    dtype = getattr(torch, config.vector_dtype)
    for site in sites:
        module = model.get_submodule(site.name)
        size, device = output_size(module), devices[site.name]
        if config.use_scale:
            module.register_parameter(SCALE, nn.Parameter(torch.ones(size, dtype=dtype, device=device)))
        if config.use_bias:
            module.register_parameter(BIAS, nn.Parameter(torch.zeros(size, dtype=dtype, device=device)))
        state.handles.append(module.register_forward_hook(partial(_edit_output, state, site.name)))
    setattr(model, STATE_ATTRIBUTE, state)
    return sites


def _execution_device(module: nn.Module) -> torch.device:
    """The module's device; refuses weights that accelerate offloads (its hook would not know the vectors)."""
    if module.weight.device.type == "meta":
        raise ValueError(
            "this module's weights are offloaded by accelerate (on 'meta' until used); RED cannot attach there. "
            "Load the model with a device_map that keeps every layer on a device (no 'cpu'/'disk' offload)."
        )
    return module.weight.device


def detach_red(model: nn.Module) -> None:
    """Remove every RED hook and vector: the model is exactly the base again."""
    from .merge import unmerge_red

    state = get_state(model)
    if state.merged_backup is not None:
        unmerge_red(model)
    for handle in state.handles:
        handle.remove()
    for site in state.sites:
        module = model.get_submodule(site.name)
        module._parameters.pop(SCALE, None)
        module._parameters.pop(BIAS, None)
    delattr(model, STATE_ATTRIBUTE)


@contextmanager
def red_disabled(model: nn.Module) -> Iterator[None]:
    """Inside this block the model computes exactly the base model's outputs."""
    state = get_state(model)
    if state.merged_backup is not None:
        raise ValueError("the edits are merged into the weights: call unmerge_red(model) before disabling")
    previous, state.enabled = state.enabled, False
    try:
        yield
    finally:
        state.enabled = previous


def red_vectors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The edit vectors by state_dict name (``<module>.red_scale`` / ``<module>.red_bias``)."""
    state = get_state(model)
    vectors = {}
    for site in state.sites:
        module = model.get_submodule(site.name)
        for kind in (SCALE, BIAS):
            if module._parameters.get(kind) is not None:
                vectors[f"{site.name}.{kind}"] = module._parameters[kind]
    return vectors


def red_parameter_count(model: nn.Module) -> int:
    """Exactly the number of RED parameters: (number of vectors) · hidden · sites."""
    return sum(vector.numel() for vector in red_vectors(model).values())


def trainable_parameter_count(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)
