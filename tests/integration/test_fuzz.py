"""A short seeded round of the fuzzer against a real central and edge (see tests/fuzz).

``python -m tests.fuzz --requests 1000000`` runs the same for as long as asked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fuzz.engine import Fuzzer
from tests.support.central_process import CentralLauncher
from tests.support.edge_process import EdgeLauncher

ROUNDS = 2
EXAMPLES_PER_ROUND = 600


@pytest.fixture
def fuzzer(tmp_path: Path) -> Iterator[Fuzzer]:
    with CentralLauncher(tmp_path) as centrals, EdgeLauncher(tmp_path) as edges:
        central = centrals.start(f"sqlite:{tmp_path / 'fuzz.db'}", ["--no-write-rate-limit"])
        edge = edges.start(central.address, "eu-west", ["--node", "eu-west-fuzz"])
        fuzzer = Fuzzer(
            central.address,
            edge.address,
            logs=[central.child.stderr_path, edge.child.stderr_path],
            alive=lambda: central.running and edge.running,
        )
        try:
            yield fuzzer
        finally:
            fuzzer.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_mutated_requests_to_every_method_get_a_clear_answer(fuzzer: Fuzzer) -> None:
    asyncio.run(fuzzer.prepare())
    for round_seed in range(1, ROUNDS + 1):
        try:
            fuzzer.run(EXAMPLES_PER_ROUND, round_seed, progress=lambda report: None)
        finally:
            asyncio.run(fuzzer.verify())
    report = fuzzer.report
    assert not report.failures, "\n".join(map(str, report.failures[:5]))
    assert report.requests >= ROUNDS * EXAMPLES_PER_ROUND
    tried = {path.rsplit("/", 1)[1] for path in report.by_method}
    assert {"Put", "BulkPut", "Watch", "SetLink", "CreateNamespace"} <= tried
