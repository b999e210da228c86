"""Saved RED runs read without a model (record + vectors), and derived vectors written back as an edits folder."""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from red_explorer.core.checkpoint import CONFIG_FILE, TENSORS_FILE, EditsFileError, read_record, read_tensors
from red_explorer.core.red.config import RedConfig
from red_explorer.core.red.edit import BIAS, SCALE
from red_explorer.core.registry import detect_method, get_method
from red_explorer.version import __version__


@dataclass
class RedRun:
    """A RED edits folder: its record (``red_config.json``) and its vectors by state_dict name."""

    directory: Path
    record: dict
    vectors: dict[str, torch.Tensor]

    @property
    def site_names(self) -> list[str]:
        return list(self.record.get("modules", []))

    def widths(self) -> dict[str, int]:
        """The vector length of every edited module."""
        return {name.rpartition(".")[0]: vector.shape[-1] for name, vector in self.vectors.items()}


def read_red_run(directory: str | Path) -> RedRun:
    """The record and vectors of a RED edits folder; refuses other methods and folders with a head."""
    directory = Path(directory)
    method = detect_method(directory)
    if method != "red":
        raise EditsFileError(
            f"{directory} holds {get_method(method).title} edits; this works on RED runs (scale and bias vectors) only"
        )
    record = read_record(directory)
    if record.get("head_parameters"):
        raise EditsFileError(
            f"{directory} carries a classification head, which has no strength or arithmetic: use a causal-LM run"
        )
    vectors = read_tensors(directory)
    modules = set(record.get("modules", []))
    for name, vector in vectors.items():
        site, _, kind = name.rpartition(".")
        if kind not in (SCALE, BIAS) or site not in modules:
            raise EditsFileError(f"{directory}: tensor {name!r} is not a RED vector of a recorded module")
        if not torch.isfinite(vector).all():
            raise EditsFileError(f"{directory}: tensor {name} holds NaN or infinite values")
    return RedRun(directory, record, vectors)


def check_compatible(runs: Sequence[RedRun]) -> None:
    """Runs that can be combined: same architecture, same edited modules, same widths (a ValueError says why not)."""
    first = runs[0]
    for run in runs[1:]:
        if run.record.get("model_type") != first.record.get("model_type"):
            raise ValueError(
                f"{run.directory} was trained on a '{run.record.get('model_type')}' model and {first.directory} "
                f"on a '{first.record.get('model_type')}' model: only runs of the same base combine"
            )
        if set(run.site_names) != set(first.site_names):
            extra = sorted(set(run.site_names) ^ set(first.site_names))
            raise ValueError(
                f"{run.directory} and {first.directory} edit different modules (e.g. {extra[0]}): "
                "only runs with the same sites and layers combine; train them with the same --sites and --layers"
            )
        if run.widths() != first.widths():
            raise ValueError(f"{run.directory} and {first.directory} have vectors of different widths: other bases")
        if run.record.get("base_model_config_sha256") != first.record.get("base_model_config_sha256"):
            warnings.warn(
                f"{run.directory} and {first.directory} record different base model configs "
                f"({run.record.get('base_model')} vs {first.record.get('base_model')}); combining them anyway",
                stacklevel=2,
            )


def combinable(first: RedRun, second: RedRun) -> bool:
    """Whether ``check_compatible`` lets the two runs combine (a different base config record only warns)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            check_compatible([first, second])
        except ValueError:
            return False
    return True


def write_red_run(directory: str | Path, vectors: Mapping[str, torch.Tensor], source: RedRun, derivation: dict) -> Path:
    """Write ``vectors`` as a normal RED edits folder for the base and sites of ``source``.

    The record is the source's, with the variant the vectors have (scale and/or bias) and a
    ``derived_from`` entry (``derivation``: the operation, its inputs and weights). The folder loads
    with ``load_edits`` and merges like a trained run.
    """
    has_scale = any(name.endswith(f".{SCALE}") for name in vectors)
    has_bias = any(name.endswith(f".{BIAS}") for name in vectors)
    section = {key: value for key, value in source.record["red"].items() if key != "variant"}
    config = RedConfig.from_dict(section | {"use_scale": has_scale, "use_bias": has_bias})
    kinds = [kind for kind, present in ((SCALE, has_scale), (BIAS, has_bias)) if present]
    expected = [f"{site}.{kind}" for site in source.site_names for kind in kinds]
    if set(expected) != set(vectors):
        raise ValueError(f"the vectors do not cover every edited module of {source.directory} with {kinds}")
    tensors = {name: vectors[name].detach().float().cpu().contiguous() for name in expected}
    record = source.record | {
        "library_version": __version__,
        "red": config.to_dict() | {"variant": config.variant},
        "hidden_size": max(tensor.shape[-1] for tensor in tensors.values()),
        "derived_from": derivation,
    }
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    metadata = {"format": "pt", "library": "red_explorer"}
    _write_atomically(directory / TENSORS_FILE, lambda path: save_file(tensors, str(path), metadata=metadata))
    _write_atomically(directory / CONFIG_FILE, lambda path: path.write_text(json.dumps(record, indent=2) + "\n"))
    return directory


def _write_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file renamed onto ``target``: a crash never leaves a half-written file."""
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        write(temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
