"""Free disk space as a limit of the run store: a save that would leave less than a reserve free is refused."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from red_explorer.runs.size import human_bytes

DEFAULT_RESERVE_MB = 200  # left free for the app's uploads, downloads and caches


class DiskFullError(ValueError):
    """Keeping more would leave the disk of the run store with less than the reserve free; nothing was deleted."""


def reserve_bytes() -> int:
    """The free space a save must leave ($RED_EXPLORER_MIN_FREE_MB, default 200 MB)."""
    text = os.environ.get("RED_EXPLORER_MIN_FREE_MB") or str(DEFAULT_RESERVE_MB)
    try:
        megabytes = float(text)
    except ValueError as error:
        raise ValueError(f"RED_EXPLORER_MIN_FREE_MB must be a number of megabytes, got {text!r}") from error
    return int(max(0.0, megabytes) * 1_000_000)


def free_bytes(folder: Path) -> int:
    """Free bytes on the disk holding ``folder`` (or its nearest existing parent)."""
    existing = Path(folder).absolute()
    while not existing.exists():
        existing = existing.parent
    return shutil.disk_usage(existing).free


def check_disk_room(
    folder: Path, needed: int, doing: str = "saving this run needs", again: str = "save again", written: int = 0
) -> None:
    """A DiskFullError when ``needed`` bytes under ``folder`` would leave less than the reserve free.

    ``written`` of them may already be on the disk (a run built in its incoming folder): they count as free.
    """
    free, reserve = free_bytes(folder) + written, reserve_bytes()
    if free - needed >= reserve:
        return
    raise DiskFullError(
        f"{doing} {human_bytes(needed)}, but the disk holding the run store has {human_bytes(free)} free and "
        f"{human_bytes(reserve)} must stay free for the app; nothing was deleted. Delete runs you no longer "
        f"need (Export tab, or `red-explorer runs rm`), or free disk space, and {again}."
    )
