"""Saving RED edits to a directory and loading them back, with strict validation."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from . import __version__
from .config import RedConfig
from .edit import BIAS, SCALE, attach_red, detach_red, get_state, has_red, red_vectors

CONFIG_FILE = "red_config.json"
TENSORS_FILE = "edits.safetensors"
FORMAT_VERSION = 1


class EditsFileError(ValueError):
    """A saved edits directory that does not fit the model, or is not what it claims to be."""


def save_edits(
    model: nn.Module,
    directory: str | Path,
    base_model: str,
    head_parameter_names: list[str] | tuple[str, ...] = (),
) -> Path:
    """Write ``red_config.json`` and ``edits.safetensors`` (vectors, plus a classification head)."""
    state = get_state(model)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    parameters = dict(model.named_parameters())
    tensors = {name: vector.detach().cpu().contiguous() for name, vector in red_vectors(model).items()}
    tensors.update({name: parameters[name].detach().cpu().contiguous() for name in head_parameter_names})
    config = model.config
    record = {
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "method": "red",
        "base_model": base_model,
        "model_type": config.model_type,
        "architectures": list(getattr(config, "architectures", None) or [type(model).__name__]),
        "hidden_size": _site_width(model),
        "model_dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "num_labels": getattr(config, "num_labels", None) if head_parameter_names else None,
        "red": state.config.to_dict(),
        "variant": state.config.variant,
        "sites": state.config.sites,
        "layers": sorted({site.layer_index for site in state.sites}),
        "modules": [site.name for site in state.sites],
        "head_parameters": list(head_parameter_names),
    }
    save_file(tensors, str(directory / TENSORS_FILE), metadata={"format": "pt", "library": "red_explorer"})
    (directory / CONFIG_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return directory


def _site_width(model: nn.Module) -> int:
    widths = {vector.shape[-1] for vector in red_vectors(model).values()}
    return widths.pop() if len(widths) == 1 else max(widths)


def read_edits_config(directory: str | Path) -> dict:
    """The parsed ``red_config.json`` of an edits directory, with clear errors."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise EditsFileError(f"{path} not found: an edits directory holds {CONFIG_FILE} and {TENSORS_FILE}")
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise EditsFileError(f"{path} is not valid JSON ({error}); re-export the edits") from error
    version = record.get("format_version") if isinstance(record, dict) else None
    if version != FORMAT_VERSION:
        raise EditsFileError(f"{path}: format_version {version!r} is not supported (expected {FORMAT_VERSION})")
    return record


def read_edit_tensors(directory: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of ``edits.safetensors``. Never unpickles: a pickle file is refused."""
    path = Path(directory) / TENSORS_FILE
    if not path.is_file():
        raise EditsFileError(f"{path} not found: an edits directory holds {CONFIG_FILE} and {TENSORS_FILE}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise EditsFileError(
            f"{path} is not a safetensors file (a pickle or a damaged file?); it was not executed. "
            "Export the edits again with save_edits."
        ) from error


def _check_fits(model: nn.Module, record: dict) -> None:
    model_type = model.config.model_type
    if record.get("model_type") != model_type:
        raise EditsFileError(
            f"these edits were trained on a '{record.get('model_type')}' model "
            f"({record.get('base_model')}), not on this '{model_type}' model"
        )
    names = dict(model.named_modules())
    missing = [name for name in record.get("modules", []) if name not in names]
    if missing:
        raise EditsFileError(f"the model has no module {missing[0]!r}: the edits belong to another architecture")


def _check_tensors(expected: set[str], tensors: dict[str, torch.Tensor], hidden_size: int) -> None:
    missing, extra = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
    if missing:
        raise EditsFileError(f"{TENSORS_FILE} lacks tensors {missing[:4]} ({len(missing)} missing)")
    if extra:
        raise EditsFileError(f"{TENSORS_FILE} has unexpected tensors {extra[:4]} ({len(extra)} extra)")
    for name, tensor in tensors.items():
        if not tensor.is_floating_point():
            raise EditsFileError(f"tensor {name} has dtype {tensor.dtype}; edits are float tensors")
        if not torch.isfinite(tensor).all():
            raise EditsFileError(f"tensor {name} holds NaN or infinite values: these edits are broken")
        if name.endswith((SCALE, BIAS)) and tuple(tensor.shape) != (hidden_size,):
            raise EditsFileError(f"tensor {name} has shape {tuple(tensor.shape)}; this model needs ({hidden_size},)")


def load_edits(model: nn.Module, directory: str | Path) -> RedConfig:
    """Attach the edits saved in ``directory`` to ``model`` (a fresh base model), after validating all."""
    record = read_edits_config(directory)
    if record.get("method", "red") != "red":
        raise EditsFileError(f"{directory} holds '{record.get('method')}' edits; load them with that method")
    _check_fits(model, record)
    tensors = read_edit_tensors(directory)
    try:
        config = RedConfig.from_dict(record["red"])
    except (KeyError, TypeError, ValueError) as error:
        raise EditsFileError(f"{CONFIG_FILE} has no valid 'red' section: {error}") from error
    vector_kinds = [kind for kind, used in ((SCALE, config.use_scale), (BIAS, config.use_bias)) if used]
    expected = {f"{name}.{kind}" for name in record["modules"] for kind in vector_kinds}
    expected |= set(record.get("head_parameters", []))
    if has_red(model):
        raise EditsFileError("this model already carries RED edits: detach_red(model) before loading others")
    attach_red(model, config)
    try:
        attached = [site.name for site in get_state(model).sites]
        if attached != record["modules"]:
            raise EditsFileError(
                f"the edits name modules {record['modules'][:2]}..., this model offers {attached[:2]}...; "
                "they belong to another architecture"
            )
        hidden_size = _site_width(model)
        if record.get("hidden_size") != hidden_size:
            raise EditsFileError(f"edits have hidden size {record.get('hidden_size')}, this model {hidden_size}")
        _check_tensors(expected, tensors, hidden_size)
        _copy_into(model, tensors)
    except EditsFileError:
        detach_red(model)
        raise
    return config


def _copy_into(model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    parameters = dict(model.named_parameters())
    missing = [name for name in tensors if name not in parameters]
    if missing:
        raise EditsFileError(f"the model has no parameter {missing[0]!r} for the saved classification head")
    with torch.no_grad():
        for name, tensor in tensors.items():
            if parameters[name].shape != tensor.shape:
                raise EditsFileError(
                    f"{name}: saved shape {tuple(tensor.shape)}, model {tuple(parameters[name].shape)}"
                )
            parameters[name].copy_(tensor.to(parameters[name].dtype))
