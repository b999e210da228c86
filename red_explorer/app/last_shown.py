"""What a tab last showed (generations, a strip, plots as JSON), kept in the owner's folder of the run store as
last_choice keeps the model: a reload shows it again without computing anything."""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path

from filelock import FileLock

from red_explorer.runs.store import check_owner

SHOWN_FILE = "last-shown-{tab}.json"  # beside the owner's run folders (the store lists only run-id folders)
SHOWN_LOCK = ".last-shown.lock"
MAX_SHOWN_BYTES = 2_000_000  # a larger result is not kept: after a reload that tab starts empty
TAB_NAME = re.compile(r"[a-z]+")


def _path(root: Path, owner: str, tab: str) -> Path:
    if not TAB_NAME.fullmatch(tab):
        raise ValueError(f"a tab name is lower-case letters only, not {tab!r}")
    return Path(root) / check_owner(owner) / SHOWN_FILE.format(tab=tab)


def keep_shown(root: Path, owner: str, tab: str, shown: dict) -> None:
    """Keep ``shown`` (JSON values by output name) as what the owner's ``tab`` shows now, over what it showed
    before under the same names; written whole, owner-only. A result past ``MAX_SHOWN_BYTES`` is not kept."""
    path = _path(root, owner, tab)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with FileLock(str(path.parent / SHOWN_LOCK), mode=0o600, thread_local=False):  # two tabs of one browser
        text = json.dumps(recall_shown(root, owner, tab) | shown)
        if len(text) > MAX_SHOWN_BYTES:
            return
        temporary = path.parent / f".{path.name}.{secrets.token_hex(4)}"
        temporary.write_text(text)
        temporary.chmod(0o600)
        os.replace(temporary, path)  # readers see the old result or the new one, never half of one


def recall_shown(root: Path, owner: str, tab: str) -> dict:
    """What the owner's ``tab`` last showed, by output name; empty when nothing was kept (or it cannot be read)."""
    try:
        shown = json.loads(_path(root, owner, tab).read_text())
    except (OSError, ValueError):
        return {}
    return shown if isinstance(shown, dict) else {}
