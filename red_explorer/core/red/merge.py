"""Folding RED edits into the weights: in place (reversible) or into a new plain model."""

from __future__ import annotations

import copy

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from red_explorer.core.method import MergeError
from red_explorer.core.red.edit import BIAS, SCALE, get_state, red_vectors, restore_weights
from red_explorer.core.sites import find_scheme
from red_explorer.models.quantization import is_quantized


def fold(weight: torch.Tensor, bias: torch.Tensor | None, scale, shift, transposed: bool):
    """W' = diag(scale)·W, b' = scale ⊙ b + shift. ``transposed``: weight stored (in, out) as in Conv1D."""
    dtype = weight.dtype  # fold in float64, round once
    weight, bias = weight.double(), None if bias is None else bias.double()
    if scale is not None:
        scale = scale.double()
        weight = weight * (scale[None, :] if transposed else scale[:, None])
        bias = bias * scale if bias is not None else None
    if shift is not None and bool(shift.detach().any()):
        bias = shift.double() if bias is None else bias + shift.double()
    return weight.to(dtype), None if bias is None else bias.to(dtype)


def _site_vectors(module: nn.Module):
    return module._parameters.get(SCALE), module._parameters.get(BIAS)


def merge_red(model: nn.Module) -> None:
    """Fold the edits into the live weights (zero inference overhead); ``unmerge_red`` undoes it.

    The original weights are kept for an exact unmerge. A site without a bias gets one in place.
    """
    state = get_state(model)
    if state.merged_backup is not None:
        return
    if is_quantized(model):
        raise MergeError(
            "RED does not fold into quantized weights in place (folding would round them again): keep the edit "
            "attached, or write a plain checkpoint with save_merged, which folds it into the dequantized weights"
        )
    refuse_shared_weights(model, state.sites)
    backup = {}
    with torch.no_grad():
        for site in state.sites:
            module = model.get_submodule(site.name)
            scale, shift = _site_vectors(module)
            backup[site.name] = (module.weight.detach().clone(), _bias_copy(module))
            weight, bias = fold(module.weight, module.bias, scale, shift, isinstance(module, Conv1D))
            module.weight.copy_(weight)
            if bias is not None and module.bias is None:
                module.bias = nn.Parameter(bias, requires_grad=False)
            elif bias is not None:
                module.bias.copy_(bias)
    state.merged_backup = backup


def shared_weight(model: nn.Module, site_name: str) -> str | None:
    """The name of another parameter that shares the site's weight storage (tied embeddings), or None."""
    pointer = model.get_submodule(site_name).weight.data_ptr()
    own = f"{site_name}.weight"
    for name, parameter in model.named_parameters(remove_duplicate=False):
        if name != own and pointer and parameter.data_ptr() == pointer:
            return name
    return None


def refuse_shared_weights(model: nn.Module, sites) -> None:
    """A MergeError when a site's weight is tied to another module's: folding would change that one too."""
    for site in sites:
        other = shared_weight(model, site.name)
        if other is not None:
            raise MergeError(
                f"'{site.name}.weight' is tied to '{other}' (tie_word_embeddings): folding the edit into it would "
                f"change '{other}' too. Keep the edit as a hook (save_edits, no merge), or load the model with "
                "tie_word_embeddings=False before attaching."
            )


def _bias_copy(module: nn.Module) -> torch.Tensor | None:
    return None if module.bias is None else module.bias.detach().clone()


def unmerge_red(model: nn.Module) -> None:
    """Restore the exact base weights after ``merge_red``; the edits apply through the hook again."""
    restore_weights(model, get_state(model))


