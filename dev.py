#!/usr/bin/env python3
"""The two set-up commands: ``python3 dev.py demo`` and ``python3 dev.py test``.

Theory of operation: needs nothing but Python >= 3.11. It creates ``.venv``
beside this file, installs the project with its dev tools (again only when
pyproject.toml changed), then runs the demo, or every check CI runs: ruff
(format and lint), mypy --strict, the generated-code check, and pytest.
Arguments after ``test`` go to pytest, e.g. ``python3 dev.py test -k watch``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".edgekv-installed"


def ensure_environment() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py runs on whatever python3 is
        sys.exit(f"edgekv needs Python >= 3.11; this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        print(f"creating {VENV} ...", flush=True)
        venv.create(VENV, with_pip=True)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    print("installing edgekv and its dev tools into .venv ...", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "--editable", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(wanted)


def run(*command: str) -> None:
    print("$", " ".join(command), flush=True)
    completed = subprocess.run(command, cwd=ROOT)
    if completed.returncode != 0:
        sys.exit(completed.returncode)


def tool(name: str) -> str:
    return str(BIN / name)


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in ("demo", "test"):
        sys.exit("usage: python3 dev.py demo | python3 dev.py test [pytest arguments]")
    ensure_environment()
    if argv[0] == "demo":
        run(tool("edgekv"), "demo", *argv[1:])
        return
    checked = ["edgekv", "central", "edge", "api", "tests", "scripts", "dev.py"]
    run(tool("ruff"), "format", "--check", *checked)
    run(tool("ruff"), "check", *checked)
    run(tool("mypy"))
    run(tool("python"), "scripts/gen_proto.py", "--check")
    run(tool("pytest"), *argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
