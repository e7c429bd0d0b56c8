"""What code produced a result: the edgekv version always, the git commit when there is one.

Theory of operation: every results folder (experiments' ``run.json``, the
benchmarks' ``options.json`` and ``summary.json``) records
:func:`provenance`. The version comes from the installed distribution's
metadata. A commit is recorded only when the ``edgekv`` package that is
running is itself the ``edgekv/`` folder of an edgekv checkout, recognised by
:func:`checkout_root`: the package's parent directory is the top level of a
git work tree, and that top level's ``pyproject.toml`` names the project
``edgekv``. Asking git about the current directory, or about whatever
repository an installed copy happens to sit in (a user's project with a
vendored or in-tree virtualenv), would record someone else's commit as ours.
"""

from __future__ import annotations

import subprocess
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
GIT_TIMEOUT_S = 10.0


def edgekv_version() -> str:
    """The installed edgekv distribution's version, or ``unknown`` when not installed."""
    try:
        return version("edgekv")
    except PackageNotFoundError:
        return "unknown"


def checkout_root(package_dir: Path = PACKAGE_DIR) -> Path | None:
    """The edgekv checkout that ``package_dir`` (the ``edgekv`` package) belongs to, if any."""
    root = package_dir.resolve().parent
    if package_dir.resolve() != (root / "edgekv").resolve() or not _names_edgekv(root):
        return None
    top_level = _git(root, "rev-parse", "--show-toplevel")
    if top_level is None or Path(top_level).resolve() != root:
        return None
    return root


def git_commit(package_dir: Path = PACKAGE_DIR) -> str | None:
    """HEAD of the edgekv checkout running (``+dirty`` with uncommitted changes), else None."""
    root = checkout_root(package_dir)
    if root is None:
        return None
    head = _git(root, "rev-parse", "HEAD")
    dirty = _git(root, "status", "--porcelain", "--untracked-files=no")
    if head is None or dirty is None:
        return None
    return head + ("+dirty" if dirty else "")


def provenance() -> dict[str, str | None]:
    """``edgekv_version`` and ``git_commit`` (None outside an edgekv checkout)."""
    return {"edgekv_version": edgekv_version(), "git_commit": git_commit()}


def describe(edgekv_version: str, git_commit: str | None) -> str:
    """``edgekv 0.1.0 at commit 1a2b3c`` or, without a checkout, ``edgekv 0.1.0``."""
    at = f" at commit `{git_commit}`" if git_commit else ""
    return f"edgekv {edgekv_version}{at}"


def _names_edgekv(root: Path) -> bool:
    try:
        project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return False
    table = project.get("project")
    return isinstance(table, dict) and table.get("name") == "edgekv"


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=GIT_TIMEOUT_S,
        )
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip()
