"""What the CLI commands share for their output: JSON on stdout and output folders."""

from __future__ import annotations

import json
from pathlib import Path


def print_json(value) -> None:
    print(json.dumps(value, indent=2, default=str))


def ensure_directory(path: str) -> Path:
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory
