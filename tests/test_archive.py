"""Unpacking an uploaded edits zip: per-member caps while streaming, and damaged zips said plainly."""

import json
import struct
import zipfile

import pytest
import torch
from safetensors.torch import save

from red_explorer.core.archive import MAX_TEXT_BYTES, safe_extract
from red_explorer.core.checkpoint import EditsFileError

CONFIG = json.dumps({"method": "red"}).encode()
TENSORS = save({"scale": torch.ones(64), "bias": torch.zeros(64)})


def make_zip(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return path


def declared_size_lie(path, declared: int):
    """Rewrite every size the zip declares for its one member (local header and central directory) to ``declared``."""
    data = bytearray(path.read_bytes())
    local, central = data.index(b"PK\x03\x04"), data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, declared)
    struct.pack_into("<I", data, central + 24, declared)
    path.write_bytes(bytes(data))
    return path


def test_good_edits_unpack_whole(tmp_path):
    archive = make_zip(tmp_path / "ok.zip", {"red_config.json": CONFIG, "edits.safetensors": TENSORS})
    folder = safe_extract(archive, tmp_path / "out")
    assert (folder / "edits.safetensors").read_bytes() == TENSORS and (
        folder / "red_config.json"
    ).read_bytes() == CONFIG


def test_a_member_that_inflates_past_what_it_declares_is_a_damaged_zip(tmp_path):
    bomb = make_zip(tmp_path / "bomb.zip", {"edits.safetensors": bytes(40_000_000)})
    declared_size_lie(bomb, 1_000)
    assert bomb.stat().st_size < 100_000 and zipfile.ZipFile(bomb).infolist()[0].file_size == 1_000
    with pytest.raises(EditsFileError, match=r"bomb.zip is a damaged zip \(.*\); it was not unpacked"):
        safe_extract(bomb, tmp_path / "out")


def test_a_padded_config_is_refused_at_its_kind_cap(tmp_path):
    padded = CONFIG[:-1] + b" " * (2 * MAX_TEXT_BYTES) + b"}"
    archive = make_zip(tmp_path / "padded.zip", {"red_config.json": padded, "edits.safetensors": TENSORS})
    with pytest.raises(EditsFileError, match=r"red_config.json unpacks to more than 1,000,000 bytes"):
        safe_extract(archive, tmp_path / "out")


def test_tensors_past_their_own_header_are_refused(tmp_path):
    archive = make_zip(tmp_path / "long.zip", {"red_config.json": CONFIG, "edits.safetensors": TENSORS + bytes(5_000)})
    with pytest.raises(EditsFileError, match=f"edits.safetensors unpacks to more than {len(TENSORS):,} bytes"):
        safe_extract(archive, tmp_path / "out")
    header = struct.pack("<Q", 2**40) + b"{}"
    huge = make_zip(tmp_path / "huge.zip", {"edits.safetensors": header})
    with pytest.raises(EditsFileError, match=r"not a safetensors file \(it declares a 1,099,511,627,776-byte header\)"):
        safe_extract(huge, tmp_path / "out")


def test_a_damaged_member_crc_is_said_plainly(tmp_path):
    archive = make_zip(tmp_path / "crc.zip", {"red_config.json": CONFIG})
    data = bytearray(archive.read_bytes())
    struct.pack_into("<I", data, data.index(b"PK\x03\x04") + 14, 0)  # a wrong CRC-32 in both headers
    struct.pack_into("<I", data, data.index(b"PK\x01\x02") + 16, 0)
    archive.write_bytes(bytes(data))
    with pytest.raises(EditsFileError, match="crc.zip is a damaged zip"):
        safe_extract(archive, tmp_path / "out")
