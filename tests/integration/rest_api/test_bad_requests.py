"""What no SDK sends: malformed bodies and parameters, odd paths, huge bodies.

Each gets the right 4xx with Cloudflare's error envelope, changes nothing, and
never a 5xx or a traceback.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.integration.rest_api.conftest import ACCOUNT_A, Rest


async def _namespace(rest: Rest, title: str = "target") -> str:
    async with rest.http.post(rest.url(""), json={"title": title}, headers=rest.headers()) as r:
        assert r.status == 200
        body = await r.json()
    namespace_id: str = body["result"]["id"]
    return namespace_id


async def _refused(response: aiohttp.ClientResponse, status: int, code: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body: dict[str, Any] = await response.json()
    assert body["success"] is False and body["result"] is None
    assert body["errors"][0]["code"] == code, body
    return body


async def _keys(rest: Rest, namespace_id: str) -> list[str]:
    async with rest.http.get(rest.url(f"/{namespace_id}/keys"), headers=rest.headers()) as r:
        return [key["name"] for key in (await r.json())["result"]]


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "code"),
    [
        ("POST", "", b"{not json", {}, 400, 10001),
        ("POST", "", b'{"name": "no title"}', {}, 400, 10001),
        ("PUT", "/NS", b"[1, 2", {}, 400, 10001),
        ("PUT", "/NS/bulk", b'{"key": "not an array"}', {}, 400, 10001),
        ("PUT", "/NS/bulk", b'[{"key": "k", "value": 1}]', {}, 400, 10001),
        ("PUT", "/NS/bulk", b'[{"key": "k", "value": "!", "base64": true}]', {}, 400, 10001),
        ("POST", "/NS/bulk/delete", b'["k", 2]', {}, 400, 10001),
        ("POST", "/NS/bulk/get", b'{"keys": "k"}', {}, 400, 10001),
        ("PUT", "/NS/values/k?expiration_ttl=soon", b"v", {}, 400, 10001),
        ("PUT", "/NS/values/k?expiration=12.5", b"v", {}, 400, 10001),
        ("GET", "?per_page=0", b"", {}, 400, 10001),
        ("GET", "?order=size", b"", {}, 400, 10001),
        ("GET", "/NS/keys?cursor=never-issued", b"", {}, 400, 10001),
        ("GET", "/NS/keys?limit=9", b"", {}, 400, 10001),
        ("GET", "/NS/keys?limit=many", b"", {}, 400, 10001),
        # wrangler's key "..": its URL parser leaves PUT …/namespaces/ID/ with the value.
        ("PUT", "/NS/", b'{"title": "hijacked"}', {}, 400, 7003),
        ("PUT", "/NS/values/", b"v", {}, 400, 7003),
        ("GET", "/NS/nothing-here", b"", {}, 400, 7003),
        ("PATCH", "/NS", b"", {}, 405, 10405),
        (
            "PUT",
            "/NS/values/k",
            b'--b\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n{}\r\n--b--\r\n',
            {"Content-Type": "multipart/form-data; boundary=b"},
            400,
            10001,
        ),
        (
            "PUT",
            "/NS/values/k",
            b'--b\r\nContent-Disposition: form-data; name="value"\r\n\r\nv\r\n'
            b'--b\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n{nope\r\n--b--\r\n',
            {"Content-Type": "multipart/form-data; boundary=b"},
            400,
            10001,
        ),
    ],
)
async def test_a_bad_request_is_a_4xx_envelope_and_changes_nothing(
    rest: Rest,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: int,
) -> None:
    namespace_id = await _namespace(rest)
    url = rest.url(path.replace("NS", namespace_id))
    async with rest.http.request(
        method, url, data=body, headers=rest.headers() | headers
    ) as response:
        await _refused(response, status, code)
    assert await _keys(rest, namespace_id) == []
    async with rest.http.get(rest.url(f"/{namespace_id}"), headers=rest.headers()) as r:
        assert (await r.json())["result"]["title"] == "target"


async def test_a_body_over_100_mib_is_refused_with_413(rest: Rest) -> None:
    namespace_id = await _namespace(rest)
    big = b"x" * (100 * 1024 * 1024 + 1)
    async with rest.http.put(
        rest.url(f"/{namespace_id}/bulk"), data=big, headers=rest.headers()
    ) as response:
        await _refused(response, 413, 10001)
    assert await _keys(rest, namespace_id) == []


async def test_auth_errors(rest: Rest) -> None:
    url = rest.url("")
    async with rest.http.get(url) as response:
        await _refused(response, 401, 10000)
    async with rest.http.get(url, headers={"Authorization": "Basic abc"}) as response:
        await _refused(response, 401, 10000)
    legacy = {"X-Auth-Email": "me@example.com", "X-Auth-Key": "0123"}
    async with rest.http.get(url, headers=legacy) as response:
        body = await _refused(response, 400, 9103)
    assert "Authorization: Bearer" in body["errors"][0]["message"]
    async with rest.http.get(rest.url("", account="c" * 32), headers=rest.headers()) as response:
        await _refused(response, 403, 10000)
    async with rest.http.get(
        f"{rest.base_url}/accounts/not-hex/storage/kv/namespaces", headers=rest.headers()
    ) as response:
        await _refused(response, 400, 7003)


async def test_a_raw_json_body_is_stored_verbatim_and_a_base_url_with_a_slash_works(
    rest: Rest,
) -> None:
    namespace_id = await _namespace(rest)
    document = b'{"metadata": "m", "value": "v"}'  # what SDK 4.x sends: the value is all of it
    double = f"{rest.base_url}//accounts/{ACCOUNT_A}/storage/kv/namespaces/{namespace_id}"
    async with rest.http.put(
        f"{double}/values/doc",
        data=document,
        headers=rest.headers() | {"Content-Type": "application/json"},
    ) as response:
        assert response.status == 200
        assert (await response.json())["success"] is True
    async with rest.http.get(
        rest.url(f"/{namespace_id}/values/doc"), headers=rest.headers()
    ) as response:
        assert await response.read() == document


async def test_a_malformed_request_is_refused_in_one_log_line_without_a_traceback(
    rest: Rest, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio
    import logging

    host, port = rest.base_url.removeprefix("http://").split("/")[0].split(":")
    caplog.set_level(logging.INFO, logger="aiohttp.server")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /client/v4 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    await writer.drain()
    answer = await reader.read(1024)
    writer.close()
    assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0]
    await asyncio.sleep(0.05)  # the server logs after it answered
    refusals = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert refusals, "aiohttp logged nothing: the case no longer reaches its error path"
    for record in refusals:
        assert record.levelno == logging.INFO and record.exc_info is None
        assert record.getMessage().startswith("refused a malformed request: ")
