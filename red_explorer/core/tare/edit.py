"""TARE, token-aware representation editing: attaching a per-token top-k mix of diagonal editors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

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
from red_explorer.core.tare.config import TareConfig

SCALE = "tare_scale"
BIAS = "tare_bias"
SELECTOR = "tare_selector"
TENSOR_KINDS = (SCALE, BIAS, SELECTOR)
SELECTOR_INIT_STD = 0.02


@dataclass
class TareState(EditState):
    """What TARE keeps on an edited model; ``recording`` collects the routing of one forward pass."""

    recording: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None  # site -> (selected, weights)


def get_tare_state(model: nn.Module) -> TareState:
    return require_state(model, "tare")


def has_tare(model: nn.Module) -> bool:
    state = attached_state(model)
    return state is not None and state.method == "tare"


def route(hidden: torch.Tensor, selector: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k most probable editors of each token, best first, and their probabilities over all E editors."""
    probabilities = (hidden @ selector.T).softmax(dim=-1)  # (..., E)
    weights, selected = probabilities.topk(top_k, dim=-1)  # (..., k)
    return selected, weights


def mix_editors(
    hidden: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor, selected: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """h + Σ_j w_j ((scale_j − 1) ⊙ h + bias_j): exactly h when scale = 1 and bias = 0."""
    dense = torch.zeros(*weights.shape[:-1], scale.shape[0], dtype=weights.dtype, device=weights.device)
    dense = dense.scatter(-1, selected, weights)  # (..., E), zero for unselected editors
    return hidden + torch.addcmul(dense @ bias, hidden, dense @ (scale - 1))  # (..., H)


def _edit_output(state: TareState, site_name: str, module: nn.Module, inputs, output: torch.Tensor):
    """TARE(h) on the module output h: (B, T, H)."""
    if not state.enabled:
        return None
    scale, bias, selector = (module._parameters[kind].to(output.dtype) for kind in TENSOR_KINDS)
    selected, weights = route(output, selector, state.config.top_k)
    if state.recording is not None:
        state.recording[site_name] = (selected.detach(), weights.detach())
    return mix_editors(output, scale, bias, selected, weights)


def attach_tare(model: nn.Module, config: TareConfig | None = None) -> list[Site]:
    """Add TARE editors and selectors to every site of ``config`` (mutates ``model``) and freeze the base.

    Registered on the edited module as ``tare_scale`` (E, H) ones, ``tare_bias`` (E, H) zeros and
    ``tare_selector`` (E, H) normal(0, 0.02) from torch's global generator: the untouched edit is
    exactly the identity. Returns the edited sites.
    """
    check_free(model, "tare")
    config = config or TareConfig()
    sites = find_sites(model, config.site_config())
    devices = {site.name: execution_device(model.get_submodule(site.name)) for site in sites}
    freeze(model)
    dtype = getattr(torch, config.vector_dtype)
    for site in sites:
        module = model.get_submodule(site.name)
        shape, device = (config.num_editors, output_size(module)), devices[site.name]
        selector = torch.randn(shape, device=device) * SELECTOR_INIT_STD
        module.register_parameter(SCALE, nn.Parameter(torch.ones(shape, dtype=dtype, device=device)))
        module.register_parameter(BIAS, nn.Parameter(torch.zeros(shape, dtype=dtype, device=device)))
        module.register_parameter(SELECTOR, nn.Parameter(selector.to(dtype)))
    install(model, TareState("tare", config, sites), _edit_output)
    warn_unedited(model, config.site_config(), "TARE")  # e.g. mixture-of-experts layers without a dense FFN
    return sites


def detach_tare(model: nn.Module) -> None:
    """Remove every TARE hook and tensor: the model is exactly the base again."""
    remove(model, get_tare_state(model), TENSOR_KINDS)


@contextmanager
def tare_disabled(model: nn.Module) -> Iterator[None]:
    """Inside this block the model computes exactly the base model's outputs."""
    with switched_off(get_tare_state(model)):
        yield


def tare_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The TARE tensors by state_dict name (``<module>.tare_scale`` / ``.tare_bias`` / ``.tare_selector``)."""
    return site_tensors(model, get_tare_state(model), TENSOR_KINDS)


def tare_parameter_count(model: nn.Module) -> int:
    """Exactly the number of TARE parameters: sites · 3 · E · H."""
    return sum(parameter.numel() for parameter in tare_parameters(model).values())
