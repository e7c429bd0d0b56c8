"""A short seeded round of the fuzzer against a real central and edge (see tests/fuzz).

``python -m tests.fuzz --requests 1000000`` runs the same for as long as asked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fuzz.engine import Fuzzer
from tests.fuzz.nodes import fuzzer_of_real_nodes

ROUNDS = 2
EXAMPLES_PER_ROUND = 600


@pytest.fixture
def fuzzer(tmp_path: Path) -> Iterator[Fuzzer]:
    with fuzzer_of_real_nodes(tmp_path) as fuzzer:
        yield fuzzer


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
