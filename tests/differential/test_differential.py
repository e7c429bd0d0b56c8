"""edgekv against Workers KV's own binding: every difference is listed, with its reason.

The scenarios (:mod:`tests.differential.scenarios`) run through Miniflare —
Cloudflare's KV binding inside workerd — and through edgekv's Python API at a
real central and through a real edge; answers are compared call by call
(:mod:`tests.differential.compare`). A difference that ``docs/fidelity.md``
does not accept — with these very answers — fails the test, and so does a row
there that no longer matches one. ``python -m tests.differential`` prints the
rows as they should be.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.differential.compare import accepted, differences, table_rows, unaccepted
from tests.differential.miniflare import ensure_installed, node_or_skip, run_in_miniflare
from tests.differential.nodes import run_at_edgekv
from tests.differential.scenarios import SCENARIOS

pytestmark = pytest.mark.slow


@pytest.mark.timeout(600)
def test_edgekv_answers_as_the_workers_kv_binding_does(tmp_path: Path) -> None:
    node = node_or_skip()
    ensure_installed()
    workers = run_in_miniflare(node, list(SCENARIOS))
    ours = run_at_edgekv(tmp_path, SCENARIOS)
    found = list(differences(SCENARIOS, workers, ours))
    calls = sum(len(s.calls) for s in SCENARIOS)
    print(f"\n{len(SCENARIOS)} scenarios, {calls} calls, at 2 nodes: {len(found)} differ")

    table = accepted()
    new = unaccepted(found, table)
    assert not new, "differences docs/fidelity.md does not accept (rows as they are now):\n" + (
        "\n".join(table_rows(new, table))
    )
    stale = sorted(set(table) - {difference.where for difference in found})
    assert not stale, f"rows of docs/fidelity.md that no longer differ: {stale}"
