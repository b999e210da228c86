"""RED bias-only edits as llama.cpp control vectors: export, import, and the residual-add reading that equates them.

In a pre-norm decoder the block's output is x + attn + ffn_out, with nothing between the FFN's
down-projection and that residual add. A RED bias b on the FFN output of layer N therefore adds
b to the residual stream after layer N, which is what llama.cpp's ``--control-vector`` does with
``direction.N`` (``cur = build_cvec(cur, il)`` right after the FFN residual add of layer il, e.g.
src/models/llama.cpp). Not representable, and refused with the reason: a scale part (it multiplies
per token), attention sites (their bias feeds the FFN of the same layer), a bias on layer 0
(llama.cpp never steers it), post-norm encoders (BERT: the sum is normalised after the add), and
blocks that normalise the FFN output before the add (Gemma 2/3, OLMo 2: post_feedforward_layernorm).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import torch
from torch import nn

from red_explorer.core.red.config import RedConfig
from red_explorer.core.red.edit import BIAS, SCALE, attach_red, detach_red, red_vectors
from red_explorer.core.red.saving import save_red
from red_explorer.core.sites import SCHEMES, find_scheme, output_size
from red_explorer.explore.gguf_file import ControlVectorFile, read_control_vector, write_control_vector
from red_explorer.explore.runs import RedRun, read_red_run
from red_explorer.explore.strength import check_strength

POST_NORM_FAMILIES = ("bert",)  # LayerNorm(x + ffn_out): the bias is normalised with the sum
POST_FFN_NORM_MODULES = ("post_feedforward_layernorm", "post_mlp_layernorm", "ffn_post_norm")
POST_FFN_NORM_MODEL_TYPES = ("gemma2", "gemma3", "gemma3_text", "gemma3n", "gemma3n_text", "olmo2", "olmo3")


def ffn_site(module_name: str) -> tuple[str, int] | None:
    """(family, layer index) when ``module_name`` is the FFN output site of a known family, else None."""
    for scheme in SCHEMES:
        match = re.fullmatch(scheme.ffn, module_name)
        if match:
            return scheme.family, int(match.group(1))
    return None


def check_architecture(model_type: str, family: str) -> None:
    """Refuse architectures where an FFN-output bias is not a residual-stream addition, saying why."""
    if family in POST_NORM_FAMILIES:
        raise ValueError(
            f"a '{model_type}' model is a post-norm encoder: its FFN output is added to the residual and the "
            "sum is normalised, so a bias there is not a control vector (which adds after the layer)"
        )
    if model_type in POST_FFN_NORM_MODEL_TYPES:
        raise ValueError(
            f"a '{model_type}' model normalises the FFN output (post_feedforward_layernorm) before the residual "
            "add, so a bias on the FFN output is rescaled per token and is not a control vector"
        )


def check_model(model: nn.Module) -> None:
    """The structural check on a loaded model: a pre-norm family, no norm between the FFN and the residual add."""
    model_type = model.config.model_type
    check_architecture(model_type, find_scheme(model).family)
    normed = [name for name, _ in model.named_modules() if name.rpartition(".")[2] in POST_FFN_NORM_MODULES]
    if normed:
        raise ValueError(
            f"this '{model_type}' model normalises the FFN output ({normed[0]}) before the residual add, "
            "so a bias on the FFN output is not a control vector"
        )
    if getattr(model.config, "do_layer_norm_before", True) is False:
        raise ValueError(f"this '{model_type}' model normalises after the residual add (post-norm): not representable")


def directions_from_run(run: RedRun, bias_only: bool = False) -> dict[int, torch.Tensor]:
    """The control-vector directions of a RED run: direction.N = the bias on layer N's FFN output.

    Refuses what a control vector cannot represent (see the module docstring). A scale part is
    refused unless ``bias_only=True``, which drops it with a warning.
    """
    model_type = run.record.get("model_type", "?")
    scales = {name: vector for name, vector in run.vectors.items() if name.endswith(f".{SCALE}")}
    if any(bool((vector != 1).any()) for vector in scales.values()):
        if not bias_only:
            raise ValueError(
                f"{run.directory} has a scale part (scale ⊙ h multiplies the FFN output per token; a control vector "
                "only adds). Export with bias_only=True (CLI --bias-only) to drop it, or train with --no-scale"
            )
        warnings.warn(
            f"{run.directory}: the scale vectors are dropped; the control vector holds the biases only", stacklevel=2
        )
    directions = {}
    for name, bias in run.vectors.items():
        if not name.endswith(f".{BIAS}") or not bool(bias.any()):
            continue  # a zero bias adds nothing anywhere
        module = name.rpartition(".")[0]
        site = ffn_site(module)
        if site is None:
            raise ValueError(
                f"{module} is not an FFN output site: only a bias on the FFN output is added to the residual stream "
                "after its layer; train with --sites ffn"
            )
        check_architecture(model_type, site[0])
        directions[site[1]] = bias.detach().float().clone()
    if 0 in directions:
        others = ",".join(str(layer) for layer in run.record.get("layers", []) if layer != 0) or "1,2,..."
        raise ValueError(
            f"{run.directory} edits layer 0, which llama.cpp never steers (its loader rejects direction.0 and keeps "
            f"no control tensor for layer 0). Train with --layers that leave it out, e.g. --layers {others}"
        )
    if not directions:
        raise ValueError(f"{run.directory} has no non-zero bias: there is nothing to export")
    return directions


def export_control_vector(directory: str | Path, path: str | Path, bias_only: bool = False) -> Path:
    """Write the bias of a RED run as a control-vector GGUF (``model_hint`` = the run's model_type, as repeng does)."""
    run = read_red_run(directory)
    directions = directions_from_run(run, bias_only)
    return write_control_vector(path, ControlVectorFile(run.record.get("model_type", ""), directions))


def _ffn_layers(model: nn.Module) -> dict[int, tuple[str, str]]:
    """Per layer index: (FFN output module, decoder layer): ('model.layers.3.mlp.down_proj', 'model.layers.3')."""
    scheme = find_scheme(model)
    layers = {}
    for name, _ in model.named_modules():
        match = re.fullmatch(scheme.ffn, name)
        if match:
            layers[int(match.group(1))] = (name, name[: match.end(1)])
    return layers


def ffn_sites_by_layer(model: nn.Module) -> dict[int, str]:
    """The FFN output module of every layer, by layer index."""
    return {index: names[0] for index, names in _ffn_layers(model).items()}


def control_vector_biases(
    model: nn.Module, vector: ControlVectorFile, strength: float = 1.0
) -> dict[str, torch.Tensor]:
    """RED bias vectors (``<ffn module>.red_bias``) equal to ``strength`` times the control vector on ``model``."""
    check_model(model)
    strength = check_strength(strength)
    if vector.model_hint and vector.model_hint != model.config.model_type:
        warnings.warn(
            f"the control vector was made for a '{vector.model_hint}' model; this is a '{model.config.model_type}' "
            "model (the hint is informative only: widths and layers are checked)",
            stacklevel=2,
        )
    sites = ffn_sites_by_layer(model)
    biases = {}
    for layer, direction in sorted(vector.directions.items()):
        if layer not in sites:
            raise ValueError(
                f"direction.{layer}: this model has no FFN output site in layer {layer} "
                f"(it has one in layers {min(sites)}..{max(sites)})"
            )
        width = output_size(model.get_submodule(sites[layer]))
        if direction.shape[0] != width:
            raise ValueError(
                f"direction.{layer} has {direction.shape[0]} values; this model's residual width is {width}"
            )
        biases[f"{sites[layer]}.{BIAS}"] = direction.float() * strength
    return biases


def import_control_vector(
    model: nn.Module, path: str | Path, directory: str | Path, strength: float = 1.0, base_model: str | None = None
) -> Path:
    """Save a control-vector GGUF as a bias-only RED run on ``model``'s FFN outputs, at ``strength``.

    ``model`` is a base model without edits; it is left as it was (the edit is attached, saved, detached).
    """
    vector = read_control_vector(path)
    biases = control_vector_biases(model, vector, strength)
    attach_red(model, RedConfig(use_scale=False, layers=sorted(vector.directions)))
    try:
        parameters = red_vectors(model)
        with torch.no_grad():
            for name, bias in biases.items():
                parameters[name].copy_(bias)
        return save_red(model, directory, base_model)
    finally:
        detach_red(model)


@contextmanager
def control_vector_applied(
    model: nn.Module, directions: Mapping[int, torch.Tensor], strength: float = 1.0
) -> Iterator[None]:
    """llama.cpp's reading of a control vector, with forward hooks: h ← h + strength · direction.N after layer N."""
    layers = _ffn_layers(model)
    missing = sorted(index for index in directions if index not in layers)
    if missing:
        raise ValueError(f"direction.{missing[0]}: this model has no decoder layer {missing[0]}")
    device = next(model.parameters()).device
    handles = []
    try:
        for index, direction in directions.items():
            added = (direction.float() * strength).to(device)  # (H,)
            layer = model.get_submodule(layers[index][1])
            handles.append(layer.register_forward_hook(partial(_add_to_output, added)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _add_to_output(added: torch.Tensor, module: nn.Module, inputs, output):
    """Forward hook: add the direction to the layer's hidden-state output (a tensor, or the first of a tuple)."""
    if isinstance(output, tuple):
        return (output[0] + added.to(output[0].dtype), *output[1:])
    return output + added.to(output.dtype)
