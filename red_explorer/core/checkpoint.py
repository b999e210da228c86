"""The edits folder every hook-based method writes and reads: ``red_config.json`` + ``edits.safetensors``."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from red_explorer.version import __version__

CONFIG_FILE = "red_config.json"
TENSORS_FILE = "edits.safetensors"
FORMAT_VERSION = 1
UNRECORDED_CONFIG_KEYS = ("_name_or_path", "transformers_version", "_commit_hash")


class EditsFileError(ValueError):
    """A saved edits directory that does not fit the model, or is not what it claims to be."""


def base_model_record(model: nn.Module, name: str | None = None) -> dict:
    """Which base model an edit belongs to: its name or path, hub revision, and a hash of its config."""
    config = model.config
    settings = {key: value for key, value in config.to_dict().items() if key not in UNRECORDED_CONFIG_KEYS}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()
    return {
        "base_model": name or getattr(config, "_name_or_path", "") or config.model_type,
        "base_model_revision": getattr(config, "_commit_hash", None),
        "base_model_config_sha256": digest,
    }


def write_edits(
    model: nn.Module,
    directory: str | Path,
    method: str,
    section: dict,
    tensors: dict[str, torch.Tensor],
    sites: list,
    base_model: str | None = None,
    head_parameter_names: list[str] | tuple[str, ...] = (),
) -> Path:
    """Write the folder: ``section`` is the method's config (stored under its name), ``tensors`` its weights.

    The head parameters (a classification head) are saved beside the edit. Each file is written to a
    temporary name and renamed, so a crash never leaves a folder that half-loads.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    parameters = dict(model.named_parameters())
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()}
    tensors.update({name: parameters[name].detach().cpu().contiguous() for name in head_parameter_names})
    config = model.config
    record = {
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "method": method,
        **base_model_record(model, base_model),
        "model_type": config.model_type,
        "architectures": list(getattr(config, "architectures", None) or [type(model).__name__]),
        "hidden_size": max(tensor.shape[-1] for tensor in tensors.values()),
        "model_dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "num_labels": getattr(config, "num_labels", None) if head_parameter_names else None,
        method: section,
        "sites": section.get("sites"),
        "layers": sorted({site.layer_index for site in sites}),
        "modules": [site.name for site in sites],
        "head_parameters": list(head_parameter_names),
    }
    with _atomic(directory / TENSORS_FILE) as path:
        save_file(tensors, str(path), metadata={"format": "pt", "library": "red_explorer"})
    with _atomic(directory / CONFIG_FILE) as path:
        path.write_text(json.dumps(record, indent=2) + "\n")
    return directory


class _atomic:
    """``with _atomic(target) as temporary:`` write ``temporary``; it replaces ``target`` on success."""

    def __init__(self, target: Path):
        self.target = target

    def __enter__(self) -> Path:
        handle, name = tempfile.mkstemp(prefix=f".{self.target.name}.", dir=self.target.parent)
        os.close(handle)
        self.temporary = Path(name)
        return self.temporary

    def __exit__(self, error_type, error, traceback) -> None:
        if error_type is None:
            os.replace(self.temporary, self.target)
        else:
            self.temporary.unlink(missing_ok=True)


def read_record(directory: str | Path) -> dict:
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


def read_record_for(directory: str | Path, method: str) -> dict:
    """The record of a folder that must hold ``method`` edits."""
    record = read_record(directory)
    if record.get("method", "red") != method:
        raise EditsFileError(
            f"{directory} holds '{record.get('method', 'red')}' edits, not '{method}': "
            "load any edits folder with load_edits(model, directory)"
        )
    return record


def read_tensors(directory: str | Path) -> dict[str, torch.Tensor]:
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


def check_fits(model: nn.Module, record: dict) -> None:
    """The record names this model's architecture and modules that exist in it."""
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


def check_tensors(expected: dict[str, tuple[int, ...] | None], tensors: dict[str, torch.Tensor]) -> None:
    """Exactly the expected names, finite floats, of the expected shape (None: any shape, e.g. a head)."""
    missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing:
        raise EditsFileError(f"{TENSORS_FILE} lacks tensors {missing[:4]} ({len(missing)} missing)")
    if extra:
        raise EditsFileError(f"{TENSORS_FILE} has unexpected tensors {extra[:4]} ({len(extra)} extra)")
    for name, tensor in tensors.items():
        if not tensor.is_floating_point():
            raise EditsFileError(f"tensor {name} has dtype {tensor.dtype}; edits are float tensors")
        if not torch.isfinite(tensor).all():
            raise EditsFileError(f"tensor {name} holds NaN or infinite values: these edits are broken")
        shape = expected[name]
        if shape is not None and tuple(tensor.shape) != tuple(shape):
            raise EditsFileError(
                f"tensor {name} has shape {tuple(tensor.shape)}; attached to this model the edit needs {tuple(shape)}"
            )


def copy_into(model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Copy saved tensors into the model's parameters of the same names (shapes checked)."""
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
