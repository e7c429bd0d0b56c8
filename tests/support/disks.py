"""Small disks to fill: a tmpfs of a few MiB mounted for one test, and a way to fill it.

Mounting needs root. CI runs as root and must run these tests, so there a
test that cannot mount fails (:func:`cannot_run`); elsewhere it is skipped,
saying why.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def cannot_run(reason: str) -> None:
    """Skip outside CI; in CI (which runs as root) a test that cannot run fails."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI runs as root and must run this test)")
    pytest.skip(reason)


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        cannot_run(f"{what} needs root")


@contextmanager
def small_disk(folder: Path, size_bytes: int) -> Iterator[Path]:
    """``folder`` on a tmpfs of ``size_bytes`` of its own; unmounted afterwards."""
    require_root("mounting a small disk")
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0700", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        cannot_run(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        # Lazily, should a process still hold a file there: it goes when they let go.
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", str(folder)], check=True)


def fill(folder: Path) -> Path:
    """Write a file in ``folder`` until its file system is full, to the last byte; the file."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (b"\0" * 65536, b"\0" * 512, b"\0"):
            while True:
                try:
                    os.write(fd, chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return filler
