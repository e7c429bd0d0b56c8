"""The README is true as written: its sessions run, in order, as a user would copy them.

A user who followed the two set-up commands has ``.venv/`` in the checkout
and, once activated, ``edgekv`` on the PATH. This test gives each session
the same: a folder with ``.venv`` linked to the environment the tests run in,
``edgekv`` on the PATH, a HOME of its own (so ``~/.edgekv`` is the test's),
and no ``EDGEKV_*`` variables. It runs every console and Python block of the
README in order (see :mod:`tests.support.readme` for the format and what may
differ between runs), fails on the first command that fails unexpectedly or
prints something other than the README shows, and stops the cluster the
README started whatever happens.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekv.topology import load_topology
from tests.support.readme import Block, blocks, matches

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK_TIMEOUT_S = 180.0
MARK = "@@readme@@"

pytestmark = pytest.mark.slow


class Session:
    def __init__(self, root: Path) -> None:
        self.root = root / "edgekv"
        self.root.mkdir()
        (self.root / ".venv").symlink_to(Path(sys.prefix))
        home = root / "home"
        home.mkdir()
        bin_dir = str(Path(sys.executable).parent)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKV_")}
        self.env.update(
            HOME=str(home),
            PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            VIRTUAL_ENV=sys.prefix,
            PYTHONUNBUFFERED="1",
        )
        self.snippets = 0

    def run(self, script: str) -> str:
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=self.root,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
        )
        return done.stdout

    def console(self, block: Block) -> None:
        commands = block.commands()
        script = ["exec 2>&1"]
        for index, command in enumerate(commands):
            # The newline before the exit marker ends output that has none (kv key get).
            exit_mark = f"status=$?; printf '\\n{MARK} exit %d\\n' \"$status\""
            script += [f"echo '{MARK} {index}'", command.text, exit_mark]
        output = self.run("\n".join(script))
        printed = _split(output, len(commands))
        for command, (lines, code) in zip(commands, printed, strict=True):
            where = f"README line {block.line}: $ {command.text}"
            expects_error = any("error" in line for line in command.printed)
            assert code == 0 or expects_error, f"{where}\nexited {code}:\n" + "\n".join(lines)
            assert matches(command.printed, lines), (
                f"{where}\nREADME shows:\n"
                + "\n".join(command.printed)
                + "\nbut it printed:\n"
                + "\n".join(lines)
            )

    def python(self, block: Block) -> None:
        self.snippets += 1
        script = self.root / f"snippet_{self.snippets}.py"
        script.write_text(block.body, encoding="utf-8")
        output = self.run(f"exec 2>&1\npython {script.name}\necho '{MARK} exit' $?")
        *lines, last = output.rstrip("\n").splitlines()
        where = f"README line {block.line} (a Python snippet)"
        assert last == f"{MARK} exit 0", f"{where} failed:\n{output}"
        assert matches(block.printed or [], lines), (
            f"{where}\nREADME shows:\n"
            + "\n".join(block.printed or [])
            + "\nbut it printed:\n"
            + "\n".join(lines)
        )


def _split(output: str, count: int) -> list[tuple[list[str], int]]:
    """Each command's lines and exit code, from the marked output of a block."""
    chunks: list[tuple[list[str], int]] = []
    lines: list[str] = []
    for line in output.splitlines():
        if line.startswith(f"{MARK} exit "):
            chunks.append((lines, int(line.rsplit(" ", 1)[1])))
        elif line.startswith(MARK):
            lines = []
        else:
            lines.append(line)
    assert len(chunks) == count, f"the block stopped early:\n{output}"
    return chunks


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    session = Session(tmp_path)
    try:
        yield session
    finally:
        # Whatever happened, no cluster the README started outlives the test.
        session.run("edgekv down >/dev/null 2>&1 || true")


def test_every_session_of_the_readme_runs_as_shown(session: Session, tmp_path: Path) -> None:
    runnable = [block for block in blocks(README.read_text(encoding="utf-8")) if not block.not_run]
    ran = {"console": 0, "python": 0, "toml": 0}
    for block in runnable:
        if block.language == "console":
            session.console(block)
        elif block.language == "python":
            session.python(block)
        elif block.language == "toml":
            topology = tmp_path / f"topology-{block.line}.toml"
            topology.write_text(block.body, encoding="utf-8")
            load_topology(topology)
        else:
            continue
        ran[block.language] += 1
    assert ran["console"] >= 2 and ran["python"] >= 2, f"the README lost its sessions: {ran}"


def test_every_block_is_run_or_says_why_not() -> None:
    for block in blocks(README.read_text(encoding="utf-8")):
        runnable = block.language in ("console", "python", "toml")
        shown = block.language == "text"
        assert runnable or shown or block.not_run, (
            f"README line {block.line}: a {block.language or 'plain'} block is neither run "
            "nor marked <!-- not run: REASON -->"
        )
