"""The llama.cpp control-vector file: a GGUF holding one F32 vector ``direction.N`` per steered layer.

As llama.cpp reads it (``common_control_vector_load_one`` in common/common.cpp, ``llama_adapter_cvec``
in src/llama-adapter.cpp): every tensor must be named ``direction.N`` with N ≥ 1 (``direction.0``
is rejected: layer 0 is never steered), be 1-D F32 and have the same length n_embd; tensors of the
same N are summed, each times its file's strength; ``tensors[N]`` is added to the output of
decoder layer N (0-based), after the block's last residual add. The loader reads no metadata; the
writers (llama.cpp's cvector-generator, repeng's ``ControlVector.export_gguf``) set
``general.architecture = "controlvector"``, ``controlvector.model_hint`` (the model's architecture
name) and ``controlvector.layer_count`` (the number of directions), as this module does.
"""

from __future__ import annotations

import math
import os
import re
import struct
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

ARCHITECTURE = "controlvector"
ARCHITECTURE_KEY = "general.architecture"
MODEL_HINT_KEY = f"{ARCHITECTURE}.model_hint"
LAYER_COUNT_KEY = f"{ARCHITECTURE}.layer_count"
DIRECTION = re.compile(r"direction\.([0-9]+)")  # ASCII digits only, as llama.cpp parses them
MAX_MAGNITUDE = 1e4  # a larger value in a direction is a broken or hostile file, not a steering vector
GGUF_MAGIC = b"GGUF"
MIN_ENTRY_BYTES = 12  # the least a key-value pair or a tensor description takes (a length and a type)
READ_ERRORS = (ValueError, OSError, IndexError, KeyError, OverflowError, MemoryError, TypeError, struct.error)


@dataclass
class ControlVectorFile:
    """A control vector: ``directions[N]`` (n_embd,) is added to the residual stream after decoder layer N."""

    model_hint: str
    directions: dict[int, torch.Tensor] = field(default_factory=dict)
    layer_count: int | None = None  # as recorded in the file (llama.cpp does not read it)

    @property
    def width(self) -> int:
        return next(iter(self.directions.values())).shape[0]


def check_directions(directions: Mapping[int, torch.Tensor]) -> None:
    """What llama.cpp accepts: layers N ≥ 1, 1-D vectors of one length, finite values."""
    if not directions:
        raise ValueError("a control vector needs at least one direction")
    widths = set()
    for layer, direction in directions.items():
        if isinstance(layer, bool) or not isinstance(layer, int) or layer < 1:
            raise ValueError(
                f"direction.{layer}: llama.cpp steers layers 1 and up (it rejects direction.0 and keeps no layer 0)"
            )
        if direction.dim() != 1:
            raise ValueError(f"direction.{layer} has shape {tuple(direction.shape)}; a direction is 1-D (n_embd,)")
        if not torch.isfinite(direction).all():
            raise ValueError(f"direction.{layer} holds NaN or infinite values")
        widths.add(direction.shape[0])
    if len(widths) != 1:
        raise ValueError(f"the directions have different lengths {sorted(widths)}; all must be n_embd")


def write_control_vector(path: str | Path, vector: ControlVectorFile) -> Path:
    """Write the GGUF (directions in layer order, F32), through a temporary file renamed onto ``path``."""
    import gguf

    check_directions(vector.directions)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        writer = gguf.GGUFWriter(name, ARCHITECTURE)  # sets general.architecture
        writer.add_string(MODEL_HINT_KEY, vector.model_hint)
        writer.add_int32(LAYER_COUNT_KEY, len(vector.directions))
        for layer in sorted(vector.directions):
            values = vector.directions[layer].detach().float().cpu().numpy().astype(np.float32)
            writer.add_tensor(f"direction.{layer}", values)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(name, path)
    finally:
        Path(name).unlink(missing_ok=True)
    return path


