"""Provenance: a commit is recorded only for edgekv code that sits in an edgekv checkout.

Real git repositories in temp folders and real interpreters importing a copy
of the package: an installed copy inside a user's own repository must not
record that repository's commit, whatever the current directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import edgekv
from edgekv.provenance import checkout_root, edgekv_version, git_commit

REPO = Path(__file__).resolve().parents[2]
PACKAGE = Path(edgekv.__file__).resolve().parent


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def repository(root: Path, project: str) -> Path:
    """A git repository at ``root`` with one commit, its pyproject naming ``project``."""
    root.mkdir()
    (root / "pyproject.toml").write_text(f'[project]\nname = "{project}"\n', encoding="utf-8")
    git(root, "init", "-q")
    git(root, "add", "pyproject.toml")
    git(root, "commit", "-q", "-m", "first")
    return root


def copy_package(into: Path) -> Path:
    return Path(
        shutil.copytree(PACKAGE, into / "edgekv", ignore=shutil.ignore_patterns("__pycache__"))
    )


def provenance_in_child(pythonpath: Path | None, cwd: Path) -> tuple[str, dict[str, str | None]]:
    """Which edgekv a fresh interpreter imports there, and the provenance it records."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    code = "import json, edgekv.provenance as p; print(json.dumps([p.__file__, p.provenance()]))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    where, recorded = json.loads(done.stdout)
    return where, recorded


def test_this_checkout_records_its_commit(tmp_path: Path) -> None:
    if checkout_root() is None:
        pytest.skip("edgekv is not running from a checkout here")
    assert checkout_root() == REPO
    commit = git_commit()
    assert commit is not None and commit.startswith(git(REPO, "rev-parse", "HEAD"))
    # The current directory plays no part, even inside another repository.
    elsewhere = repository(tmp_path / "elsewhere", "someone-else")
    where, recorded = provenance_in_child(None, cwd=elsewhere)
    assert Path(where).parent == PACKAGE
    assert recorded == {"edgekv_version": edgekv_version(), "git_commit": commit}


def test_a_copy_inside_another_repository_records_no_commit(tmp_path: Path) -> None:
    theirs = repository(tmp_path / "theirs", "someone-else")
    copy = copy_package(theirs)
    git(theirs, "add", "edgekv")
    git(theirs, "commit", "-q", "-m", "vendor edgekv")
    assert checkout_root(copy) is None and git_commit(copy) is None
    where, recorded = provenance_in_child(theirs, cwd=theirs)
    assert Path(where).parent == copy, "the child must import the copy"
    assert recorded == {"edgekv_version": edgekv_version(), "git_commit": None}
    assert edgekv_version() not in ("", "unknown")


def test_a_copy_outside_git_records_no_commit(tmp_path: Path) -> None:
    unpacked = tmp_path / "edgekv-0.1.0"
    unpacked.mkdir()
    (unpacked / "pyproject.toml").write_text('[project]\nname = "edgekv"\n', encoding="utf-8")
    copy = copy_package(unpacked)
    assert checkout_root(copy) is None and git_commit(copy) is None


def test_another_edgekv_checkout_records_its_own_commit(tmp_path: Path) -> None:
    clone = repository(tmp_path / "clone", "edgekv")
    copy = copy_package(clone)
    git(clone, "add", "edgekv")
    git(clone, "commit", "-q", "-m", "the package")
    assert checkout_root(copy) == clone.resolve()
    assert git_commit(copy) == git(clone, "rev-parse", "HEAD")
    (copy / "provenance.py").write_text("# changed\n", encoding="utf-8")
    assert git_commit(copy) == git(clone, "rev-parse", "HEAD") + "+dirty"
