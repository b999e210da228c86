"""Saving TARE edits in the edits-folder format and loading them back, with strict validation."""

from __future__ import annotations

from pathlib import Path

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
from red_explorer.core.tare.config import TareConfig
from red_explorer.core.tare.edit import attach_tare, detach_tare, get_tare_state, has_tare, tare_parameters


def save_tare(
    model: nn.Module,
    directory: str | Path,
    base_model: str | None = None,
    head_parameter_names: list[str] | tuple[str, ...] = (),
) -> Path:
    """Write ``red_config.json`` (method "tare") and ``edits.safetensors`` (editors, selectors, head)."""
    state = get_tare_state(model)
    section = state.config.to_dict() | {"target_modules": [site.name for site in state.sites]}
    return write_edits(
        model, directory, "tare", section, tare_parameters(model), state.sites, base_model, head_parameter_names
    )


def load_tare(model: nn.Module, directory: str | Path) -> TareConfig:
    """Attach the TARE edits saved in ``directory`` to ``model`` (a fresh base model), after validating all."""
    record = read_record_for(directory, "tare")
    check_fits(model, record)
    tensors = read_tensors(directory)
    try:
        config = TareConfig.from_dict(record["tare"])
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise EditsFileError(f"{directory}: the config has no valid 'tare' section: {error}") from error
    if has_tare(model):
        raise EditsFileError("this model already carries TARE edits: detach_tare(model) before loading others")
    attach_tare(model, config)
    try:
        expected = {name: tuple(tensor.shape) for name, tensor in tare_parameters(model).items()}
        expected |= {name: None for name in record.get("head_parameters", [])}
        check_tensors(expected, tensors)
        copy_into(model, tensors)
    except EditsFileError:
        detach_tare(model)
        raise
    return config
