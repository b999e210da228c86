"""Saving TARE edits in the RED edits-directory format and loading them back, with strict validation."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from . import __version__
from .saving import (
    CONFIG_FILE,
    FORMAT_VERSION,
    TENSORS_FILE,
    EditsFileError,
    _check_fits,
    _check_tensors,
    _copy_into,
    read_edit_tensors,
    read_edits_config,
)
from .tare import TENSOR_KINDS, TareConfig, attach_tare, detach_tare, get_tare_state, has_tare, tare_parameters


def save_tare(
    model: nn.Module,
    directory: str | Path,
    base_model: str,
    head_parameter_names: list[str] | tuple[str, ...] = (),
) -> Path:
    """Write ``red_config.json`` (method "tare") and ``edits.safetensors`` (editors, selectors, head)."""
    state = get_tare_state(model)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    parameters = dict(model.named_parameters())
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in tare_parameters(model).items()}
    tensors.update({name: parameters[name].detach().cpu().contiguous() for name in head_parameter_names})
    config = model.config
    modules = [site.name for site in state.sites]
    record = {
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "method": "tare",
        "base_model": base_model,
        "model_type": config.model_type,
        "architectures": list(getattr(config, "architectures", None) or [type(model).__name__]),
        "hidden_size": _site_width(model),
        "model_dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "num_labels": getattr(config, "num_labels", None) if head_parameter_names else None,
        "tare": state.config.to_dict() | {"target_modules": modules},
        "sites": state.config.sites,
        "layers": sorted({site.layer_index for site in state.sites}),
        "modules": modules,
        "head_parameters": list(head_parameter_names),
    }
    save_file(tensors, str(directory / TENSORS_FILE), metadata={"format": "pt", "library": "red_explorer"})
    (directory / CONFIG_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return directory


def _site_width(model: nn.Module) -> int:
    """H of the edited sites (the largest, if custom sites differ)."""
    return max(tensor.shape[-1] for tensor in tare_parameters(model).values())


def _check_shapes(model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Every saved TARE tensor must have the (E, H) shape of the tensor it replaces."""
    for name, parameter in tare_parameters(model).items():
        if tensors[name].shape != parameter.shape:
            raise EditsFileError(
                f"tensor {name} has shape {tuple(tensors[name].shape)}; this TARE config needs "
                f"{tuple(parameter.shape)} (num_editors, hidden size)"
            )


def load_tare(model: nn.Module, directory: str | Path) -> TareConfig:
    """Attach the TARE edits saved in ``directory`` to ``model`` (a fresh base model), after validating all.

    RED directories are refused here, as ``load_edits`` refuses TARE ones.
    """
    record = read_edits_config(directory)
    if record.get("method", "red") != "tare":
        raise EditsFileError(
            f"{directory} holds '{record.get('method', 'red')}' edits, not TARE: load RED edits with load_edits"
        )
    _check_fits(model, record)
    tensors = read_edit_tensors(directory)
    try:
        config = TareConfig.from_dict(record["tare"])
    except (KeyError, TypeError, ValueError) as error:
        raise EditsFileError(f"{CONFIG_FILE} has no valid 'tare' section: {error}") from error
    expected = {f"{name}.{kind}" for name in record.get("modules", []) for kind in TENSOR_KINDS}
    expected |= set(record.get("head_parameters", []))
    if has_tare(model):
        raise EditsFileError("this model already carries TARE edits: detach_tare(model) before loading others")
    attach_tare(model, config)
    try:
        hidden_size = _site_width(model)
        if record.get("hidden_size") != hidden_size:
            raise EditsFileError(f"edits have hidden size {record.get('hidden_size')}, this model {hidden_size}")
        _check_tensors(expected, tensors, hidden_size)
        _check_shapes(model, tensors)
        _copy_into(model, tensors)
    except EditsFileError:
        detach_tare(model)
        raise
    return config
