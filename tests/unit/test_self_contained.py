"""The repository stands on its own: nothing in it reads or cites files beside it.

Theory of operation: a user clones the repository and nothing else, so every
file it tracks is scanned for references that only made sense on the machine
it was written on. The rules, one regular expression each:

* **Files beside the repository.** A parent-relative path into ``shared``,
  a path naming the ``DESIGN``, ``reference`` or ``data`` entries of such a
  directory, or a pathlib path joined with a ``"shared"`` component, is
  refused: the clone has none of them.
* **The design document.** edgekv's design lives in ``docs/design.md``. Any
  other file called ``design.md`` (in any letter case, e.g. the upper-case
  one that used to sit beside the repository) is refused; a path ending in
  ``docs/design.md`` (``../docs/design.md`` from a sub-folder, with or
  without a ``#section`` anchor) is fine.
* **Issue numbers.** Prose naming a tracker entry by number — "issue",
  "issues", "pull request", "PR" or "ticket" followed by a number, with or
  without ``#`` — is refused: a reader of the clone cannot see the tracker,
  so text says what the behaviour is instead. A bare ``#12`` is *not*
  refused (it numbers operations in checker messages, Markdown anchors and
  colours), nor is a link to a public tracker such as
  ``https://github.com/OWNER/REPO/issues/123``, which anyone can open.

Files: ``git ls-files`` (tracked, plus untracked files that are not ignored,
so a new file is checked before its first commit) in a git checkout;
otherwise a walk of the tree that skips ``.venv``, caches and build output.
Binary files (a NUL byte, or not UTF-8) are skipped. This file is skipped too,
since it has to spell out what it looks for.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
THIS_FILE = Path(__file__).resolve()

# Directories a tree walk never enters: environments, caches, build and run output.
SKIPPED_DIRS = frozenset(
    {
        ".git",
        ".venv",
        "venv",
        "__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        "build",
        "dist",
        "results",
    }
)

# Written in pieces, so that this file does not match the rules it states.
_SHARED = "sha" + "red"
BESIDE_THE_REPOSITORY = re.compile(
    rf"\.\./{_SHARED}\b|\b{_SHARED}/(?:DESIGN|reference|data)\b|/\s*[\"']{_SHARED}[\"']"
)
# Every token that ends in design.md; only those ending in docs/design.md are allowed.
DESIGN_DOCUMENT = re.compile(r"[\w./-]*design\.md", re.IGNORECASE)
ALLOWED_DESIGN_DOCUMENT = "docs/design.md"
ISSUE_NUMBER = re.compile(r"\b(?:issues?|pull\s+requests?|PRs?|tickets?)\s*#?\d+", re.IGNORECASE)


def offences(text: str) -> list[str]:
    """What in ``text`` breaks a rule, one line per finding: ``line N: why: the text``."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        reasons = [
            f"cites a file beside the repository ({match.group()!r})"
            for match in BESIDE_THE_REPOSITORY.finditer(line)
        ]
        reasons += [
            f"cites a design document other than {ALLOWED_DESIGN_DOCUMENT} ({match.group()!r})"
            for match in DESIGN_DOCUMENT.finditer(line)
            if not match.group().endswith(ALLOWED_DESIGN_DOCUMENT)
        ]
        reasons += [
            f"mentions an issue by number ({match.group()!r})"
            for match in ISSUE_NUMBER.finditer(line)
        ]
        found += [f"line {number}: {reason}: {line.strip()[:120]}" for reason in reasons]
    return found


def repository_files(root: Path) -> list[Path]:
    """The files a clone of ``root`` has (git's list), or the tree without caches."""
    git = shutil.which("git")
    if git is not None and (root / ".git").exists():
        listed = subprocess.run(
            [git, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            check=False,
        )
        # git may refuse (a checkout owned by another user); the walk still sees every file.
        if listed.returncode == 0:
            names = sorted({name for name in listed.stdout.decode("utf-8").split("\0") if name})
            # A file deleted in the work tree but not yet in git is not in a clone either.
            return [root / name for name in names if (root / name).is_file()]
    return sorted(_walk(root))


def _walk(root: Path) -> Iterator[Path]:
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [
            name for name in subdirs if name not in SKIPPED_DIRS and not name.endswith(".egg-info")
        ]
        for name in files:
            yield Path(directory) / name


def text_of(path: Path) -> str | None:
    """The file's text, or None for a binary file."""
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def test_no_file_cites_files_beside_the_repository_or_issue_numbers() -> None:
    files = [path for path in repository_files(ROOT) if path.resolve() != THIS_FILE]
    assert len(files) > 50, f"found only {len(files)} files under {ROOT}: is this the repository?"
    found = []
    for path in files:
        text = text_of(path)
        if text is not None:
            found += [f"{path.relative_to(ROOT)}: {offence}" for offence in offences(text)]
    assert not found, "the repository must stand on its own:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "text",
    [
        f"see ../{_SHARED}/reference/workers-kv.md section 2",
        f"the schema ({_SHARED}/data/compose-spec.json beside the repository)",
        'SCHEMA_FILE = REPO.parent / "shared" / "data" / "compose-spec.json"',
        "theory from DESIGN.md",
        "see design.md",
        "the closed-loop scripts of issues 2, 3 and 5",
        "fixed in issue #3",
        "as PR #12 did",
        "see Issue 11",
    ],
)
def test_the_rules_catch_what_they_are_for(text: str) -> None:
    assert offences(text)


@pytest.mark.parametrize(
    "text",
    [
        "the theory in docs/design.md",
        "[the design](../docs/design.md#theory-the-experiments-check-against)",
        "a known bug: https://github.com/cloudflare/cloudflare-python/issues/2519",
        "read #2 in region us of key 'k' returned revision 1",
        "colour #1f77b4",
        "the shared cache of a region",
        "an issue of timing, not of correctness",
    ],
)
def test_the_rules_leave_ordinary_text_alone(text: str) -> None:
    assert offences(text) == []