def _merged_state_dict(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Base weights with the edits folded in, and the new biases for sites that had none.

    Folds from the base weights, also when the model is merged in place (``merge_red``): never twice.
    """
    state = get_state(model)
    refuse_shared_weights(model, state.sites)
    edit_names = set(red_vectors(model))
    tensors = {name: value for name, value in model.state_dict().items() if name not in edit_names}
    new_biases = {}
    with torch.no_grad():
        for site in state.sites:
            module = model.get_submodule(site.name)
            base_weight, base_bias = _base_weights(module, state, site.name)
            scale, shift = _site_vectors(module)
            weight, bias = fold(base_weight, base_bias, scale, shift, isinstance(module, Conv1D))
            tensors[f"{site.name}.weight"] = weight
            if base_bias is not None:
                tensors[f"{site.name}.bias"] = bias
            else:
                tensors.pop(f"{site.name}.bias", None)  # added by an in-place merge
                if bias is not None:
                    new_biases[f"{site.name}.bias"] = bias
    return tensors, new_biases


def _base_weights(module: nn.Module, state, site_name: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    if state.merged_backup is not None:
        return state.merged_backup[site_name]
    return module.weight, module.bias


def _config_with_bias_slots(model: nn.Module, new_biases: dict[str, torch.Tensor]):
    """A copy of the model config that gives the edited sites a bias, or a MergeError."""
    config = copy.deepcopy(model.config)
    if not new_biases:
        return config
    state = get_state(model)
    scheme = find_scheme(model) if state.config.target_modules is None else None
    kinds = {site.kind for site in state.sites if f"{site.name}.bias" in new_biases}
    for kind in kinds:
        flag = getattr(scheme, f"{kind}_bias_flag", None) if scheme else None
        if flag is None or not hasattr(config, flag):
            raise MergeError(
                f"the {kind} site of a '{config.model_type}' model has no bias slot that transformers can "
                "load, so the learned bias cannot be merged exactly. Use a scale-only edit to merge, or "
                "keep the edits as a separate file (save_edits) and attach them at load time."
            )
        setattr(config, flag, True)
    return config


def _empty_like(model: nn.Module, config) -> nn.Module:
    """A model of ``model``'s class for ``config``, on the CPU, with uninitialised weights and ``model``'s buffers.

    Built on the meta device: a random initialisation of every weight, overwritten at once by the
    merged state dict, was most of a merge's time (5 of 6 s for SmolLM2-135M on a CPU, and it grows
    with the model). Buffers outside the state dict (rotary frequencies) are copied from ``model``.
    """
    with torch.device("meta"):
        merged = type(model)._from_config(config, dtype=next(model.parameters()).dtype)
    merged.to_empty(device="cpu")
    buffers = dict(model.named_buffers())
    with torch.no_grad():
        for name, buffer in merged.named_buffers():
            if name in buffers:
                buffer.copy_(buffers[name])
    return merged


def merge_and_unload(model: nn.Module) -> nn.Module:
    """A new plain transformers model (same class) whose weights carry the edits; ``model`` is untouched."""
    tensors, new_biases = _merged_state_dict(model)
    config = _config_with_bias_slots(model, new_biases)
    merged = _empty_like(model, config)
    result = merged.load_state_dict(tensors, strict=False)
    unexpected = list(result.unexpected_keys)
    missing = [name for name in result.missing_keys if name not in new_biases]
    if unexpected or any(not name.endswith(".bias") for name in missing):
        raise MergeError(f"merged weights do not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    with torch.no_grad():
        parameters = dict(merged.named_parameters())
        for name in missing:  # bias slots the config switched on elsewhere (e.g. gate/up): zero
            parameters[name].zero_()
        for name, bias in new_biases.items():
            if name not in parameters:
                raise MergeError(f"the merged model has no parameter {name}: cannot merge the bias exactly")
            parameters[name].copy_(bias)
    merged.tie_weights()
    check_folded(model, merged)
    return merged.eval()


def check_folded(model: nn.Module, merged: nn.Module) -> None:
    """A MergeError unless every edited site of ``merged`` holds diag(scale)·W and scale ⊙ b + bias, rounded once.

    Compared in float64 with the base weights and the vectors: rounding to the model's dtype moves a
    value by at most eps/2 of it, so anything more is a wrong fold. This holds in every dtype, also
    where bfloat16 logits are too coarse to tell one wrong layer from rounding (``merge_tolerance``).
    """
    state = get_state(model)
    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        for site in state.sites:
            module = model.get_submodule(site.name)
            weight, bias = map(_exact, _base_weights(module, state, site.name))
            scale, shift = map(_exact, _site_vectors(module))
            transposed = isinstance(module, Conv1D)  # weight stored (in, out)
            scale = torch.ones(weight.shape[1 if transposed else 0], dtype=torch.float64) if scale is None else scale
            expected = weight * (scale[None, :] if transposed else scale[:, None])
            offset = (torch.zeros_like(scale) if bias is None else bias * scale) + (0 if shift is None else shift)
            folded = merged.get_submodule(site.name)
            _check_rounded(folded.weight, expected, dtype, f"{site.name}.weight")
            actual_bias = torch.zeros_like(offset) if folded.bias is None else folded.bias
            _check_rounded(actual_bias, offset, dtype, f"{site.name}.bias")


def _exact(value: torch.Tensor | None) -> torch.Tensor | None:
    return None if value is None else value.detach().double().cpu()


def _check_rounded(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, name: str) -> None:
    """A MergeError when ``actual`` is further from the float64 ``expected`` than one rounding to ``dtype``."""
    allowed = expected.abs() * (torch.finfo(dtype).eps / 2) + torch.finfo(dtype).smallest_normal
    off = (actual.detach().double().cpu() - expected).abs()
    if bool((off > allowed).any()):
        raise MergeError(
            f"the merged {name} is not the folded edit (off by up to {off.max().item():.2g}, where rounding to "
            f"{str(dtype).removeprefix('torch.')} allows {allowed.max().item():.2g}); not written"
        )
