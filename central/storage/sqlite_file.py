"""The SQLite database file under a running central: still there, or gone — and then what.

Theory of operation: SQLite keeps writing to the file it opened, whatever
happens to the file's *name*. Removed, the file lives on unnamed until central
closes it, and is lost then; renamed, it moves away from its write-ahead log,
which keeps the old name. Either way central would go on acknowledging writes
that a restart cannot find, and the restart would start an empty store. So:

* **Identity.** When the store opens, :func:`identity` notes the file's
  (device, inode); after every commit the writer compares the name's identity
  with it — one ``stat``, microseconds per group commit.
* **Gone.** When they differ, :func:`describe_loss` finds out what happened
  from the file central still holds open (Linux: ``/proc/self/fd``): renamed
  (and to where), removed, or replaced by another file. The store then refuses
  every write from then on (STORE_FILE_GONE, UNAVAILABLE) and keeps serving
  reads from the open file, which holds everything acknowledged.
* **Rescue.** A removed or replaced file is lost when central stops, so the
  store first copies it with SQLite's backup API (:func:`rescue`): a whole,
  consistent database beside the old name, which the error message tells the
  operator to move into place. A renamed file needs no copy: renaming it back
  reunites it with its log, before or after central stops.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from edgekv.core.errors import ErrorKind, KVError, error

FileIdentity = tuple[int, int]  # (st_dev, st_ino)
RESCUE_SUFFIX = ".rescued"
_PROC_FDS = Path("/proc/self/fd")


def identity(path: Path) -> FileIdentity | None:
    """The (device, inode) that ``path`` names now, or None when it names nothing."""
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return status.st_dev, status.st_ino


@dataclass(frozen=True)
class Loss:
    """What became of the database file: renamed (to ``renamed_to``), removed or replaced."""

    what: str
    renamed_to: Path | None = None


def describe_loss(path: Path, opened: FileIdentity) -> Loss:
    """What happened to the file central opened as ``path`` (now naming something else)."""
    now_there = path.exists()
    for link in _links_to(opened):
        if not link.endswith(" (deleted)") and Path(link) != path:
            return Loss(f"was renamed to {link}", renamed_to=Path(link))
    return Loss("was replaced by another file" if now_there else "was removed")


def _links_to(opened: FileIdentity) -> list[str]:
    """Where our open descriptors of the file ``opened`` point (Linux; elsewhere none)."""
    links = []
    with contextlib.suppress(OSError):
        for entry in _PROC_FDS.iterdir():
            with contextlib.suppress(OSError):
                status = entry.stat()
                if (status.st_dev, status.st_ino) == opened:
                    links.append(os.readlink(entry))
    return links


def rescue(database: sqlite3.Connection, path: Path) -> Path:
    """Copy everything ``database`` holds to a new file beside ``path``; that file.

    Raises sqlite3.Error or OSError when it cannot (the folder is gone too, the
    disk is full).
    """
    target = _free_name(path.with_name(path.name + RESCUE_SUFFIX))
    copy = sqlite3.connect(target)
    try:
        database.backup(copy)
    finally:
        copy.close()
    return target


def _free_name(wanted: Path) -> Path:
    """``wanted``, or ``wanted.2``, ``.3``… — never an earlier rescue's file."""
    candidate, number = wanted, 1
    while candidate.exists():
        number += 1
        candidate = wanted.with_name(f"{wanted.name}.{number}")
    return candidate


def gone_error(path: Path, loss: Loss, rescued: Path | None, why_not: str = "") -> KVError:
    """The error every write gets once the database file is gone: what happened, what to do."""
    if loss.renamed_to is not None:
        remedy = f"Rename it back to {path}, and restart central."
    elif rescued is not None:
        remedy = (
            f"Everything central acknowledged is saved in {rescued}: stop central, move that "
            f"file to {path}, remove {path}-wal and {path}-shm if they are there, and start "
            "central again."
        )
    else:
        remedy = (
            f"Central could not save a copy of it ({why_not}): restore the file from a "
            "backup, and restart central."
        )
    return error(ErrorKind.STORE_FILE_GONE, path=path, what=loss.what, remedy=remedy)
