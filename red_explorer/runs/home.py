"""Where the app's home (run store and all) lives: $RED_EXPLORER_HOME, a Space's persistent storage, or ~/.cache."""

from __future__ import annotations

import os
from pathlib import Path

SPACE_DATA = Path("/data")  # where a Space mounts persistent storage
SPACE_SUBFOLDER = "red_explorer"


def on_a_space() -> bool:
    """Whether this process runs on a hosted Space ($SPACE_ID set)."""
    return bool(os.environ.get("SPACE_ID"))


def space_home() -> Path | None:
    """``/data/red_explorer`` on a Space whose persistent storage is mounted and writable, else None."""
    if on_a_space() and SPACE_DATA.is_dir() and os.access(SPACE_DATA, os.W_OK | os.X_OK):
        return SPACE_DATA / SPACE_SUBFOLDER
    return None


def restart_warning(home: Path) -> str | None:
    """What to tell the user on a Space whose runs under ``home`` vanish on restart; None where they are kept."""
    if not on_a_space() or space_home() is not None and home.resolve().is_relative_to(SPACE_DATA.resolve()):
        return None
    return (
        "⚠ This Space has no persistent storage, so your runs **vanish when the Space restarts** (after an update, "
        "a crash or a sleep). Download the ones you want to keep (**Download edits**): the zip loads back here "
        "with *Load edits from a zip*, or in Python."
    )


def default_home() -> Path:
    """$RED_EXPLORER_HOME (`~` expanded), else a Space's /data/red_explorer, else ~/.cache/red_explorer."""
    home = os.environ.get("RED_EXPLORER_HOME") or space_home() or Path.home() / ".cache" / "red_explorer"
    return Path(home).expanduser()
