"""A short seeded round of the API node's HTTP fuzzer (see tests/fuzz/api.py) against a
real central and API node, and the requests its long rounds found bugs with, replayed.

``python -m tests.fuzz.api --requests 100000 --minutes 15`` runs the same for longer.
"""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp
import pytest

from api.server import openapi_document
from tests.fuzz.api import Settings, fuzz, operations, routed_operations
from tests.integration.rest_api.conftest import Rest

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
    routed = routed_operations(operations(openapi_document())).values()
    assert {op.op_id for op in routed} <= set(report.by_operation)
    assert len(report.ok_by_operation) >= 10, report.ok_by_operation
    assert {"200", "400", "401", "403", "404", "405", "414"} <= set(report.by_status)
    assert took_s < 30, f"{REQUESTS} requests took {took_s:.1f} s"


# -- what long rounds found: each request answered 500 (or, for a key with a newline,
# aiohttp's plain-text 404 instead of the node's route), replayed ---------------------

MULTIPART_WITH_A_BOUNDARY_LINE = (
    b'--b\r\nContent-Disposition: form-data; name="value"\r\n\r\n--b\r\n'
    b'--b\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n{}\r\n--b--\r\n'
)


async def _namespace(rest: Rest) -> str:
    async with rest.http.post(rest.url(""), json={"title": "found"}, headers=rest.headers()) as r:
        namespace_id: str = (await r.json())["result"]["id"]
    return namespace_id


async def _refused_400(response: aiohttp.ClientResponse) -> None:
    assert response.status == 400, await response.text()
    body = await response.json()
    assert body["success"] is False and body["errors"][0]["code"] == 10001


@pytest.mark.parametrize(
    ("method", "path", "body", "headers"),
    [
        ("POST", "", b'{"title": "\\ud800"}', {}),  # a lone surrogate: not protobuf's
        ("PUT", "/NS", b'{"title": "\\ud800"}', {}),
        ("PUT", "/NS", b"\x1f\x8bnot gzip", {"Content-Encoding": "gzip"}),
        (
            "PUT",
            "/NS/values/k",
            MULTIPART_WITH_A_BOUNDARY_LINE,
            {"Content-Type": "multipart/form-data; boundary=b"},
        ),
    ],
)
async def test_what_fuzzing_answered_500_is_a_400_envelope(
    rest: Rest, method: str, path: str, body: bytes, headers: dict[str, str]
) -> None:
    url = rest.url(path.replace("NS", await _namespace(rest)))
    async with rest.http.request(
        method, url, data=body, headers=rest.headers() | headers
    ) as response:
        await _refused_400(response)
    assert rest.api.service.unforeseen == 0


async def test_a_value_nested_too_deep_for_python_read_as_json_is_a_400(rest: Rest) -> None:
    namespace_id = await _namespace(rest)
    deep = b"[" * 5000 + b"]" * 5000
    values = rest.url(f"/{namespace_id}/values/deep")
    async with rest.http.put(values, data=deep, headers=rest.headers()) as response:
        assert response.status == 200
    bulk_get = rest.url(f"/{namespace_id}/bulk/get")
    request = {"keys": ["deep"], "type": "json"}
    async with rest.http.post(bulk_get, json=request, headers=rest.headers()) as response:
        await _refused_400(response)
    assert rest.api.service.unforeseen == 0


async def test_a_key_with_a_newline_is_routed(rest: Rest) -> None:
    values = rest.url(f"/{await _namespace(rest)}/values/line%0Abreak")
    async with rest.http.put(values, data=b"v", headers=rest.headers()) as response:
        assert response.status == 200, await response.text()
    async with rest.http.get(values, headers=rest.headers()) as response:
        assert await response.read() == b"v"
