"""The secret the browser's owner key is encrypted with: one per app home, so a restarted app still reads the key."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from filelock import FileLock

from red_explorer.runs.home import default_home

SECRET_ENV = "RED_EXPLORER_SECRET"
SECRET_FILE = "browser-secret"  # under the app's home, readable by its owner only (0600)


def browser_secret(home: str | Path | None = None) -> str:
    """$RED_EXPLORER_SECRET, else the secret kept in ``<home>/browser-secret`` (made once, under a file lock).

    Without a secret that outlives the process, every start would pick a new one: browsers could no longer read
    their owner key and would lose sight of their runs.
    """
    if os.environ.get(SECRET_ENV):
        return os.environ[SECRET_ENV]
    folder = Path(home) if home is not None else default_home()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SECRET_FILE
    with FileLock(folder / f"{SECRET_FILE}.lock"):
        if path.is_file() and path.read_text().strip():
            path.chmod(0o600)
            return path.read_text().strip()
        secret = secrets.token_urlsafe(32)
        partial = path.with_name(f"{SECRET_FILE}.partial")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(secret)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    return secret
