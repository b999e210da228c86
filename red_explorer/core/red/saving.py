"""Saving RED edits to an edits folder and loading them back, with strict validation."""

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
from red_explorer.core.red.config import RedConfig
from red_explorer.core.red.edit import attach_red, detach_red, get_state, has_red, red_vectors


def save_red(
    model: nn.Module,
    directory: str | Path,
    base_model: str | None = None,
    head_parameter_names: list[str] | tuple[str, ...] = (),
) -> Path:
    """Write ``red_config.json`` and ``edits.safetensors`` (vectors, plus a classification head)."""
    state = get_state(model)
    section = state.config.to_dict() | {"variant": state.config.variant}
    return write_edits(
        model, directory, "red", section, red_vectors(model), state.sites, base_model, head_parameter_names
    )


def load_red(model: nn.Module, directory: str | Path) -> RedConfig:
    """Attach the RED edits saved in ``directory`` to ``model`` (a fresh base model), after validating all."""
    record = read_record_for(directory, "red")
    check_fits(model, record)
    tensors = read_tensors(directory)
    try:
        section = {key: value for key, value in record["red"].items() if key != "variant"}
        config = RedConfig.from_dict(section)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise EditsFileError(f"{directory}: the config has no valid 'red' section: {error}") from error
    if has_red(model):
        raise EditsFileError("this model already carries RED edits: detach_red(model) before loading others")
    attach_red(model, config)
    try:
        attached = [site.name for site in get_state(model).sites]
        if attached != record.get("modules"):
            raise EditsFileError(
                f"the edits name modules {record.get('modules', [])[:2]}..., this model offers {attached[:2]}...; "
                "they belong to another architecture"
            )
        expected = {name: tuple(vector.shape) for name, vector in red_vectors(model).items()}
        expected |= {name: None for name in record.get("head_parameters", [])}
        check_tensors(expected, tensors)
        copy_into(model, tensors)
    except EditsFileError:
        detach_red(model)
        raise
    return config
