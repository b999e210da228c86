"""The owners of a run store as its operator sees them: runs, bytes and last write each; pruning the idle ones.

A Space keeps every visitor's runs under a random key their browser holds. A key whose browser never comes
back (cleared storage, a one-off API client) leaves its runs behind; only the operator, asked explicitly
(``red-explorer runs prune``), removes them. Named owners (the command line's "local", the gallery) are never
pruned.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from red_explorer.runs.leftovers import DELETING
from red_explorer.runs.shares import Shares
from red_explorer.runs.store import OWNER_PATTERN, RunStore, folder_bytes

VISITOR_KEY = re.compile(r"[0-9a-f]{32}")  # the random keys the app makes for browsers


@dataclass(frozen=True)
class OwnerUsage:
    """One owner's folder: how many runs, its bytes (runs, kept upload, last choice), and its newest write."""

    owner: str
    runs: int
    bytes: int
    last_write: datetime

    @property
    def is_visitor(self) -> bool:
        return VISITOR_KEY.fullmatch(self.owner) is not None


def _last_write(folder: Path) -> datetime:
    newest = max([folder.stat().st_mtime, *(path.stat().st_mtime for path in folder.rglob("*"))])
    return datetime.fromtimestamp(newest, UTC)


def owner_usages(store: RunStore) -> list[OwnerUsage]:
    """Every owner folder of ``store``, the largest first."""
    if not store.root.is_dir():
        return []
    folders = [path for path in store.root.iterdir() if path.is_dir() and OWNER_PATTERN.fullmatch(path.name)]
    usages = [
        OwnerUsage(path.name, len(store.list(path.name)), folder_bytes(path), _last_write(path)) for path in folders
    ]
    return sorted(usages, key=lambda usage: (-usage.bytes, usage.owner))


def idle_visitors(store: RunStore, idle_days: float, now: datetime | None = None) -> list[OwnerUsage]:
    """The visitors' folders with nothing written for ``idle_days`` days or more."""
    if idle_days <= 0:
        raise ValueError(f"idle days must be positive, got {idle_days:g}")
    cutoff = (now or datetime.now(UTC)) - timedelta(days=idle_days)
    return [usage for usage in owner_usages(store) if usage.is_visitor and usage.last_write <= cutoff]


def remove_owner(store: RunStore, owner: str) -> None:
    """Delete an owner's folder (runs, kept upload, last choice) and end its share links."""
    shares = Shares(store)
    for share in shares.list(owner):
        shares.revoke(owner, share.token)
    folder = store.root / owner
    with store._locked():
        doomed = folder.with_name(f"{DELETING}{owner}")
        folder.rename(doomed)  # gone from every listing at once, even if the removal is interrupted
    shutil.rmtree(doomed, ignore_errors=True)
