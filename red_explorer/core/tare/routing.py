"""Reading a TARE edit: which editor each token chose, and how far each editor moved from the identity."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from red_explorer.core.tare.edit import BIAS, SCALE, get_tare_state


@dataclass
class TareRouting:
    """Which editors each token chose, recorded during one forward pass; one row per edited site."""

    site_names: list[str]
    layer_indices: list[int]
    selected: torch.Tensor  # (sites, T, k) long: editor ids of the first sequence, best first
    weights: torch.Tensor  # (sites, T, k): their mixing weights (probabilities over all editors)
    usage: torch.Tensor  # (sites, E): fraction of the (unmasked) tokens that chose each editor; rows sum to k


def editor_magnitudes(model: nn.Module) -> dict[str, dict[str, torch.Tensor]]:
    """Per site, how far each editor moved from the identity: {"scale": mean |scale−1|, "bias": mean |bias|}, (E,)."""
    magnitudes = {}
    with torch.no_grad():
        for site in get_tare_state(model).sites:
            module = model.get_submodule(site.name)
            scale, bias = module._parameters[SCALE].float(), module._parameters[BIAS].float()
            magnitudes[site.name] = {
                "scale": (scale - 1).abs().mean(dim=-1).cpu(),
                "bias": bias.abs().mean(dim=-1).cpu(),
            }
    return magnitudes


def tare_routing(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> TareRouting:
    """Run one no-grad forward pass (in eval mode) and report the routing the hooks recorded.

    ``selected`` and ``weights`` are those of the first sequence; ``usage`` counts every token whose
    ``attention_mask`` is 1.
    """
    state = get_tare_state(model)
    if not state.enabled:
        raise ValueError("TARE is disabled here (inside tare_disabled): there is no routing to record")
    was_training, state.recording = model.training, {}
    model.eval()
    try:
        with torch.no_grad():
            model(input_ids=input_ids, attention_mask=attention_mask)
        recorded = state.recording
    finally:
        state.recording = None
        model.train(was_training)
    mask = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    selected, weights, usage = [], [], []
    for site in state.sites:
        site_selected, site_weights = recorded[site.name]
        site_selected = site_selected.reshape(*input_ids.shape, -1)  # (B, T, k)
        selected.append(site_selected[0].cpu())
        weights.append(site_weights.reshape(*input_ids.shape, -1)[0].float().cpu())
        chosen = site_selected[mask.to(site_selected.device)].flatten()
        counts = torch.bincount(chosen, minlength=state.config.num_editors).float().cpu()
        usage.append(counts / max(int(mask.sum()), 1))
    return TareRouting(
        site_names=[site.name for site in state.sites],
        layer_indices=[site.layer_index for site in state.sites],
        selected=torch.stack(selected),
        weights=torch.stack(weights),
        usage=torch.stack(usage),
    )
