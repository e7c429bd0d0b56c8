"""The committed code in edgekv/v1 is what scripts/gen_proto.py makes from proto/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_up_to_date() -> None:
    completed = subprocess.run(
        [sys.executable, "scripts/gen_proto.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_every_proto_field_is_commented() -> None:
    """Contract first: a field without a comment saying what it (and zero) means fails."""
    for proto in sorted((ROOT / "proto" / "edgekv" / "v1").glob("*.proto")):
        lines = proto.read_text().splitlines()
        for number, line in enumerate(lines):
            stripped = line.strip()
            is_field = (
                stripped.endswith(";")
                and "=" in stripped
                and not stripped.startswith(("option", "syntax", "package", "import", "//"))
            )
            if not is_field:
                continue
            assert lines[number - 1].strip().startswith("//"), (
                f"{proto.name}:{number + 1}: field without a comment: {stripped}"
            )
