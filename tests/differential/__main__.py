"""``python -m tests.differential``: the table of differences between edgekv and Miniflare.

Prints one docs/fidelity.md row per differing call, with the reason the table
gives already (``REASON`` where it gives none), then a count. Run from the
checkout: ``.venv/bin/python -m tests.differential``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.differential.compare import accepted, differences, table_rows
from tests.differential.miniflare import ensure_installed, run_in_miniflare
from tests.differential.nodes import run_at_edgekv
from tests.differential.scenarios import SCENARIOS


def main() -> int:
    ensure_installed()
    workers = run_in_miniflare("node", list(SCENARIOS))
    with tempfile.TemporaryDirectory(prefix="edgekv-differential-") as folder:
        ours = run_at_edgekv(Path(folder), SCENARIOS)
    found = list(differences(SCENARIOS, workers, ours))
    for row in table_rows(found, accepted()):
        print(row)
    calls = sum(len(s.calls) for s in SCENARIOS)
    print(f"{len(SCENARIOS)} scenarios, {calls} calls, at 2 nodes: {len(found)} differ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
