"""Attaching RED edits to a model: the forward hook, disabling and detaching."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from red_explorer.core.red.config import RedConfig
from red_explorer.core.sites import Site, find_sites, output_size, warn_unedited
from red_explorer.core.state import (
    EditState,
    attached_state,
    check_free,
    execution_device,
    freeze,
    install,
    remove,
    require_state,
    site_tensors,
    switched_off,
)

SCALE = "red_scale"
BIAS = "red_bias"
VECTOR_KINDS = (SCALE, BIAS)


@dataclass
class RowEdits:
    """Per-row edits for one batch: row i of the batch uses edit ``row_ids[i]`` of each bank."""

    row_ids: torch.Tensor  # (B,) long
    scales: dict[str, torch.Tensor]  # site name -> (N, H)
    biases: dict[str, torch.Tensor]  # site name -> (N, H)
    gathered: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict, repr=False)  # (B, H) each


@dataclass
class RedState(EditState):
    """What RED keeps on an edited model: the shared edit state, plus merge and per-row state."""

    merged_backup: dict[str, tuple[torch.Tensor, torch.Tensor | None]] | None = None
    row_edits: RowEdits | None = None


def get_state(model: nn.Module) -> RedState:
    return require_state(model, "red")


def has_red(model: nn.Module) -> bool:
    state = attached_state(model)
    return state is not None and state.method == "red"


def _edit_output(state: RedState, site_name: str, module: nn.Module, inputs, output: torch.Tensor):
    """RED(h) = scale ⊙ h + bias on the module output h: (..., H)."""
    if not state.enabled or state.merged_backup is not None:
        return None
    if state.row_edits is not None:
        return _edit_rows(state.row_edits, site_name, output)
    scale = module._parameters.get(SCALE)
    bias = module._parameters.get(BIAS)
    # A cast each call (H values per site): cached casts go stale under optimizers that update in place.
    if scale is not None and bias is not None:
        return torch.addcmul(bias.to(output.dtype), output, scale.to(output.dtype))
    if scale is not None:
        return output * scale.to(output.dtype)
    return output + bias.to(output.dtype)


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
    check_free(model, "red")
    config = config or RedConfig()
    sites = find_sites(model, config)
    devices = {site.name: execution_device(model.get_submodule(site.name)) for site in sites}
    freeze(model)
    dtype = getattr(torch, config.vector_dtype)
    for site in sites:
        module = model.get_submodule(site.name)
        size, device = output_size(module), devices[site.name]
        if config.use_scale:
            module.register_parameter(SCALE, nn.Parameter(torch.ones(size, dtype=dtype, device=device)))
        if config.use_bias:
            module.register_parameter(BIAS, nn.Parameter(torch.zeros(size, dtype=dtype, device=device)))
    install(model, RedState("red", config, sites), _edit_output)
    warn_unedited(model, config, "RED")  # e.g. mixture-of-experts layers without a dense FFN output
    return sites


def restore_weights(model: nn.Module, state: RedState) -> None:
    """Put back the base weights that ``merge_red`` replaced (no-op when not merged)."""
    if state.merged_backup is None:
        return
    with torch.no_grad():
        for name, (weight, bias) in state.merged_backup.items():
            module = model.get_submodule(name)
            module.weight.copy_(weight)
            if bias is None:
                module.register_parameter("bias", None)
            else:
                module.bias.copy_(bias)
    state.merged_backup = None


def detach_red(model: nn.Module) -> None:
    """Remove every RED hook and vector (unmerging first): the model is exactly the base again."""
    state = get_state(model)
    restore_weights(model, state)
    remove(model, state, VECTOR_KINDS)


@contextmanager
def red_disabled(model: nn.Module) -> Iterator[None]:
    """Inside this block the model computes exactly the base model's outputs."""
    state = get_state(model)
    if state.merged_backup is not None:
        raise ValueError("the edits are merged into the weights: call unmerge_red(model) before disabling")
    with switched_off(state):
        yield


def red_vectors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The edit vectors by state_dict name (``<module>.red_scale`` / ``<module>.red_bias``)."""
    return site_tensors(model, get_state(model), VECTOR_KINDS)


def red_parameter_count(model: nn.Module) -> int:
    """Exactly the number of RED parameters: (number of vectors) · hidden · sites."""
    return sum(vector.numel() for vector in red_vectors(model).values())


def trainable_parameter_count(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)