def read_control_vector(path: str | Path) -> ControlVectorFile:
    """Read a control-vector GGUF with llama.cpp's rules (same-layer directions are summed).

    Every malformed file (truncated, counts or lengths past its end, a tensor not named
    ``direction.N`` with ASCII digits, values that are not finite or exceed ±``MAX_MAGNITUDE``)
    raises one ValueError that says what is wrong.
    """
    import gguf

    architecture, model_hint, count, tensors = _parse(Path(path))
    if architecture not in (None, ARCHITECTURE):
        raise ValueError(f"{path} is a '{architecture}' GGUF (a model or adapter), not a control vector")
    directions: dict[int, torch.Tensor] = {}
    for tensor, values in tensors:
        match = DIRECTION.fullmatch(tensor.name)
        if match is None:
            raise ValueError(f"{path}: tensor {tensor.name!r} is not named direction.N as llama.cpp requires")
        if tensor.tensor_type != gguf.GGMLQuantizationType.F32 or len(tensor.shape) != 1:
            raise ValueError(f"{path}: {tensor.name} must be a 1-D F32 tensor (llama.cpp reads no other)")
        layer = int(match.group(1))
        directions[layer] = directions[layer] + values if layer in directions else values
    check_directions(directions)
    for layer, values in directions.items():
        largest = values.abs().max().item()
        if largest > MAX_MAGNITUDE:
            raise ValueError(
                f"{path}: direction.{layer} holds a value of {largest:.3g}, past the ±{MAX_MAGNITUDE:g} that a "
                "steering vector stays within (a residual stream's values are of order 1-100)"
            )
    return ControlVectorFile(model_hint or "", directions, count)


def _parse(path: Path) -> tuple[str | None, str | None, int | None, list]:
    """(architecture, model hint, layer count, [(tensor, its values)]) as the file holds them, or one ValueError."""
    import gguf

    _check_header(path)
    try:
        reader = gguf.GGUFReader(str(path))
        tensors = []
        for tensor in reader.tensors:
            values = None  # only F32 is read; read_control_vector refuses the other types by name
            if tensor.tensor_type == gguf.GGMLQuantizationType.F32:
                values = torch.from_numpy(np.array(tensor.data, dtype=np.float32).reshape(-1))
                if values.numel() != int(tensor.n_elements):
                    raise ValueError(f"{tensor.name} holds {values.numel()} of its {tensor.n_elements} values")
            tensors.append((tensor, values))
        fields = _string(reader, ARCHITECTURE_KEY), _string(reader, MODEL_HINT_KEY), _number(reader, LAYER_COUNT_KEY)
    except READ_ERRORS as error:  # the gguf reader's own failures on a broken file, of any type
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{path} is not a readable GGUF file: it is truncated or malformed ({reason})") from None
    return (*fields, tensors)


def _check_header(path: Path) -> None:
    """The GGUF header: magic, version, and tensor and key counts that the file's size can hold."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            header = handle.read(24)
    except OSError as error:
        raise ValueError(f"{path} cannot be read ({error.strerror or error})") from None
    if len(header) < 24 or header[:4] != GGUF_MAGIC:
        raise ValueError(f"{path} is not a GGUF file (no GGUF header): export the control vector again")
    version, tensor_count, kv_count = struct.unpack("<IQQ", header[4:])
    if version not in (2, 3):
        raise ValueError(f"{path} is GGUF version {version}; control vectors are GGUF version 2 or 3")
    for count, what in ((tensor_count, "tensors"), (kv_count, "metadata keys")):
        if count > size // MIN_ENTRY_BYTES:
            raise ValueError(
                f"{path} is not a readable GGUF file: it declares {count} {what}, more than its {size} bytes can hold"
            )


def _string(reader, key: str) -> str | None:
    entry = reader.get_field(key)
    return None if entry is None else str(entry.contents())


def _number(reader, key: str) -> int | None:
    entry = reader.get_field(key)
    value = None if entry is None else entry.contents()
    return int(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
