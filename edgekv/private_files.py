"""Files and folders only their owner may read: state files, databases, logs.

Theory of operation: what edgekv writes about a cluster — its state file
(addresses, PIDs, command lines), central's database, every node's log —
is nobody else's business on a shared machine, so it is created with mode
0600 (folders 0700) whatever the umask, rather than readable by all as the
usual umask 022 would make it. Only what edgekv creates is made private:
a folder that exists already (a user's home, a ``--data-dir`` the user made)
keeps its mode, and a database file that exists keeps its own.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def make_private_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents, each 0700 (``mkdir -p -m 700``, but for
    every folder created, not only the last)."""
    missing = []
    while not path.exists():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:  # made meanwhile by someone else: theirs, as it is
            continue
        os.chmod(folder, DIR_MODE)  # mkdir's mode passes through the umask


def open_private(path: Path) -> int:
    """A file descriptor of ``path``, emptied for writing, readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)  # a file that existed keeps its old mode through os.open
    return fd


def write_private_text(path: Path, text: str) -> None:
    with os.fdopen(open_private(path), "w", encoding="utf-8") as out:
        out.write(text)


def create_private(path: Path) -> None:
    """Create ``path`` empty and private unless it exists (a database a user made keeps
    its mode; SQLite gives its -wal and -shm files the database file's mode)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
