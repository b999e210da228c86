"""Where an owner is in the guided lesson, kept in their folder of the run store (as last_choice keeps the model):
a reload opens the same step."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from filelock import FileLock

from red_explorer.runs.store import check_owner

LESSON_FILE = "lesson-step.json"  # beside the owner's run folders (the store lists only run-id folders)
LESSON_LOCK = ".lesson-step.lock"


def remember_step(root: Path, owner: str, step: int | None) -> None:
    """Keep the owner's lesson step (0-based) in the run store at ``root``; None ends the lesson (nothing to reopen
    after a reload)."""
    folder = Path(root) / check_owner(owner)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with FileLock(str(folder / LESSON_LOCK), mode=0o600, thread_local=False):  # two tabs of one browser
        if step is None:
            (folder / LESSON_FILE).unlink(missing_ok=True)
            return
        temporary = folder / f".{LESSON_FILE}.{secrets.token_hex(4)}"
        temporary.write_text(json.dumps({"step": int(step)}) + "\n")
        temporary.chmod(0o600)
        os.replace(temporary, folder / LESSON_FILE)  # readers see the old step or the new one


def recall_step(root: Path, owner: str, steps: int) -> int | None:
    """The owner's lesson step, or None when they are not in the lesson (or it cannot be read); at most steps − 1."""
    try:
        step = json.loads((Path(root) / check_owner(owner) / LESSON_FILE).read_text())["step"]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return min(max(int(step), 0), steps - 1) if isinstance(step, int) else None
