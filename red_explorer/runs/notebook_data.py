"""A run's data file in its notebook: a bundled sample by name, a small file embedded, or a file put beside it."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from pathlib import Path

from red_explorer.data.bundled import SAMPLE_FOLDER
from red_explorer.runs.record import file_sha256

EMBED_LIMIT_BYTES = 5_000_000  # a data file up to this size travels inside the notebook


def locate(fingerprint: dict, candidates: Iterable[str | Path] = ()) -> Path | None:
    """The file ``fingerprint`` (``data_fingerprint``) describes: a bundled sample or one of ``candidates``
    with the same size and sha256; None when none is."""
    samples = sorted(SAMPLE_FOLDER.iterdir())
    for path in [*samples, *map(Path, candidates)]:
        same_size = path.is_file() and path.stat().st_size == fingerprint["bytes"]
        if same_size and file_sha256(path) == fingerprint["sha256"]:
            return path
    return None


def is_sample(path: Path | None) -> bool:
    return path is not None and path.resolve().parent == SAMPLE_FOLDER.resolve()


def data_lines(variable: str, fingerprint: dict, path: Path | None) -> list[str]:
    """Python lines that set ``variable`` to the path of the run's data file, then check its sha256.

    A bundled sample is named in the package; a file of at most EMBED_LIMIT_BYTES is embedded and written
    next to the notebook when it runs; otherwise the notebook asks for the file beside it.
    """
    name, digest = fingerprint["name"], fingerprint["sha256"]
    if is_sample(path):
        lines = [f"{variable} = SAMPLE_FOLDER / {path.name!r}  # a sample that ships with red_explorer"]
    elif path is not None and path.stat().st_size <= EMBED_LIMIT_BYTES:
        lines = [f"{variable} = Path({name!r})  # the run's data, embedded here: written next to this notebook"]
        lines += _embedded(variable, path.read_bytes())
    else:
        lines = [f"{variable} = Path({name!r})  # put the run's data file next to this notebook under this name"]
    return lines + [
        f"if not {variable}.is_file():",
        f'    raise FileNotFoundError(f"put the run\'s data file {{{variable}}} next to this notebook")',
        f"if file_sha256({variable}) != {digest!r}:",
        f'    print(f"note: {{{variable}}} is not the file the run trained on (another sha256): numbers will differ")',
    ]


def _embedded(variable: str, content: bytes) -> list[str]:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        encoded = base64.b64encode(content).decode("ascii")
        return ["import base64", f"{variable}.write_bytes(base64.b64decode({encoded!r}))"]
    return [f"{variable}.write_bytes({text!r}.encode('utf-8'))"]
