"""Edits as zip files: write a folder into a zip, and unpack an uploaded zip safely."""

from __future__ import annotations

import stat
import zipfile
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
