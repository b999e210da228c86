"""Attaching LoReFT to a model: the layer sites, the position hook, the edit hook, switching off and detaching."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from red_explorer.core.loreft.config import LoreftOptions
from red_explorer.core.loreft.intervention import LoreftIntervention
from red_explorer.core.loreft.positions import forward_positions
from red_explorer.core.red.config import RedConfig
from red_explorer.core.sites import Site, find_scheme, find_sites, output_size
from red_explorer.core.state import EditState, attached_state, execution_device, freeze, install, remove, switched_off

MODULE = "loreft"  # the intervention's attribute on each edited module: <site>.loreft.weight, ...


@dataclass
class LoreftState(EditState):
    """The shared edit state plus the positions of the current forward: (rows, columns) or None (edit nothing)."""

    positions: tuple[torch.Tensor, torch.Tensor] | None = None
    shape: tuple[int, int] | None = None  # (B, T) of the forward the positions belong to


def get_loreft_state(model: nn.Module) -> LoreftState:
    state = attached_state(model)
    if not isinstance(state, LoreftState):
        raise ValueError("this model carries no LoReFT edit: apply_method(model, MethodSpec('loreft'), task) first")
    return state


def loreft_sites(model: nn.Module, options: LoreftOptions) -> list[tuple[Site, nn.Module]]:
    """Each edited site (a decoder layer for 'block', its FFN down-projection for 'ffn') with that FFN module.

    The FFN down-projection's output width is the residual width, and its device is the layer's.
    """
    try:
        ffn_sites = find_sites(model, RedConfig(sites=["ffn"], layers=options.layers))
    except ValueError as error:
        raise ValueError(f"LoReFT finds its layers through RED's FFN sites, and here: {error}") from error
    pattern = find_scheme(model).ffn
    placed = []
    for ffn in ffn_sites:
        block = Site(ffn.name[: re.fullmatch(pattern, ffn.name).end(1)], "block", ffn.layer_index)
        placed.append((ffn if options.site == "ffn" else block, model.get_submodule(ffn.name)))
    return placed


def _locate(state: LoreftState, model: nn.Module, args: tuple, kwargs: dict) -> None:
    """Forward pre-hook on the model: where this forward edits (None: nowhere)."""
    located = forward_positions(args, kwargs, state.config.first, state.config.last)
    state.positions, state.shape = located if located is not None else (None, None)


def _edit(state: LoreftState, site_name: str, module: nn.Module, inputs, output):
    """Forward hook on each site: LoReFT(h) at the chosen positions of h (B, T, H); other positions unchanged."""
    if not state.enabled or state.positions is None or state.positions[0].numel() == 0:
        return None
    hidden = output[0] if isinstance(output, tuple) else output  # (B, T, H)
    if tuple(hidden.shape[:2]) != state.shape:
        raise ValueError(
            f"LoReFT placed its positions for inputs of shape {state.shape} but {site_name} sees "
            f"{tuple(hidden.shape[:2])}: call the model itself, whose forward places them"
        )
    rows, columns = (index.to(hidden.device) for index in state.positions)  # (N,) each
    edited = module.get_submodule(MODULE)(hidden[rows, columns])  # (N, H)
    hidden = hidden.index_put((rows, columns), edited)  # (B, T, H), a new tensor
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


def attach_loreft(model: nn.Module, options: LoreftOptions) -> list[Site]:
    """Add a LoReFT intervention to every site (mutates ``model``), freeze the base; returns the sites.

    What each forward pass of the model edits (a pre-hook reads it from that forward's own inputs):
    - the prompt of a row is its leading real tokens whose label is -100 when per-token labels are
      given (training and evaluation on instruction data), else every real token (generation,
      classification, plain text); padding (attention_mask 0) is never edited, left or right;
    - the first ``first`` and last ``last`` prompt tokens are edited (once each where they overlap);
    - a forward that continues a non-empty cache (each generation step after the prompt) edits
      nothing: the edited prompt states reach the new tokens through the cache, as in ReFT.
      Generation with ``use_cache=False`` re-reads the whole text as its prompt at every step, so
      keep the cache on (the default).
    The positions stay until the model's next forward, so a layer re-run in the backward pass
    (activation checkpointing) edits the same positions.
    """
    existing = attached_state(model)
    if existing is not None:
        raise ValueError(f"this model already carries a '{existing.method}' edit: detach it before LoReFT")
    placed = loreft_sites(model, options)
    built = [LoreftIntervention(output_size(ffn), options.rank, execution_device(ffn)) for _, ffn in placed]
    freeze(model)
    for (site, _), intervention in zip(placed, built, strict=True):
        model.get_submodule(site.name).add_module(MODULE, intervention)
    sites = [site for site, _ in placed]
    state = LoreftState("loreft", options, sites)
    install(model, state, _edit)
    state.handles.append(model.register_forward_pre_hook(partial(_locate, state), with_kwargs=True))
    return sites


def interventions(model: nn.Module) -> dict[str, LoreftIntervention]:
    """The intervention of each site, by site name."""
    return {site.name: model.get_submodule(f"{site.name}.{MODULE}") for site in get_loreft_state(model).sites}


def loreft_parameter_count(model: nn.Module) -> int:
    """Exactly the trained numbers: per site r·H (R's stored matrix) + r·H (W) + r (b)."""
    return sum(parameter.numel() for module in interventions(model).values() for parameter in module.parameters())


@contextmanager
def loreft_disabled(model: nn.Module) -> Iterator[None]:
    """Inside this block the model computes exactly the base model's outputs."""
    with switched_off(get_loreft_state(model)):
        yield


def detach_loreft(model: nn.Module) -> None:
    """Remove every hook and intervention: the model is exactly the base again."""
    state = get_loreft_state(model)
    for site in state.sites:
        delattr(model.get_submodule(site.name), MODULE)
    remove(model, state, ())
