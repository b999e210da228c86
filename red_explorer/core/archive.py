"""Edits as zip files: write a folder into a zip, and unpack an uploaded zip safely."""

from __future__ import annotations

import json
import stat
import struct
import zipfile
import zlib
from itertools import chain
from pathlib import Path, PurePosixPath

from red_explorer.core.checkpoint import EditsFileError

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
MAX_TEXT_BYTES = 1_000_000  # a config, metrics.json or README: small text
MAX_TENSOR_HEADER_BYTES = 10_000_000  # a safetensors header lists names, shapes and offsets
CORRUPT = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError)  # incl. bad CRC, encrypted


def zip_folder(folder: str | Path, archive: str | Path, compress: bool = True) -> Path:
    """Write every file of ``folder`` (flat) into ``archive``; weights need no compression (``compress``)."""
    folder, archive = Path(folder), Path(archive)
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(archive, "w", compression=method) as bundle:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                bundle.write(path, path.relative_to(folder).as_posix())
    return archive


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
    """Unpack an uploaded edits zip into ``target`` (flat), refusing unsafe paths, unknown files and bombs.

    Each member is capped while it streams, whatever the zip declares: text files (configs,
    metrics, README) at ``MAX_TEXT_BYTES``, safetensors at the size their own header gives, all
    together at ``MAX_UNPACKED_BYTES``. A corrupt zip (bad CRC, broken compressed data) is an
    EditsFileError that says so.
    """
    archive, target = Path(archive), Path(target)
    if archive.stat().st_size > MAX_ZIP_BYTES:
        raise EditsFileError(f"{archive.name} is larger than {MAX_ZIP_BYTES // 1_000_000} MB; edits are small")
    if not zipfile.is_zipfile(archive):
        raise EditsFileError(f"{archive.name} is not a zip file: upload the .zip that 'Download edits' gave you")
    target.mkdir(parents=True, exist_ok=True)
    written = 0
    try:
        with zipfile.ZipFile(archive) as bundle:
            for name, info in _checked_members(bundle).items():
                with bundle.open(info) as source, open(target / name, "wb") as sink:
                    written += _copy_member(name, source, sink, MAX_UNPACKED_BYTES - written)
    except CORRUPT as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise EditsFileError(
            f"{archive.name} is a damaged zip ({reason}); it was not unpacked: download or export the edits again"
        ) from None
    return target


def _copy_member(name: str, source, sink, room: int) -> int:
    """Copy one member, refusing it once it passes its cap (its kind's, or ``room`` left of the total)."""
    chunks = iter(lambda: source.read(CHUNK), b"")
    cap = min(room, MAX_TEXT_BYTES)
    if name.endswith(".safetensors"):
        header = _safetensors_header(name, source)
        cap = min(room, _safetensors_size(name, header))
        chunks = chain([header], chunks)
    copied = 0
    for chunk in chunks:
        copied += len(chunk)
        if copied > cap:  # the sizes in the zip's header can lie
            limit = f"the {room:,} bytes left of the zip's total" if cap == room else f"{cap:,} bytes"
            raise EditsFileError(f"the zip's {name} unpacks to more than {limit}; it was refused")
        sink.write(chunk)
    return copied


def _read_exactly(source, count: int) -> bytes:
    data = b""
    while len(data) < count and (more := source.read(min(count - len(data), CHUNK))):
        data += more
    return data


def _safetensors_header(name: str, source) -> bytes:
    """The first bytes of a safetensors member: its 8-byte header length and the JSON header."""
    start = _read_exactly(source, 8)
    if len(start) < 8:
        raise EditsFileError(f"the zip's {name} is not a safetensors file (shorter than its 8-byte header length)")
    length = struct.unpack("<Q", start)[0]
    if length > MAX_TENSOR_HEADER_BYTES:
        raise EditsFileError(f"the zip's {name} is not a safetensors file (it declares a {length:,}-byte header)")
    return start + _read_exactly(source, length)


def _safetensors_size(name: str, header: bytes) -> int:
    """The size a safetensors file must have: 8 + its header's length + the end of its last tensor."""
    try:
        tensors = json.loads(header[8:])
        ends = [int(entry["data_offsets"][1]) for key, entry in tensors.items() if key != "__metadata__"]
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        raise EditsFileError(f"the zip's {name} is not a safetensors file (no readable header)") from None
    return len(header) + max(ends, default=0)
