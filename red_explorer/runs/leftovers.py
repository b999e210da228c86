"""What crashes leave in the run store: folders of interrupted saves and deletes, and how they are cleaned."""

from __future__ import annotations

import shutil
from pathlib import Path

from filelock import FileLock, Timeout

INCOMING = ".incoming-"
DELETING = ".deleting-"
WRITER_LOCK = ".lock"  # next to an incoming folder: held by the process writing it


def writer_lock(incoming: Path) -> FileLock:
    """The lock the process writing ``incoming`` holds until its save ends."""
    return FileLock(str(incoming.with_name(incoming.name + WRITER_LOCK)), mode=0o600, thread_local=False)


def remove_leftovers(owner_folder: Path) -> None:
    """Delete what crashes left in an owner's folder (never listed, yet taking space).

    A ``.deleting-*`` folder was already taken out of the listings, so it goes whoever removes it.
    An ``.incoming-*`` folder goes only when its writer's lock is free: its writer has ended (a
    crash or a finished save), never while a live process is still writing it.
    """
    for child in owner_folder.glob(f"{DELETING}*"):
        shutil.rmtree(child, ignore_errors=True)
    names = {child.name.removesuffix(WRITER_LOCK) for child in owner_folder.glob(f"{INCOMING}*")}
    for name in sorted(names):  # a folder, its writer's lock file, or a lock file a crash left alone
        writer = writer_lock(owner_folder / name)
        try:
            writer.acquire(timeout=0)
        except (Timeout, OSError):  # being written now, or a store this process may only read
            continue
        try:
            shutil.rmtree(owner_folder / name, ignore_errors=True)
        finally:
            writer.release()
            Path(writer.lock_file).unlink(missing_ok=True)
