"""Saving LoReFT in the edits-folder format and loading it back, with strict validation."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from red_explorer.core.checkpoint import (
    EditsFileError,
    check_fits,
    check_tensors,
    copy_into,
    read_record_for,
    read_tensors,
    write_edits,
)
from red_explorer.core.loreft.config import LoreftOptions
from red_explorer.core.loreft.edit import MODULE, attach_loreft, detach_loreft, get_loreft_state, interventions

ROTATION = "rotation"
ORTHONORMAL_TOLERANCE = 1e-4  # max |R Rᵀ − I| accepted in a file


def loreft_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """What the folder stores, by name: R, W and b of every site."""
    tensors = {}
    for site_name, intervention in interventions(model).items():
        prefix = f"{site_name}.{MODULE}"
        tensors[f"{prefix}.{ROTATION}"] = intervention.projection.detach()  # (r, H)
        tensors[f"{prefix}.weight"] = intervention.weight.detach()  # (r, H)
        tensors[f"{prefix}.bias"] = intervention.bias.detach()  # (r,)
    return tensors


def save_loreft(model: nn.Module, directory: str | Path, base_model: str | None = None, head_parameter_names=()):
    """Write ``red_config.json`` (method "loreft") and ``edits.safetensors`` (R, W, b per site, plus a head).

    Per site: ``<site>.loreft.rotation`` (R itself, (r, H), orthonormal rows), ``<site>.loreft.weight``
    (W, (r, H)) and ``<site>.loreft.bias`` (b, (r,)). Loading puts R back through the orthogonal
    parametrization (a QR of R), so the loaded R equals the saved one to float32 precision.
    """
    state = get_loreft_state(model)
    section = asdict(state.config)
    tensors = loreft_tensors(model)
    return write_edits(model, directory, "loreft", section, tensors, state.sites, base_model, head_parameter_names)


def _set_rotations(model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    for site_name, intervention in interventions(model).items():
        rotation = tensors[f"{site_name}.{MODULE}.{ROTATION}"].float()  # (r, H)
        identity = torch.eye(rotation.shape[0])
        if (rotation @ rotation.T - identity).abs().max() > ORTHONORMAL_TOLERANCE:
            raise EditsFileError(f"{site_name}: the saved R has rows that are not orthonormal; the file is damaged")
        intervention.rotation.weight = rotation.to(intervention.weight.device)  # through right_inverse (QR)


def load_loreft(model: nn.Module, directory: str | Path) -> LoreftOptions:
    """Attach the LoReFT edit saved in ``directory`` to ``model`` (a fresh base model), after validating all."""
    record = read_record_for(directory, "loreft")
    check_fits(model, record)
    tensors = read_tensors(directory)
    try:
        options = LoreftOptions(**record["loreft"])
    except (KeyError, TypeError, ValueError) as error:
        raise EditsFileError(f"{directory}: the config has no valid 'loreft' section: {error}") from error
    attach_loreft(model, options)
    try:
        attached = [site.name for site in get_loreft_state(model).sites]
        if attached != record.get("modules"):
            named = record.get("modules", [])
            raise EditsFileError(f"the edit names modules {named[:2]}..., this model offers {attached[:2]}...")
        expected = {name: tuple(tensor.shape) for name, tensor in loreft_tensors(model).items()}
        check_tensors(expected | {name: None for name in record.get("head_parameters", [])}, tensors)
        _set_rotations(model, tensors)
        copy_into(model, {name: tensor for name, tensor in tensors.items() if not name.endswith(f".{ROTATION}")})
    except EditsFileError:
        detach_loreft(model)
        raise
    return options
