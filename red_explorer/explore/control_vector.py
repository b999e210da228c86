"""RED bias-only edits as llama.cpp control vectors: export, import, and the residual-add reading that equates them.

In a pre-norm decoder the block's output is x + attn + ffn_out, with nothing between the FFN's
down-projection and that residual add. A RED bias b on the FFN output of layer N therefore adds
b to the residual stream after layer N, which is what llama.cpp's ``--control-vector`` does with
``direction.N`` (``cur = build_cvec(cur, il)`` right after the FFN residual add of layer il, e.g.
src/models/llama.cpp). Where the add multiplies the FFN output by a constant (Granite's
``residual_multiplier``), direction.N = constant · b. Which models qualify is decided by one rule
for export and import alike (``explore.residual.residual_factor``): nothing may run on the FFN
output before the layer ends (refused: post-norm encoders such as BERT, blocks that normalise the
FFN output such as Gemma 2/3, GLM-4, OLMo 2). Not representable in a run: a scale part (it
multiplies per token), attention sites (their bias feeds the FFN of the same layer) and a bias on
layer 0 (llama.cpp never steers it); ``bias_only`` leaves the scale and layer 0 out and says so.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
from torch import nn

from red_explorer.core.red.config import RedConfig
from red_explorer.core.red.edit import BIAS, SCALE, attach_red, detach_red, red_vectors
from red_explorer.core.red.saving import save_red
from red_explorer.core.sites import SCHEMES, output_size
from red_explorer.explore.gguf_file import ControlVectorFile, read_control_vector, write_control_vector
from red_explorer.explore.residual import ffn_layers, residual_factor
from red_explorer.explore.runs import RedRun, read_red_run
from red_explorer.explore.strength import check_strength


class NeedsBiasOnly(ValueError):
    """The run has parts a control vector cannot hold (a scale, layer 0) that a bias-only export leaves out.

    ``part`` names what is in the way ("scale" or "layer 0"); ``advice`` says the two ways out, each with where a
    front end does it."""

    def __init__(self, reason: str, part: str, retrain: str):
        self.reason, self.part, self.retrain = reason, part, retrain
        super().__init__(self.advice())

    def __reduce__(self):
        return type(self), (self.reason, self.part, self.retrain)

    def advice(self, export_where: str = "", train_where: str = "") -> str:
        """The refusal and its two ways out: export the bias only, or train again; each followed by where to do it
        when given (e.g. ``add --bias-only``)."""
        export = f"export its bias only (layers 1 and up{f'; {export_where}' if export_where else ''})"
        train = self.retrain + (f" ({train_where})" if train_where else "")
        return f"{self.reason}: {export}, or {train}"


@dataclass
class ExportedVector:
    """A written control vector: its file, the layers it steers, and what of the run it left out (said in words)."""

    path: Path
    layers: list[int]
    dropped: list[str] = field(default_factory=list)


def ffn_site(module_name: str) -> int | None:
    """The layer index when ``module_name`` is the FFN output site of a known family, else None."""
    for scheme in SCHEMES:
        match = re.fullmatch(scheme.ffn, module_name)
        if match:
            return int(match.group(1))
    return None


def _scale_part(run: RedRun, name: str, bias_only: bool, dropped: list[str]) -> None:
    scales = [vector for key, vector in run.vectors.items() if key.endswith(f".{SCALE}")]
    if not any(bool((vector != 1).any()) for vector in scales):
        return
    if not bias_only:
        raise NeedsBiasOnly(
            f"{name} has a scale part (scale ⊙ h multiplies the FFN output per token; a control vector only adds)",
            "scale",
            "train it bias-only",
        )
    dropped.append(f"the scale vectors of {len(scales)} layers")


def directions_from_run(
    run: RedRun, factor: float = 1.0, bias_only: bool = False, name: str | None = None, dropped: list | None = None
) -> dict[int, torch.Tensor]:
    """The control-vector directions of a RED run: direction.N = ``factor`` · the bias on layer N's FFN output.

    ``factor`` is ``residual_factor`` of the run's base. Refuses what a control vector cannot represent
    (module docstring); ``bias_only=True`` leaves out a scale part and the bias of layer 0 instead, and
    appends what it left out to ``dropped``. ``name`` names the run in messages (default: its folder).
    """
    name, dropped = name or str(run.directory), dropped if dropped is not None else []
    _scale_part(run, name, bias_only, dropped)
    directions = {}
    for key, bias in run.vectors.items():
        if not key.endswith(f".{BIAS}") or not bool(bias.any()):
            continue  # a zero bias adds nothing anywhere
        module = key.rpartition(".")[0]
        layer = ffn_site(module)
        if layer is None:
            raise ValueError(
                f"{name} edits {module}, which is not an FFN output: only a bias on the FFN output is added to the "
                "residual stream after its layer; train on the FFN sites"
            )
        directions[layer] = bias.detach().float().clone() * factor
    if 0 in directions and bias_only:
        del directions[0]
        dropped.append("the bias of layer 0 (llama.cpp never steers layer 0)")
    if 0 in directions:
        raise NeedsBiasOnly(
            f"{name} edits layer 0, which llama.cpp never steers (its loader rejects direction.0 and keeps no control "
            "tensor for layer 0)",
            "layer 0",
            "train on layers 1 and up",
        )
    if not directions:
        raise ValueError(f"{name} has no non-zero bias on layers 1 and up: there is nothing to export")
    return directions


def export_control_vector(
    directory: str | Path, path: str | Path, model: nn.Module, bias_only: bool = False, name: str | None = None
) -> ExportedVector:
    """Write the bias of a RED run as a control-vector GGUF (``model_hint`` = the run's model_type, as repeng does).

    ``model`` is the run's base model (plain, no edits attached): it decides how the bias reaches the
    residual stream (``residual_factor``). ``name`` names the run in messages.
    """
    run = read_red_run(directory)
    name = name or str(run.directory)
    model_type = run.record.get("model_type", "")
    if model_type != model.config.model_type:
        raise ValueError(
            f"{name} was trained on a '{model_type}' model, not on this '{model.config.model_type}' model: "
            "export it with its own base model"
        )
    dropped: list[str] = []
    directions = directions_from_run(run, residual_factor(model), bias_only, name, dropped)
    written = write_control_vector(path, ControlVectorFile(model_type, directions))
    return ExportedVector(written, sorted(directions), dropped)


def ffn_sites_by_layer(model: nn.Module) -> dict[int, str]:
    """The FFN output module of every layer, by layer index."""
    return {index: names[0] for index, names in ffn_layers(model).items()}


def control_vector_biases(
    model: nn.Module, vector: ControlVectorFile, strength: float = 1.0
) -> dict[str, torch.Tensor]:
    """RED bias vectors (``<ffn module>.red_bias``) that add ``strength`` times the control vector after each layer.

    The bias is direction / ``residual_factor(model)``: what the FFN output needs so that the residual
    stream moves by the direction (Granite multiplies the FFN output before the add).
    """
    factor = residual_factor(model)
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
        biases[f"{sites[layer]}.{BIAS}"] = direction.float() * (strength / factor)
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
    layers = ffn_layers(model)
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
