"""A short seeded round of the API node's HTTP fuzzer (see tests/fuzz/api.py) against a
real central and API node.

``python -m tests.fuzz.api --requests 100000 --minutes 15`` runs the same for longer.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from api.server import openapi_document
from tests.fuzz.api import Settings, fuzz, operations

REQUESTS = 1500
ROUND = 500  # requests between two checks of the canary and the fuzzer's namespaces


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_fuzzed_requests_get_documented_answers_and_never_a_5xx(tmp_path: Path) -> None:
    started = time.monotonic()
    report = await fuzz(tmp_path, Settings(REQUESTS, 1, 2.0, ROUND), progress=False)
    took_s = time.monotonic() - started
    assert not report.failures, "\n".join(map(str, report.failures[:5]))
    assert report.requests == REQUESTS
    assert not [status for status in report.by_status if status.startswith("5")]
    # The round reaches every route, and the answers a bad request can get.
    described = {op.op_id for op in operations(openapi_document()) if "{account_id}" in op.template}
    assert described <= set(report.by_operation)
    assert len(report.ok_by_operation) >= 10, report.ok_by_operation
    assert {"200", "400", "401", "403", "404", "405", "414"} <= set(report.by_status)
    assert took_s < 30, f"{REQUESTS} requests took {took_s:.1f} s"
