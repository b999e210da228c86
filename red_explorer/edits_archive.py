"""Edits as zip files: write a folder into a zip, unpack an uploaded zip safely, and a snippet to apply it."""

from __future__ import annotations

import copy
import stat
import zipfile
from pathlib import Path, PurePosixPath

from torch import nn

from .merge import MergeError, save_merged
from .models import DEFAULT_CAUSAL_HUB_ID, DEFAULT_ENCODER_HUB_ID
from .saving import EditsFileError

ALLOWED_FILES = frozenset(
    {
        "red_config.json",
        "edits.safetensors",
        "metrics.json",
        "adapter_config.json",
        "adapter_model.safetensors",
        "README.md",
    }
)
MAX_ZIP_BYTES = 100_000_000
MAX_UNPACKED_BYTES = 300_000_000
MAX_MEMBERS = 16
CHUNK = 1 << 20


def zip_folder(folder: str | Path, archive: str | Path, compress: bool = True) -> Path:
    """Write every file of ``folder`` (flat) into ``archive``; weights need no compression (``compress``)."""
    folder, archive = Path(folder), Path(archive)
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(archive, "w", compression=method) as bundle:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                bundle.write(path, path.relative_to(folder).as_posix())
    return archive


def write_merged(model: nn.Module, method: str, target: Path, tokenizer) -> Path:
    """A plain checkpoint folder of ``model`` with its method folded into the weights (MergeError for TARE)."""
    if method == "red":
        return save_merged(model, target, tokenizer)
    if method == "tare":
        raise MergeError(
            "TARE edits cannot be merged into the weights: each token picks its own mix of editors, so "
            "there is no single W' = diag(scale)·W. Download the edits and attach them at load time."
        )
    plain = copy.deepcopy(model).merge_and_unload() if method == "lora" else model
    plain.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def _member_name(info: zipfile.ZipInfo) -> str:
    """The file name of a zip member, or an EditsFileError for anything unsafe or unexpected."""
    name = info.filename
    path = PurePosixPath(name)
    if "\\" in name or path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise EditsFileError(f"the zip holds an unsafe path {name!r}; it was not unpacked")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise EditsFileError(f"the zip holds a symbolic link {name!r}; it was not unpacked")
    if len(path.parts) > 2:
        raise EditsFileError(f"the zip nests {name!r} too deep: put the edit files at its top or in one folder")
    if path.name not in ALLOWED_FILES:
        raise EditsFileError(
            f"the zip holds {path.name!r}, which is not part of an edits folder "
            f"(expected {', '.join(sorted(ALLOWED_FILES))}); pickled weights are never loaded"
        )
    return path.name


def _checked_members(bundle: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    files = [info for info in bundle.infolist() if not info.is_dir()]
    if not files:
        raise EditsFileError("the zip is empty: export the edits again")
    if len(files) > MAX_MEMBERS:
        raise EditsFileError(f"the zip holds {len(files)} files; an edits folder has at most {MAX_MEMBERS}")
    members: dict[str, zipfile.ZipInfo] = {}
    for info in files:
        name = _member_name(info)
        if name in members:
            raise EditsFileError(f"the zip holds {name!r} twice: keep one edits folder per zip")
        members[name] = info
    if sum(info.file_size for info in files) > MAX_UNPACKED_BYTES:
        raise EditsFileError(f"the zip unpacks to more than {MAX_UNPACKED_BYTES // 1_000_000} MB; edits are small")
    return members


def safe_extract(archive: str | Path, target: str | Path) -> Path:
    """Unpack an uploaded edits zip into ``target`` (flat), refusing unsafe paths, unknown files and bombs."""
    archive, target = Path(archive), Path(target)
    if archive.stat().st_size > MAX_ZIP_BYTES:
        raise EditsFileError(f"{archive.name} is larger than {MAX_ZIP_BYTES // 1_000_000} MB; edits are small")
    if not zipfile.is_zipfile(archive):
        raise EditsFileError(f"{archive.name} is not a zip file: upload the .zip that 'Download edits' gave you")
    target.mkdir(parents=True, exist_ok=True)
    written = 0
    with zipfile.ZipFile(archive) as bundle:
        for name, info in _checked_members(bundle).items():
            with bundle.open(info) as source, open(target / name, "wb") as sink:
                while chunk := source.read(CHUNK):
                    written += len(chunk)
                    if written > MAX_UNPACKED_BYTES:  # the sizes in the header can lie
                        raise EditsFileError("the zip unpacks to more than it declares; it was refused")
                    sink.write(chunk)
    return target


def _hub_name(spec: str, task: str) -> str:
    if spec == "default":
        return DEFAULT_ENCODER_HUB_ID if task == "classification" else DEFAULT_CAUSAL_HUB_ID
    return DEFAULT_ENCODER_HUB_ID if spec == "minilm" else spec


LIBRARY_SNIPPET = """\
# Apply {zip_name} ({label}) to its base model with red_explorer.
import zipfile

from red_explorer.methods import load_method
from red_explorer.models import load_model

zipfile.ZipFile("{zip_name}").extractall("{folder}")
loaded = load_model({spec!r}, task={task!r}{labels})
model, spec = load_method(loaded.model, "{folder}")
print("loaded", spec.label)
"""

PLAIN_SNIPPET = """
# The same without red_explorer: RED is h' = scale * h + bias on the output of each edited module.
from safetensors.torch import load_file
from transformers import {auto_class}

plain = {auto_class}.from_pretrained({hub!r}{labels_kwarg})
vectors = load_file("{folder}/edits.safetensors")


def red_hook(module, inputs, output, scale=None, bias=None):
    if scale is not None:
        output = output * scale.to(output.dtype)
    return output if bias is None else output + bias.to(output.dtype)


for name, module in plain.named_modules():
    scale, bias = vectors.get(name + ".red_scale"), vectors.get(name + ".red_bias")
    if scale is not None or bias is not None:
        module.register_forward_hook(lambda m, i, o, s=scale, b=bias: red_hook(m, i, o, s, b))
"""


def python_snippet(zip_name: str, label: str, method: str, spec: str, task: str, num_labels: int | None) -> str:
    """Copy-paste Python that unpacks ``zip_name`` and applies it; RED also gets a plain-transformers version."""
    folder = Path(zip_name).stem
    labels = f", num_labels={num_labels}" if task == "classification" and num_labels else ""
    text = LIBRARY_SNIPPET.format(zip_name=zip_name, label=label, folder=folder, spec=spec, task=task, labels=labels)
    if method == "red":
        auto_class = "AutoModelForSequenceClassification" if task == "classification" else "AutoModelForCausalLM"
        text += PLAIN_SNIPPET.format(
            auto_class=auto_class, hub=_hub_name(spec, task), folder=folder, labels_kwarg=labels
        )
        if task == "classification":
            text += "# (the trained classification head is in the same file: copy it into plain's head.)\n"
    return text
