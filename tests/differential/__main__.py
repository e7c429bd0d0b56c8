"""``python -m tests.differential``: print every difference between edgekv and Miniflare.

One table row per difference, as docs/fidelity.md wants them (the reason left
to write), then a count. Run from the checkout: ``.venv/bin/python -m tests.differential``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.differential.compare import accepted, differences
from tests.differential.miniflare import ensure_installed, run_in_miniflare
from tests.differential.nodes import run_at_edgekv
from tests.differential.scenarios import SCENARIOS


def main() -> int:
    ensure_installed()
    workers = run_in_miniflare("node", list(SCENARIOS))
    with tempfile.TemporaryDirectory(prefix="edgekv-differential-") as folder:
        ours = run_at_edgekv(Path(folder), SCENARIOS)
    found = list(differences(SCENARIOS, workers, ours))
    listed = accepted()
    for difference in found:
        mark = "" if difference.where in listed else "NEW "
        print(mark + difference.row())
    calls = sum(len(s.calls) for s in SCENARIOS)
    print(f"{len(SCENARIOS)} scenarios, {calls} calls, at 2 nodes: {len(found)} differ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
