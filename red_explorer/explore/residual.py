"""How a bias on a layer's FFN output reaches the residual stream: the one rule for control-vector export and import.

llama.cpp adds ``direction.N`` to the residual stream after decoder layer N. A RED bias b on the
FFN output of layer N is that same addition when nothing but the residual add (times a constant)
stands between the FFN output and the layer's output: then it adds ``factor · b`` there, with
``factor`` = the config's ``residual_multiplier`` (Granite: ``residual + ffn_out · m``) or 1.
The rule reads the model itself, by running it once on a few tokens: any module that runs on the
FFN output before the layer ends (a norm such as ``post_feedforward_layernorm`` or
``post_mlp_layernorm``, a post-norm encoder's LayerNorm) makes the bias per-token rescaled, and a
layer output that does not move by exactly ``factor · b`` is refused too.
"""

from __future__ import annotations

import re
from functools import partial

import torch
from torch import nn

from red_explorer.core.sites import find_scheme

MULTIPLIER_KEY = "residual_multiplier"  # Granite's config: the FFN output is multiplied by it before the add
PASSIVE = (nn.Dropout, nn.Identity)  # run after the FFN output, change nothing in eval mode


def ffn_layers(model: nn.Module) -> dict[int, tuple[str, str]]:
    """Per layer index: (FFN output module, decoder layer): ('model.layers.3.mlp.down_proj', 'model.layers.3')."""
    scheme = find_scheme(model)
    layers = {}
    for name, _ in model.named_modules():
        match = re.fullmatch(scheme.ffn, name)
        if match:
            layers[int(match.group(1))] = (name, name[: match.end(1)])
    return layers


def residual_factor(model: nn.Module) -> float:
    """The constant by which an FFN-output bias reaches the residual stream after its layer, or a ValueError.

    Measured on the last layer with an FFN output site (the layers of a model are built alike).
    """
    layers = ffn_layers(model)
    if not layers:
        raise ValueError(f"this '{model.config.model_type}' model has no dense FFN output to carry a control vector")
    site, layer = layers[max(layers)]
    factor = float(getattr(model.config, MULTIPLIER_KEY, None) or 1.0)  # 1 without one (a 0 fails the probe)
    after, before, moved, added = _probe(model, site, layer)
    if after:
        raise ValueError(
            f"this '{model.config.model_type}' model passes the FFN output through {after[0]} before the layer's "
            "output, so a bias there is rescaled per token and is not a control vector (which llama.cpp adds "
            "to the residual stream unchanged)"
        )
    expected = factor * added
    error, size = (moved - expected).abs().max().item(), expected.abs().max().item()
    rounding = 4 * torch.finfo(next(model.parameters()).dtype).eps * (before.abs().max().item() + size)
    if not error <= 1e-3 * size + rounding:
        raise ValueError(
            f"in this '{model.config.model_type}' model a bias on the FFN output does not move the layer's output "
            f"by {factor:g} times itself (off by {error:.2g}), so it is not a control vector"
        )
    return factor


def _probe(model: nn.Module, site: str, layer: str) -> tuple[list[str], torch.Tensor, torch.Tensor, torch.Tensor]:
    """(modules run on the FFN output before the layer ends, the layer output, how far the bias moved it, the bias).

    One pass without and one with a bias on ``site``; the bias is large next to the layer's output,
    so that rounding of the output is small next to it.
    """
    layer_module, site_module = model.get_submodule(layer), model.get_submodule(site)
    order: list[str] = []
    hooks = [
        module.register_forward_pre_hook(partial(_record, order, f"{layer}.{name}"))
        for name, module in layer_module.named_modules()
        if name and not list(module.children()) and not isinstance(module, PASSIVE)
    ]
    outputs: list[torch.Tensor] = []
    hooks.append(layer_module.register_forward_hook(partial(_keep_output, outputs)))
    try:
        _run(model)
        after = order[order.index(site) + 1 :] if site in order else []
        order.clear()
        width = outputs[0].shape[-1]
        scale = 1.0 + outputs[0].abs().max().item()
        added = torch.randn(width, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * scale
        hooks.append(site_module.register_forward_hook(partial(_add, added)))
        _run(model)
    finally:
        for hook in hooks:
            hook.remove()
    return after, outputs[0], outputs[1] - outputs[0], added


def _run(model: nn.Module) -> None:
    vocab = getattr(model.config, "vocab_size", None) or 8
    input_ids = (torch.arange(1, 7) % vocab)[None].to(next(model.parameters()).device)
    with torch.no_grad():
        model(input_ids=input_ids)


def _record(order: list[str], name: str, module: nn.Module, inputs) -> None:
    order.append(name)


def _keep_output(outputs: list[torch.Tensor], module: nn.Module, inputs, output) -> None:
    hidden = output[0] if isinstance(output, tuple) else output
    outputs.append(hidden.detach().double().cpu())


def _add(added: torch.Tensor, module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
    return output + added.to(output.device, output.dtype)
