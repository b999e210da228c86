"""Runs shared by link: an unguessable token on disk that opens one run of one owner, read-only, until revoked."""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from red_explorer.runs.record import RunRecord
from red_explorer.runs.store import RunNotFoundError, RunStore, check_owner

SHARES_FOLDER = ".shares"  # in the store's root: never an owner's folder (owner keys start alphanumeric)
TOKEN_BYTES = 32  # 256 random bits: a link cannot be guessed
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")  # what secrets.token_urlsafe(TOKEN_BYTES) makes
GONE = "this share link was revoked by its owner or never existed: ask the run's owner for a new link"


class ShareNotFoundError(ValueError):
    """No active share of that token (revoked, its run deleted, or never made)."""


@dataclass(frozen=True)
class Share:
    """One link: ``token`` opens the run ``run_id`` of ``owner`` (whose key never leaves the server)."""

    token: str
    owner: str
    run_id: str
    created: str


class Shares:
    """The share links of a run store: ``<root>/.shares/<token>.json`` (owner-only permissions), each written
    atomically under the store's lock, so links survive a restart and a revoke or a deleted run ends them at once.
    """

    def __init__(self, store: RunStore):
        self.store = store
        self.folder = store.root / SHARES_FOLDER

    def create(self, owner: str, run_id: str) -> Share:
        """A new link to the owner's run ``run_id`` (a RunNotFoundError when there is no such run)."""
        with self.store._locked():
            self.store.get(owner, run_id)
            share = Share(secrets.token_urlsafe(TOKEN_BYTES), owner, run_id, datetime.now(UTC).isoformat())
            self.folder.mkdir(mode=0o700, exist_ok=True)
            _write_private(self._path(share.token), asdict(share))
        return share

    def resolve(self, token: str) -> RunRecord:
        """The run a link opens; a ShareNotFoundError that says to ask for a new link when it is not active."""
        share = self._read(token)
        if share is None:
            raise ShareNotFoundError(GONE)
        try:
            return self.store.get(share.owner, share.run_id)
        except RunNotFoundError as error:
            raise ShareNotFoundError(GONE) from error

    def list(self, owner: str) -> list[Share]:
        """The owner's active links, oldest first."""
        check_owner(owner)
        if not self.folder.is_dir():
            return []
        runs = {record.id for record in self.store.list(owner)}  # a deleted run's links open nothing: not listed
        found = [self._read(path.stem) for path in self.folder.glob("*.json")]
        shares = [share for share in found if share and share.owner == owner and share.run_id in runs]
        return sorted(shares, key=lambda share: share.created)

    def revoke(self, owner: str, token: str) -> Share:
        """End one of the owner's links (anyone else's token, or an unknown one, is a ShareNotFoundError)."""
        with self.store._locked():
            share = self._read(token)
            if share is None or share.owner != owner:
                raise ShareNotFoundError(f"no active share link {token[:8]!r}… of yours: it may be revoked already")
            self._path(token).unlink(missing_ok=True)
        return share

    def revoke_run(self, owner: str, run_id: str) -> int:
        """End every link to one run (its deletion does); returns how many."""
        with self.store._locked():
            doomed = [share for share in self.list(owner) if share.run_id == run_id]
            for share in doomed:
                self._path(share.token).unlink(missing_ok=True)
        return len(doomed)

    def _path(self, token: str) -> Path:
        return self.folder / f"{token}.json"

    def _read(self, token: str) -> Share | None:
        if not isinstance(token, str) or not TOKEN_PATTERN.fullmatch(token):
            return None
        try:
            return Share(**json.loads(self._path(token).read_text()))
        except (OSError, ValueError, TypeError):
            return None


def _write_private(path: Path, value: dict) -> None:
    """Write ``path`` (mode 0600) through a temporary file and a rename: readers see no file or the whole file."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(handle, "w") as file:
        file.write(json.dumps(value, indent=2) + "\n")
    os.replace(temporary, path)
